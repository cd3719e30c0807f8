"""The flow of participants through a SMART (a CONSORT-style diagram), as counts and as SVG.

Screened -> not eligible (with the commonest reasons) -> enrolled (run-in) -> not passing the
run-in or Visit 0 -> randomized per first treatment -> week-12 response categories -> stage-2
options -> week-24 outcome observed. Pure: the services count, this module draws.

References
----------
Hopewell S et al. CONSORT 2025 statement; Nahum-Shani I et al. (2012) Psychol Methods 17:457-77
(the SMART flow with its re-randomization after the response assessment).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

import pandas as pd

__all__ = ["TrialFlow"]

_ARM_COLOURS = ("#718096", "#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c")


@dataclass(frozen=True)
class TrialFlow:
    """Counts of a SMART's participant flow.

    Attributes
    ----------
    screened : participants with a screening record
    screen_failed : not eligible at pre-screening or screening
    screen_reasons : criterion label -> participants failing it (a participant may fail several)
    enrolled : entered the run-in
    run_in_failed, visit0_failed : not passing the run-in; not eligible at Visit 0
    withdrawn_before_randomization : withdrew after enrolment, before randomization
    in_progress : screened or enrolled, not yet randomized nor excluded
    arms : stage-1 arm codes in protocol order
    randomized : arm -> participants randomized to it
    categories : week-12 response categories in protocol order
    week12 : arm -> category -> participants (``"missing"`` for no week-12 assessment)
    stage2 : arm -> stage-2 option -> participants
    week24 : arm -> participants with the week-24 outcome observed
    """

    screened: int
    screen_failed: int
    screen_reasons: Mapping[str, int]
    enrolled: int
    run_in_failed: int
    visit0_failed: int
    withdrawn_before_randomization: int
    in_progress: int
    arms: tuple[str, ...]
    randomized: Mapping[str, int]
    categories: tuple[str, ...]
    week12: Mapping[str, Mapping[str, int]]
    stage2: Mapping[str, Mapping[str, int]]
    week24: Mapping[str, int]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_randomized(self) -> int:
        return sum(self.randomized.values())

    def table(self) -> pd.DataFrame:
        """One row per step (and per arm below randomization): step, arm, n."""
        rows: list[dict[str, object]] = [
            {"step": "screened", "arm": "", "n": self.screened},
            {"step": "not eligible at (pre-)screening", "arm": "", "n": self.screen_failed},
            {"step": "enrolled (run-in)", "arm": "", "n": self.enrolled},
            {"step": "run-in not passed", "arm": "", "n": self.run_in_failed},
            {"step": "not eligible at Visit 0", "arm": "", "n": self.visit0_failed},
            {"step": "withdrew before randomization", "arm": "",
             "n": self.withdrawn_before_randomization},
            {"step": "not yet randomized (in progress)", "arm": "", "n": self.in_progress},
            {"step": "randomized", "arm": "", "n": self.n_randomized}]
        for arm in self.arms:
            rows.append({"step": "randomized", "arm": arm, "n": self.randomized.get(arm, 0)})
            for cat, n in self.week12.get(arm, {}).items():
                rows.append({"step": f"week 12: {cat}", "arm": arm, "n": n})
            for opt, n in self.stage2.get(arm, {}).items():
                rows.append({"step": f"stage 2: {opt}", "arm": arm, "n": n})
            rows.append({"step": "week 24 observed", "arm": arm, "n": self.week24.get(arm, 0)})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ drawing
    def to_svg(self, *, title: str = "Participant flow") -> str:
        """The diagram as a standalone ``<svg>`` element (no external resources)."""
        col_w, gap = 215, 12
        ncol = max(len(self.arms), 1)
        width = max(ncol * (col_w + gap) + gap, 760)
        parts: list[str] = []
        y = 40.0

        def box(x: float, y0: float, w: float, lines: Sequence[str], *, fill: str = "#f7fafc",
                stroke: str = "#4a5568", bold_first: bool = True) -> float:
            h = 10.0 + 17 * len(lines)
            parts.append(f'<rect x="{x:.0f}" y="{y0:.0f}" width="{w:.0f}" height="{h}" rx="6" '
                         f'fill="{fill}" stroke="{stroke}"/>')
            for i, text in enumerate(lines):
                weight = ' font-weight="bold"' if i == 0 and bold_first else ""
                parts.append(f'<text x="{x + 8:.0f}" y="{y0 + 20 + 17 * i:.0f}"{weight}>'
                             f"{escape(text)}</text>")
            return y0 + h

        def arrow(x1: float, y1: float, x2: float, y2: float) -> None:
            parts.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                         'stroke="#4a5568" marker-end="url(#arrow)"/>')

        main_w = 300
        main_x = width / 2 - main_w / 2 - 110
        side_x = main_x + main_w + 50
        cx = main_x + main_w / 2
        reasons = sorted(self.screen_reasons.items(), key=lambda kv: -kv[1])[:4]
        bottom = box(main_x, y, main_w, [f"Screened: {self.screened}"])
        side_lines = [f"Not eligible: {self.screen_failed}"] + [
            f"  {label if len(label) <= 42 else label[:41] + '…'}: {n}"
            for label, n in reasons]
        side_bottom = box(side_x, y, width - side_x - gap, side_lines, fill="#fff5f5",
                          stroke="#c53030")
        arrow(main_x + main_w, y + 14, side_x, y + 14)
        y = max(bottom, side_bottom) + 28
        arrow(cx, bottom, cx, y)
        bottom = box(main_x, y, main_w, [f"Enrolled (run-in): {self.enrolled}"])
        side = [f"Run-in not passed: {self.run_in_failed}",
                f"Not eligible at Visit 0: {self.visit0_failed}",
                f"Withdrew before randomization: {self.withdrawn_before_randomization}"]
        if self.in_progress:
            side.append(f"Not yet randomized: {self.in_progress}")
        side_bottom = box(side_x, y, width - side_x - gap, side, fill="#fff5f5",
                          stroke="#c53030", bold_first=False)
        arrow(main_x + main_w, y + 14, side_x, y + 14)
        y = max(bottom, side_bottom) + 28
        arrow(cx, bottom, cx, y)
        bottom = box(main_x, y, main_w, [f"Randomized (stage 1): {self.n_randomized}"],
                     fill="#ebf8ff", stroke="#2b6cb0")
        top = bottom + 36
        columns = []
        for arm in self.arms:
            cats = self.week12.get(arm, {})
            opts = sorted(self.stage2.get(arm, {}).items(), key=lambda kv: -kv[1])
            columns.append([
                [f"{arm}: {self.randomized.get(arm, 0)}"],
                ["Week 12 response"] + [f"  {c}: {cats.get(c, 0)}"
                                        for c in (*self.categories, "missing")],
                [f"Stage 2: {sum(n for _, n in opts)}"] + [f"  {o}: {n}" for o, n in opts],
                [f"Week 24 observed: {self.week24.get(arm, 0)}"]])
        rows = max((len(c) for c in columns), default=0)
        heights = [max(len(c[r]) for c in columns) for r in range(rows)]
        col_bottoms = []
        for j, blocks in enumerate(columns):
            x = gap + j * (col_w + gap)
            colour = _ARM_COLOURS[j % len(_ARM_COLOURS)]
            arrow(cx, bottom, x + col_w / 2, top)
            yy = top
            for r, lines in enumerate(blocks):
                padded = lines + [""] * (heights[r] - len(lines))
                fill, stroke = (("#ffffff", colour) if r == 0 else
                                ("#f0fff4", "#38a169") if r == rows - 1 else
                                ("#f7fafc", "#4a5568"))
                yy = box(x, yy, col_w, padded, fill=fill, stroke=stroke) + 10
            col_bottoms.append(yy)
        height = int(max(col_bottoms, default=top) + 20)
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width:.0f}" '
                f'height="{height}" viewBox="0 0 {width:.0f} {height}" font-family="system-ui,'
                f'sans-serif" font-size="13"><title>{escape(title)}</title>'
                '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
                'fill="#4a5568"/></marker></defs>'
                f'<text x="{gap}" y="22" font-size="16" font-weight="bold">{escape(title)}</text>')
        return head + "".join(parts) + "</svg>"
