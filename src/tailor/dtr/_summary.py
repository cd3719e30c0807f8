"""A small printable summary: a title, a few header lines and a table."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["Summary"]


@dataclass(frozen=True)
class Summary:
    """Renders as text (``str``), HTML (``_repr_html_``) and a DataFrame (``to_frame``)."""

    title: str
    lines: tuple[str, ...]
    table: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def __str__(self) -> str:
        rule = "=" * max(len(self.title), 40)
        body = self.table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        return "\n".join([self.title, rule, *self.lines, "", body])

    def _repr_html_(self) -> str:
        head = "".join(f"<p>{line}</p>" for line in self.lines)
        return f"<h4>{self.title}</h4>{head}{self.table.to_html(index=False)}"
