"""The self-contained HTML report of a design study: tables and plots (base64 PNG) in one file."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["metric_range", "render_report", "render_size_report"]

LABELS = {
    "correct_first_line": "learned first-line = oracle's (share of participants)",
    "correct_nociceptive": "learned first-line = oracle's, nociceptive-predominant",
    "correct_mixed": "learned first-line = oracle's, mixed",
    "correct_nociplastic": "learned first-line = oracle's, nociplastic-predominant",
    "tree_correct_first_line": "policy tree's first-line = oracle's",
    "share_of_oracle": "share of the oracle's improvement achieved (responder rate)",
    "share_of_oracle_peg": "share of the oracle's improvement achieved (mean PEG)",
    "share_of_oracle_pop": "share of the oracle's improvement, on a fixed population",
    "tree_share_of_oracle": "share of the oracle's improvement, tree + Q-learning stage 2",
    "oracle_gain": "oracle's improvement over the best single arm",
    "interaction_reject": "power: phenotype x treatment interaction (type I error under null)",
    "interaction_p": "p-value of the phenotype x treatment interaction",
    "interaction_q_reject": "rejection rate of the same test in Q-learning's stage 1 "
                            "(pseudo-outcome, model-based SE: anti-conservative)",
    "interaction_q_p": "p-value of the interaction in Q-learning's stage 1 (model-based SE)",
    "regime_reject": "power: the two pre-specified embedded regimes differ",
    "regime_p": "p-value comparing the two embedded regimes",
    "regime_diff": "difference between the embedded regimes (week-24 PEG)",
    "regime_responder_reject": "power: the embedded regimes differ in week-24 response "
                               "(binary end point, log-odds-ratio Wald test, Kidwell et al.)",
    "regime_responder_p": "p-value comparing the embedded regimes' responder rates",
    "regime_responder_logor": "log odds ratio of response, EBEM-first vs ACT-first",
    "regime_responder_diff": "difference in week-24 responder rates between the regimes",
    "value_covered": "coverage of the 95% value interval",
    "static_covered": "coverage: static regime value (population truth)",
    "randomized_covered": "coverage: as-randomized value (population truth)",
    "learned_covered": "coverage: cross-fitted learned-regime value (population truth)",
    "static_covered_cohort": "coverage: static regime value (cohort truth)",
    "randomized_covered_cohort": "coverage: as-randomized value (cohort truth)",
    "learned_covered_cohort": "coverage: learned-regime value (cohort truth)",
    "static_error": "static value: estimate - population truth",
    "randomized_error": "as-randomized value: estimate - population truth",
    "learned_error": "learned-regime value: estimate - population truth",
    "static_se": "static value: standard error",
    "randomized_se": "as-randomized value: standard error",
    "learned_se": "learned-regime value: standard error",
    "imbalance": "final arm imbalance (max - min)",
    "imbalance_eligible": "arm imbalance among those eligible for every arm",
    "guess_rate": "predictability (mean largest allocation probability)",
    "missing_w24": "share of week-24 outcomes missing",
    "reject": "power (or type I error) of the regime comparison",
    "covered": "coverage of the 95% interval",
}
GROUPS = (
    ("Recovering the oracle regime", ("correct_", "tree_", "share_of_oracle", "oracle_gain")),
    ("Tests: power and type I error", ("interaction_", "regime_", "reject")),
    ("Value intervals", ("value_", "static_", "randomized_", "learned_", "covered")),
    ("Allocation and data", ("imbalance", "guess_rate", "missing_")),
)
POWER = ("interaction_reject", "interaction_q_reject", "regime_reject",
         "regime_responder_reject", "reject")
PLOTTED = ("interaction_reject", "interaction_q_reject", "regime_reject",
           "regime_responder_reject", "reject", "correct_first_line",
           "tree_correct_first_line", "share_of_oracle", "share_of_oracle_peg",
           "share_of_oracle_pop", "tree_share_of_oracle", "correct_nociceptive",
           "correct_mixed", "correct_nociplastic", "value_covered", "covered", "static_covered",
           "randomized_covered", "learned_covered", "imbalance", "imbalance_eligible",
           "guess_rate")
"""Metrics drawn as curves vs N, in this order (power and oracle recovery first)."""


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _curves(summary: pd.DataFrame, metric: str, others: Sequence[str]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = summary[summary["metric"] == metric]
    if sub.empty or "n" not in sub or sub["n"].nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    groups = sub.groupby(list(others), sort=False) if others else [((), sub)]
    for key, g in groups:
        g = g.sort_values("n")
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{k}={v}" for k, v in zip(others, key, strict=True)) or metric
        mean = g["mean"].to_numpy(float)
        half = 2 * g["mc_se"].fillna(0).to_numpy(float)
        lo, hi = metric_range(metric)
        yerr = [mean - np.maximum(mean - half, lo), np.minimum(mean + half, hi) - mean]
        ax.errorbar(g["n"], mean, yerr=yerr, marker="o", ms=3, capsize=2, label=label)
    if metric in POWER:
        ax.axhline(0.8, color="grey", lw=0.8, ls="--")
        ax.axhline(0.05, color="grey", lw=0.8, ls=":")
    elif metric.endswith("covered"):
        ax.axhline(0.95, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("participants randomized (N)")
    ax.set_ylabel(metric)
    ax.set_title(LABELS.get(metric, metric), fontsize=9)
    ax.grid(alpha=0.3)
    if len(ax.lines) > 1 or others:
        ax.legend(fontsize=7)
    out = _png(fig)
    plt.close(fig)
    return out


def metric_range(metric: str) -> tuple[float, float]:
    """The values a metric can take: [0, 1] for rates, shares of participants and coverage
    (error bars are clipped to it: a coverage of 0.975 +/- 0.05 is drawn to 1, not 1.025)."""
    bounded = (metric in POWER or metric.endswith(("_reject", "covered", "covered_cohort"))
               or metric.startswith("correct") or metric.startswith("tree_correct")
               or metric in ("reject", "covered", "guess_rate", "missing_w24"))
    return (0.0, 1.0) if bounded else (-np.inf, np.inf)


def _grouped(metrics: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The metrics split into the report's table groups (in metric order; the rest last)."""
    out: list[tuple[str, list[str]]] = []
    left = list(metrics)
    for heading, prefixes in GROUPS:
        cols = [m for m in left if m.startswith(prefixes)]
        left = [m for m in left if m not in cols]
        if cols:
            out.append((heading, cols))
    if left:
        out.append(("Other" if out else "", left))
    return out


def render_report(summary: pd.DataFrame, *, params: Sequence[str], title: str,
                  meta: Mapping[str, Any], notes: Sequence[str] = ()) -> str:
    """HTML of the summary table (mean +/- MC SE per cell and metric) and power curves vs N."""
    metrics = list(dict.fromkeys(summary["metric"]))
    wide = summary.assign(cell=summary["mean"].map(lambda v: f"{v:.3f}")
                          + " ± " + summary["mc_se"].map(lambda v: f"{v:.3f}"))
    table = wide.pivot_table(index=list(params), columns="metric", values="cell",
                             aggfunc="first", sort=False)[metrics]
    p05 = summary[summary["metric"].isin(["share_of_oracle", "correct_first_line"])]
    others = [p for p in params if p != "n" and summary[p].nunique() > 1]
    plots = [(m, _curves(summary, m, others)) for m in PLOTTED if m in metrics]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;"
        "margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f3f3f3}"
        "img{margin:4px;border:1px solid #eee}.meta td{text-align:left}"
        ".wide{overflow-x:auto;max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<table class='meta'>" + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in meta.items()) + "</table>",
    ]
    if notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.append("<h2>Operating characteristics (mean ± Monte-Carlo SE per cell)</h2>")
    parts.append("<p>Metric meanings: " + "; ".join(
        f"<b>{html.escape(m)}</b>: {html.escape(LABELS.get(m, m))}" for m in metrics) + ".</p>")
    for heading, cols in _grouped(metrics):
        if heading:
            parts.append(f"<h3>{html.escape(heading)}</h3>")
        parts.append("<div class='wide'>" + table[cols].to_html(escape=True) + "</div>")
    if "failed" in summary and (summary["failed"] > 0).any():
        bad = summary[summary["failed"] > 0].drop_duplicates(list(params))
        parts.append("<h2>Failed replicates (left out of the means above, counted here)</h2>")
        parts.append("<div class='wide'>" + bad[[*params, "replicates", "failed", "failure"]]
                     .to_html(index=False, escape=True) + "</div>")
    if not p05.empty:
        parts.append("<h2>Lower tail: 5th percentile over replicates (bootstrap SE)</h2>")
        t5 = p05.assign(p05=p05["p05"].map(lambda v: f"{v:.3f}") + " ± "
                        + p05["p05_se"].map(lambda v: f"{v:.3f}"))
        parts.append(t5.pivot_table(index=list(params), columns="metric", values="p05",
                                    aggfunc="first", sort=False).to_html(escape=True))
    shown = [(m, img) for m, img in plots if img]
    if shown:
        parts.append("<h2>Curves vs N (error bars: ± 2 MC SE): power, oracle recovery, "
                     "coverage, allocation</h2><div>")
        parts += [f"<img alt='{html.escape(m)}' src='data:image/png;base64,{img}'>"
                  for m, img in shown]
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _size_plot(result: Any) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = result.evaluations
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    fitted = ev[ev["fitted"]] if "fitted" in ev and ev["fitted"].any() else ev
    # the curve is drawn where it was fitted (near N*), not extrapolated
    grid = np.exp(np.linspace(np.log(fitted["n"].min()), np.log(fitted["n"].max()), 200))
    lo, hi = result.band(grid)
    if np.isfinite(lo).any():
        ax.fill_between(grid, lo, hi, color="C0", alpha=0.2,
                        label="95% band (bootstrap over replicates)")
    if result.coef is not None:
        ax.plot(grid, result.curve(grid), color="C0", label="fitted: logit p = a + b log N")
    p = ev["probability"].to_numpy(float)
    half = 2 * ev["mc_se"].to_numpy(float)
    yerr = [p - np.maximum(p - half, 0.0), np.minimum(p + half, 1.0) - p]
    ax.errorbar(ev["n"], p, yerr=yerr, fmt="o", ms=3, color="k", capsize=2,
                label="estimate at N (± 2 MC SE)")
    ax.axhline(result.target.probability, color="grey", ls="--", lw=0.8, label="target")
    if result.smoothed_n is not None:
        ax.axvline(result.smoothed_n, color="C3", lw=1.2,
                   label=f"N* = {result.smoothed_n:.0f} (recommended {result.recommended_n})")
        if result.interval is not None and np.isfinite(result.interval[1]):
            ax.axvspan(*result.interval, color="C3", alpha=0.12, label="95% interval for N*")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("participants randomized (N, log scale)")
    ax.set_ylabel(str(result.target))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    out = _png(fig)
    plt.close(fig)
    return out


def render_size_report(result: Any, *, title: str, meta: Mapping[str, Any],
                       paragraph: str) -> str:
    """HTML page of a sample-size search: the curve vs N with its band and N* marked, the
    evaluations (with failures), and the grant paragraph."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;"
        "margin:2em;max-width:1000px}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f3f3f3}"
        ".meta td{text-align:left;word-break:break-all}.wide{overflow-x:auto}"
        "blockquote{background:#f8f8f8;padding:0.8em;border-left:3px solid #999}"
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p><b>Answer:</b> {html.escape(result.summary().splitlines()[-1])}</p>",
        f"<img alt='curve' src='data:image/png;base64,{_size_plot(result)}'>",
        "<h2>For the grant's sample-size section</h2>",
        f"<blockquote id='grant'>{html.escape(paragraph)}</blockquote>",
        "<h2>Evaluations (failed and NaN replicates count as not meeting the target)</h2>",
        "<div class='wide'>" + result.evaluations.to_html(index=False, escape=True,
                                                          float_format="%.3f") + "</div>",
        "<h2>Provenance</h2><table class='meta'>" + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in meta.items()) + "</table>",
        "</body></html>",
    ]
    return "\n".join(parts)
