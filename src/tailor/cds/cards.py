"""The patient-view service's discovery entry and its cards (CDS Hooks 1.0).

One card: the summary (< 140 characters) names the recommendation or the equally reasonable
set; the detail (GitHub-flavoured Markdown, no HTML) lists each treatment's expected week-24
PEG and chance of response with 95% intervals, why a treatment is in or out of the set, the
missing inputs, the provenance and the intended use; a link opens the full explanation page.
A model fitted on simulated data gives a ``warning`` card that says so.
"""

from __future__ import annotations

from typing import Any

from tailor.cds.fhir import prefetch_templates
from tailor.services.decide import Decision

__all__ = ["SERVICE_ID", "cards_of", "discovery"]

SERVICE_ID = "tailor-first-treatment"


def discovery() -> dict[str, Any]:
    """The ``GET /cds-services`` response."""
    return {"services": [{
        "hook": "patient-view", "id": SERVICE_ID,
        "title": "tailor: first treatment for chronic low back pain",
        "description": "The deployed SMART regime's equally reasonable first treatments, "
                       "expected outcomes with 95% intervals, and why.",
        "prefetch": prefetch_templates()}]}


def _summary(result: Decision) -> str:
    arms = result.equally_reasonable
    text = (f"Recommended first treatment: {result.recommended_name} ({arms[0]})"
            if len(arms) == 1 else f"Equally reasonable: {', '.join(arms)} (no meaningful "
            "difference for this patient)")
    return text if len(text) < 140 else text[:136] + "..."


def cards_of(result: Decision, link: str) -> dict[str, Any]:
    """The card response for one decision (``result`` of the decide service)."""
    prov = result.provenance
    lines = ["| first treatment | expected PEG week 24 (95% CI) | chance of response (95% CI) "
             "| |", "|---|---|---|---|"]
    for t in result.treatments:
        lines.append(f"| {t.arm} {t.name} | {t.expected_peg:.1f} ({t.lower:.1f} "
                     f"to {t.upper:.1f}) | {100 * t.response:.0f}% "
                     f"({100 * t.response_lower:.0f}% to {100 * t.response_upper:.0f}%) "
                     f"| {t.reason} |")
    parts = ["\n".join(lines), result.interval_note, result.explanation.summary]
    if result.missing_note:
        parts.append(result.missing_note)
    parts += [w for w in result.warnings]
    if result.simple_rule:
        parts.append(result.simple_rule.text)
    parts += [prov.statement, result.intended_use]
    simulated = bool(prov.simulated)
    return {"cards": [{
        "summary": _summary(result),
        "indicator": "warning" if simulated else "info",
        "detail": "\n\n".join(parts),
        "source": {"label": "tailor: " + ("SIMULATED-data model, not for treatment decisions"
                                          if simulated else f"{prov.trial}")},
        "links": [{"label": "Full explanation and what-if", "url": link,
                   "type": "absolute"}]}]}
