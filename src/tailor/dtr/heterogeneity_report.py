"""Report sections for effect heterogeneity: what the interpretable regime's value is the value
of, variable importance by domain at stage 1 and at stage 2 (single vs combination options;
permutation importance with interval whiskers beside mean absolute Shapley values) and the forest
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
           "interpretable_in_words", "stage2_importance_plot"]


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


def _importance_axes(ax: plt.Axes, t: pd.DataFrame, title: str, labels: bool = True) -> None:
    """Bars of permutation importance with 95% interval whiskers (domains bottom-up)."""
    y = np.arange(len(t))
    est = t["importance"].to_numpy()
    ax.barh(y, est, color="#2b6cb0", alpha=0.75)
    ax.errorbar(est, y, xerr=[est - t["lower"].to_numpy(), t["upper"].to_numpy() - est],
                fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_yticks(y, [domain_label(d) for d in t["domain"]] if labels else [], fontsize=9)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_title(title, loc="left", fontsize=10)


def _shapley_axes(ax: plt.Axes, t: pd.DataFrame) -> None:
    """Bars of mean absolute Shapley value of the predicted effect (no interval)."""
    ax.barh(np.arange(len(t)), t["shapley"].to_numpy(), color="#dd6b20", alpha=0.75)
    ax.set_yticks(np.arange(len(t)), [])
    ax.set_xlabel("mean |Shapley value| of the predicted effect\n(PEG points; descriptive, "
                  "no interval)")
    ax.set_title("Shapley values", loc="left", fontsize=10)


def importance_plot(table: pd.DataFrame) -> plt.Figure:
    """Horizontal bars of importance by domain with 95% interval whiskers, and beside them the
    mean absolute Shapley values of the same learner (when it is linear)."""
    t = table.iloc[::-1]
    shap = "shapley" in t and bool(np.isfinite(t["shapley"]).all())
    fig, axes = plt.subplots(1, 2 if shap else 1, figsize=(10 if shap else 8,
                                                             0.45 * len(t) + 1.6),
                             squeeze=False, gridspec_kw={"width_ratios": [3, 2]} if shap
                             else None)
    _importance_axes(axes[0, 0], t, "Which domain drives the estimated effect differences "
                     "(permutation importance)")
    axes[0, 0].set_xlabel("increase in squared error of the predicted effects when the "
                          "domain is permuted\n(PEG points squared; 95% site-clustered "
                          "interval)")
    if shap:
        _shapley_axes(axes[0, 1], t)
    fig.tight_layout()
    return fig


def stage2_importance_plot(table: pd.DataFrame) -> plt.Figure:
    """One panel per group of stage-2 options (all, combination, single): permutation
    importance by domain with 95% interval whiskers (domains in the same order)."""
    groups = list(dict.fromkeys(table["options"]))
    first = table[table["options"] == groups[0]].iloc[::-1]
    order = list(first["domain"])
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups) + 2,
                                                       0.45 * len(order) + 1.8),
                             squeeze=False, sharey=True)
    for k, group in enumerate(groups):
        t = table[table["options"] == group].set_index("domain").loc[order].reset_index()
        _importance_axes(axes[0, k], t, f"Stage 2: {group}", labels=k == 0)
        axes[0, k].set_xlabel("permutation importance\n(PEG points squared; 95% interval)",
                              fontsize=8)
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


def _num(v: float, fmt: str = ".3f") -> str:
    return f"{v:{fmt}}" if np.isfinite(v) else "n/a"


def _importance_cells(t: pd.DataFrame) -> dict[str, list[str]]:
    """The importance with its interval and the mean |Shapley value|, as table cells."""
    shap = t["shapley"] if "shapley" in t else pd.Series(np.nan, index=t.index)
    return {"Importance [95% interval]": [
                _ci(e, lo, hi, ".3f") for e, lo, hi in zip(t["importance"], t["lower"],
                                                           t["upper"], strict=True)],
            "Mean |Shapley value|": [_num(v) for v in shap]}


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
            "Variables": imp["variables"].map(variables_label), **_importance_cells(imp)}),
            caption="Permutation importance, by domain, of a cross-fitted linear DR-learner "
                    "(ridge on the doubly robust first-treatment contrasts, the analysis' "
                    "fold partition): how much worse the predicted effects get when the "
                    "domain's variables are shuffled. Intervals are site-clustered and "
                    "conditional on the fitted models; 0 means the model does not use the "
                    "domain. Noisier than the per-domain tests above: domains whose intervals "
                    "overlap are not ranked by the data. Stage 1 (first treatment). Mean "
                    "|Shapley value|: exact Shapley values of the same cross-fitted linear "
                    "learner's predicted effect (coefficient times the variable's deviation "
                    "from its mean, summed over the domain's variables), averaged in "
                    "absolute value over participants and contrasts, in PEG points; it "
                    "describes the fitted model and is positive even for a domain that "
                    "modifies nothing, so it has no interval.")
    imp2 = result.effect_importance_stage2
    if not imp2.empty:
        report.heading("Predictors of response at stage 2: single vs combination options")
        fig = stage2_importance_plot(imp2)
        report.figure(fig, save_as=plots / "importance_stage2")
        plt.close(fig)
        report.table(pd.DataFrame({
            "Stage-2 options": imp2["options"], "Rank": imp2["rank"],
            "Domain": imp2["domain"].map(domain_label), **_importance_cells(imp2),
            "Participants": imp2["n"]}),
            caption="The same importance for the second treatment, among participants with a "
                    "week-12 decision (non-responders; excellent responders continue without "
                    "one): each stage-2 option's doubly robust score minus the mean score of "
                    "the participant's feasible options, a cross-fitted linear DR-learner per "
                    "option, permutation importance summed over all options, over the "
                    "combination options (augment: the first arm plus another) and over the "
                    "single options (switch to another arm; continue). Intervals are "
                    "site-clustered and conditional on the fitted models: in simulated worlds "
                    "without modification they cover 0 about 89% of the time (nominal 95%; the "
                    "misses mostly below 0), and a lower bound above 0 occurs about 3% of the "
                    "time (nominal 2.5%). Per domain, not family-wise.")
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
