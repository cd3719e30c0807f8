"""Self-contained HTML reports: headings, text, tables and matplotlib figures in one file.

Figures are embedded as inline SVG (and can be saved beside the report as PNG and SVG), tables
come from DataFrames, and nothing is fetched from the network when the report is opened. Used by
``tailor analyze``, ``tailor design`` and ``tailor demo``.
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["HtmlReport"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1d2733;line-height:1.45}
h1{border-bottom:3px solid #2b6cb0;padding-bottom:.2em}h2{margin-top:2em;color:#2b6cb0}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #cbd5e0;padding:.3em .6em;text-align:right}
th{background:#edf2f7}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0;overflow-x:auto}figcaption{font-size:.9em;color:#4a5568}
.note{background:#f7fafc;border-left:4px solid #2b6cb0;padding:.5em 1em}
.meta{color:#4a5568;font-size:.85em}nav a{margin-right:1em}
"""


@dataclass
class HtmlReport:
    """Build a report section by section, then :meth:`write` it."""

    title: str
    subtitle: str = ""
    parts: list[str] = field(default_factory=list)
    toc: list[tuple[str, str]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        anchor = f"s{len(self.toc) + 1}"
        if level == 2:
            self.toc.append((anchor, text))
        self.parts.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')

    def paragraph(self, text: str, *, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def bullets(self, items: Iterable[str]) -> None:
        self.parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")

    def table(self, frame: pd.DataFrame, *, caption: str = "", index: bool = False,
              float_format: str = "{:.3g}") -> None:
        def fmt(v: Any) -> str:
            if isinstance(v, float):
                return "" if pd.isna(v) else float_format.format(v)
            return str(v)

        body = frame.to_html(index=index, border=0, escape=True, formatters=None,
                             float_format=lambda v: fmt(float(v)), na_rep="")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f"<figure>{body}{cap}</figure>")

    def figure(self, fig: Any, *, caption: str = "", save_as: Path | None = None) -> None:
        """Embed a matplotlib figure as inline SVG; optionally also save ``save_as`` .png/.svg."""
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight")
        svg = buf.getvalue()
        svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype for inline use
        if save_as is not None:
            save_as.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(save_as.with_suffix(".svg"), bbox_inches="tight")
            fig.savefig(save_as.with_suffix(".png"), dpi=130, bbox_inches="tight")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f"<figure>{svg}{cap}</figure>")

    def raw(self, fragment: str) -> None:
        """Append trusted HTML produced by tailor itself (never user text)."""
        self.parts.append(fragment)

    def render(self) -> str:
        nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in self.toc)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1><p class=\"meta\">"
                f"{html.escape(self.subtitle)} Generated {stamp}.</p><nav>{nav}</nav>"
                + "\n".join(self.parts) + "</body></html>")

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path
