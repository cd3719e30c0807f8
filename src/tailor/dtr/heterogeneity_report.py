"""Report sections for effect heterogeneity: what the interpretable regime's value is the value
of, variable importance by domain (table + bar plot with interval whiskers) and the forest
plot by domain (bottom vs top third of each domain's score, each arm vs the best single
treatment). Used by :func:`tailor.dtr.analysis_report.write_analysis`."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from tailor.dtr.analysis import AnalysisResult
from tailor.dtr.labels import domain_label, variables_label
from tailor.report import HtmlReport

__all__ = ["add_heterogeneity_sections", "forest_by_domain_plot", "importance_plot",
           "interpretable_in_words"]


def _pct(v: float) -> str:
    return f"{v * 100:.1f}%" if np.isfinite(v) else "n/a"


def interpretable_in_words(result: AnalysisResult) -> str:
    """Says exactly which value the interpretable regime's numbers are: the cross-fitted value
    of the tree-learning procedure, not the in-sample value of the tree shown."""
    info = result.interpretable
    depth, k = result.plan.tree_depth, result.plan.folds
    text = (f"Exploratory. The tree shown is the depth-{depth} policy tree fitted on all "
            f"participants. Its value in the tables is the cross-fitted value of the procedure "
            "that produced it (each participant scored by a tree, and a week-12 rule, learned "
            f"without them, {k} folds): the value to expect from a tree learned this way from "
            f"{k - 1} in {k} of this trial's participants, not the value of this one tree, "
            "which cannot be estimated honestly from the data it was fitted on (its in-sample "
            "value is optimistic).")
    resp, peg = info.get("responder"), info.get("peg")
    if resp:
        text += (f" Procedure value: responder rate {_pct(resp['estimate'])} "
                 f"[{_pct(resp['lower'])}, {_pct(resp['upper'])}]")
        if peg:
            text += (f"; mean week-24 PEG {peg['estimate']:.2f} [{peg['lower']:.2f}, "
                     f"{peg['upper']:.2f}]")
        text += "."
    agree = info.get("agreement", float("nan"))
    if np.isfinite(agree):
        text += (f" The tree shown gives {agree:.0%} of participants the first treatment their "
                 "cross-fitted tree gave them"
                 + (" (low agreement: the tree is unstable, and the value speaks for the "
                    "procedure far more than for this tree)." if agree < 0.8 else ".")
                 + " A tree is shown even when no tailoring is real; read it with the "
                 "contrasts above.")
    return text


def importance_plot(table: pd.DataFrame) -> plt.Figure:
    """Horizontal bars of importance by domain with 95% interval whiskers."""
    t = table.iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(t) + 1.4))
    y = np.arange(len(t))
    est = t["importance"].to_numpy()
    ax.barh(y, est, color="#2b6cb0", alpha=0.75)
    ax.errorbar(est, y, xerr=[est - t["lower"].to_numpy(), t["upper"].to_numpy() - est],
                fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_yticks(y, [domain_label(d) for d in t["domain"]], fontsize=9)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("increase in squared error of the predicted effects when the domain is "
                  "permuted\n(PEG points squared; 95% site-clustered interval)")
    ax.set_title("Which domain drives the estimated effect differences (permutation "
                 "importance)", loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def forest_by_domain_plot(table: pd.DataFrame, best: str) -> plt.Figure:
    """Forest plot: per domain, bottom and top third, each arm minus the best single one."""
    t = table[table["subgroup"] != "top minus bottom"]
    fig, ax = plt.subplots(figsize=(9, 0.24 * len(t) + 1.6))
    y = np.arange(len(t))[::-1]
    colours = {"bottom third": "#2b6cb0", "top third": "#dd6b20"}
    for label, colour in colours.items():
        sel = (t["subgroup"] == label).to_numpy()
        est = t["estimate"].to_numpy()[sel]
        ax.errorbar(est, y[sel], xerr=[est - t["lower"].to_numpy()[sel],
                                       t["upper"].to_numpy()[sel] - est],
                    fmt="o", ms=4, capsize=2, color=colour, label=label)
    ax.set_yticks(y, [f"{domain_label(d)}: {o} ({s.split()[0]})" for d, o, s in
                      zip(t["domain"], t["option"], t["subgroup"], strict=True)], fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"difference in mean week-24 PEG vs {best} (negative favours the arm; "
                  "95% site-clustered interval)")
    ax.set_title(f"Effects by domain: bottom vs top third of each domain's score, each arm "
                 f"vs {best}", loc="left", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def _ci(e: float, lo: float, hi: float, fmt: str = ".2f") -> str:
    return f"{e:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def add_heterogeneity_sections(report: HtmlReport, result: AnalysisResult,
                               plots: Path) -> None:
    """The importance table and bar plot, and the forest plot by domain with its table."""
    imp = result.effect_importance
    if not imp.empty:
        report.heading("Which domain drives the effect differences? (variable importance)")
        fig = importance_plot(imp)
        report.figure(fig, save_as=plots / "importance")
        plt.close(fig)
        report.table(pd.DataFrame({
            "Rank": imp["rank"], "Domain": imp["domain"].map(domain_label),
            "Variables": imp["variables"].map(variables_label),
            "Importance [95% interval]": [_ci(e, lo, hi, ".3f") for e, lo, hi in
                                          zip(imp["importance"], imp["lower"], imp["upper"],
                                              strict=True)]}),
            caption="Permutation importance, by domain, of a cross-fitted linear DR-learner "
                    "(ridge on the doubly robust first-treatment contrasts, the analysis' "
                    "fold partition): how much worse the predicted effects get when the "
                    "domain's variables are shuffled. Intervals are site-clustered and "
                    "conditional on the fitted models; 0 means the model does not use the "
                    "domain. Noisier than the per-domain tests above: domains whose intervals "
                    "overlap are not ranked by the data. Stage 1 only.")
    forest = result.domain_forest
    if not forest.empty:
        best = result.primary("peg")["chosen_best"] if not result.contrasts.empty else "best"
        report.heading("Forest plot by domain")
        fig = forest_by_domain_plot(forest, best)
        report.figure(fig, save_as=plots / "forest_domains")
        plt.close(fig)
        report.table(pd.DataFrame({
            "Domain": forest["domain"].map(domain_label), "Subgroup": forest["subgroup"],
            "First treatment": forest["option"], "Participants": forest["n"],
            f"Difference vs {best}, PEG [95% interval]": [
                _ci(e, lo, hi) for e, lo, hi in zip(forest["estimate"], forest["lower"],
                                                    forest["upper"], strict=True)]}),
            caption="Per domain, the bottom and top third of the domain's score (mean of its "
                    "standardized variables): each first treatment minus the best single "
                    f"treatment ({best}) on mean week-24 PEG (doubly robust, "
                    "censoring-weighted, site-clustered intervals), and the top-minus-bottom "
                    "difference (an effect modification estimate). Not adjusted for multiple "
                    "comparisons: the per-domain tests above are.")
