"""Form-filling helpers shared by the page and browser tests."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from tailor import instruments
from tailor.services.baseline import BASELINE_INSTRUMENTS
from tests.service.factories import SCREEN_OK


def item_values(name: str, pick: int = 1) -> dict[str, int]:
    """A valid response to every item of ``name`` (the ``pick``-th allowed code, clipped)."""
    out = {}
    for item in instruments.get(name).items:
        codes = item.allowed
        out[item.code] = codes[min(pick, len(codes) - 1)]
    return out


def screening_form(record: dict[str, Any] | None = None) -> dict[str, str]:
    rec = SCREEN_OK if record is None else record
    return {k: ("yes" if v is True else "no" if v is False else str(v)) for k, v in rec.items()}


def baseline_form(visit_date: str, peg: tuple[int, int, int] = (6, 5, 7)) -> dict[str, str]:
    data = {"visit_date": visit_date, "pregnant_visit0": "no", "opioid_use": "no"}
    data |= {f"peg.PEG{i + 1}": str(v) for i, v in enumerate(peg)}
    for name in BASELINE_INSTRUMENTS:
        data |= {f"{name}.{k}": str(v) for k, v in item_values(name).items()}
    return data


class Controls(HTMLParser):
    """Collects form controls and labels of a page (for the label checks)."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.labels: set[str] = set()
        self.ids: list[str] = []
        self._in_label = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "label" and a.get("for"):
            self.labels.add(a["for"])
        if tag in ("input", "select", "textarea") and a.get("type") not in (
                "hidden", "submit", "button"):
            self.controls.append(a)


def unlabelled(html: str) -> list[str]:
    """Controls without a <label for> (names), and duplicate ids."""
    p = Controls()
    p.feed(html)
    bad = [c.get("name", "?") for c in p.controls if c.get("id", "") not in p.labels]
    dupes = sorted({i for i in p.ids if p.ids.count(i) > 1})
    return bad + [f"duplicate id {d}" for d in dupes]
