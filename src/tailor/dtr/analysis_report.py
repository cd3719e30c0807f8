"""Files of an analysis: results.json, CSV tables, plots (PNG and SVG), model file, report.html."""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from tailor import __version__
from tailor.dtr.analysis import AnalysisResult
from tailor.dtr.clusters import MIN_CLUSTERS
from tailor.dtr.heterogeneity_report import add_heterogeneity_sections, interpretable_in_words
from tailor.dtr.labels import (
    domain_label,
    readable_columns,
    term_label,
    text_labelled,
    variable_label,
    variables_label,
)
from tailor.report import HtmlReport

__all__ = ["primary_in_words", "readable_values", "regime_in_words", "write_analysis"]

ARM_COLOURS = {"ESC": "#718096", "ACT": "#2b6cb0", "EBEM": "#dd6b20", "DUL": "#38a169"}


def _fmt(value: float, percent: bool, signed: bool = False) -> str:
    if not np.isfinite(value):
        return "n/a"
    sign = "+" if signed else ""
    return f"{value * 100:{sign}.1f}%" if percent else f"{value:{sign}.2f}"


def readable_values(table: pd.DataFrame, *, percent: bool) -> pd.DataFrame:
    """A value table for people: regime, estimate with its 95% interval, method."""
    return pd.DataFrame({
        "Regime": table["regime"],
        "Estimate [95% interval]": [f"{_fmt(e, percent)} [{_fmt(lo, percent)}, "
                                    f"{_fmt(hi, percent)}]" for e, lo, hi in
                                    zip(table["estimate"], table["lower"], table["upper"],
                                        strict=True)],
        "Participants with the outcome": [("" if pd.isna(v) else f"{int(v)}")
                                          for v in table["n"]],
        "Method": table["method"]})


def primary_in_words(result: AnalysisResult, outcome: str = "responder") -> str:
    """The primary contrast as a clinician reads it, from the data (never hard-coded)."""
    p = result.primary(outcome)
    pct = outcome == "responder"
    scale, unit = (100.0, " points of responders") if pct else (1.0, " PEG points")
    est, lo, hi = p["estimate"] * scale, p["lower"] * scale, p["upper"] * scale
    text = (f"Giving each patient the treatment the regime picks vs giving everyone "
            f"{p['chosen_best']} (the best single first treatment, chosen from the data): "
            f"{est:+.1f}{unit} [{lo:+.1f}, {hi:+.1f}]")
    if p["shows_benefit"]:
        verdict = ("; the trial shows that personalizing beats the best single treatment "
                   f"(one-sided p = {p['p_one_sided']:.3f}).")
    else:
        verdict = ("; the trial does not show that personalizing beats the best single "
                   f"treatment (one-sided p = {p['p_one_sided']:.2f}"
                   + ("; the interval includes 0)." if lo <= 0 <= hi else ")."))
    return text + verdict


def _value_plot(result: AnalysisResult) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (table, label, scale) in zip(axes, (
            (result.values_peg, "mean week-24 PEG (lower is better)", 1.0),
            (result.values_responder, "responder rate at week 24 (PEG -30%)", 100.0)),
            strict=True):
        y = np.arange(len(table))[::-1]
        est = table["estimate"].to_numpy() * scale
        lo = table["lower"].to_numpy() * scale
        hi = table["upper"].to_numpy() * scale
        ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", color="#2b6cb0", capsize=3)
        ax.set_yticks(y, table["regime"])
        ax.set_xlabel(label + (" (%)" if scale == 100 else ""))
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_title("Value of each regime, 95% intervals", loc="left")
    fig.tight_layout()
    return fig


def _leaves(node: dict[str, Any]) -> int:
    return 1 if node.get("leaf") else _leaves(node["left"]) + _leaves(node["right"])


def _condition(node: dict[str, Any], left: bool, *, named: bool = True) -> str:
    """A split as a reader reads it ("PROMIS fatigue T-score <= 60.7"); without the
    variable's name when ``named`` is false (the tree plot writes it in the node)."""
    name = f"{variable_label(node['feature'])} " if named else ""
    if node.get("kind") == "categorical":  # rows at that level go left
        return f"{name}{'=' if left else '!='} {node['level']}"
    op = "<=" if left else ">"
    return f"{name}{op} {node['threshold']:.3g}"


def regime_in_words(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    """One sentence per leaf: 'If A and B: start EBEM (n = 446).'"""
    if tree.get("leaf"):
        cond = " and ".join(prefix) if prefix else "for everyone"
        head = f"If {cond}" if prefix else "For everyone"
        return [f"{head}: start {tree['action']} (n = {tree['n']}); if it is not feasible, "
                "the next in the leaf's ranking."]
    return (regime_in_words(tree["left"], (*prefix, _condition(tree, True)))
            + regime_in_words(tree["right"], (*prefix, _condition(tree, False))))


def _tree_plot(result: AnalysisResult) -> plt.Figure:
    tree = result.tree
    width = max(_leaves(tree), 1)
    depth = result.plan.tree_depth
    fig, ax = plt.subplots(figsize=(max(6.0, 2.6 * width), 1.6 * (depth + 1)))
    ax.axis("off")
    counter = [0]

    def place(node: dict[str, Any], level: int) -> float:
        if node.get("leaf"):
            x = counter[0] + 0.5
            counter[0] += 1
            colour = ARM_COLOURS.get(str(node["action"]), "#a0aec0")
            ax.text(x, -level, f"{node['action']}\nn = {node['n']}", ha="center", va="center",
                    fontsize=10, color="white", weight="bold",
                    bbox={"boxstyle": "round,pad=0.5", "fc": colour, "ec": "none"})
            return x
        xl = place(node["left"], level + 1)
        xr = place(node["right"], level + 1)
        x = (xl + xr) / 2
        for child_x, left in ((xl, True), (xr, False)):
            ax.plot([x, child_x], [-level, -level - 1], color="#4a5568", lw=1, zorder=0)
            short = _condition(node, left, named=False)
            ax.text((x + child_x) / 2, -level - 0.5, short, ha="center",
                    va="center", fontsize=8, bbox={"fc": "white", "ec": "none", "pad": 1})
        ax.text(x, -level, f"{variable_label(node['feature'])}\nn = {node['n']}", ha="center", va="center",
                fontsize=9, bbox={"boxstyle": "round,pad=0.4", "fc": "#edf2f7", "ec": "#4a5568"})
        return x

    place(tree, 0)
    ax.set_xlim(0, width)
    ax.set_ylim(-depth - 0.6, 0.6)
    ax.set_title("Interpretable first-treatment regime (exact policy tree on doubly robust "
                 "scores)", loc="left")
    return fig


def _phenotype_plot(result: AnalysisResult, data: pd.DataFrame) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    rec = result.recommendations["A1_flexible"].astype(str)
    xcol = "amplifier_index" if "amplifier_index" in data else result.plan.tree_features[0]
    ycol = "peg_baseline" if "peg_baseline" in data else result.plan.tree_features[-1]
    for arm, colour in ARM_COLOURS.items():
        sel = (rec == arm).to_numpy()
        if sel.any():
            axes[0].scatter(data.loc[sel, xcol], data.loc[sel, ycol], s=10, alpha=0.6,
                            color=colour, label=f"{arm} ({sel.sum()})")
    axes[0].set_xlabel(f"{variable_label(xcol)} (higher = more 'amplifier')")
    axes[0].set_ylabel(variable_label(ycol))
    axes[0].legend(title="estimated best first treatment", fontsize=8)
    pm = result.phenotype_map
    if pm.empty:  # the step could not be fitted (the report says why)
        axes[1].set_axis_off()
        fig.tight_layout()
        return fig
    pm = pm[pm["n"] > 0]
    x = np.arange(len(pm))
    err = [pm["benefit"] - pm["benefit_lower"], pm["benefit_upper"] - pm["benefit"]]
    axes[1].bar(x, pm["benefit"], color=[ARM_COLOURS.get(o, "#999") for o in pm["option"]],
                yerr=err, capsize=4)
    axes[1].set_xticks(x, [f"{o}\n(n={n})" for o, n in zip(pm["option"], pm["n"], strict=True)])
    axes[1].axhline(0, color="black", lw=0.8)
    axes[1].set_ylabel("benefit over next-best feasible arm\n(PEG points, 95% interval)")
    fig.suptitle("The phenotype map: who is estimated to do best on which first treatment",
                 x=0.01, ha="left")
    fig.tight_layout()
    return fig


def _forest_plot(result: AnalysisResult) -> plt.Figure | None:
    sub = result.subgroups
    if sub.empty:
        return None
    sub = sub.dropna(subset=["difference"])
    sub = sub[sub["option"] != sub["option"].iloc[0]] if len(sub) else sub
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(sub) + 1.5))
    y = np.arange(len(sub))[::-1]
    ax.errorbar(sub["difference"], y, xerr=[sub["difference"] - sub["lower"],
                                            sub["upper"] - sub["difference"]],
                fmt="o", color="#2b6cb0", capsize=2, ms=4)
    ax.set_yticks(y, [f"{variable_label(v)} = {lv}: {o}" for v, lv, o in
                      zip(sub["variable"], sub["level"], sub["option"], strict=True)], fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("difference in mean week-24 PEG vs ESC (negative favours the arm)")
    ax.set_title("Subgroup effects of the first treatment (IPW, 95% intervals)", loc="left")
    fig.tight_layout()
    return fig


def _calibration_plot(result: AnalysisResult) -> plt.Figure:
    """Predicted chance of response (deciles) against the observed share, with the diagonal."""
    cal = result.calibration
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="#a0aec0", lw=1, ls="--", label="perfect calibration")
    ax.plot(cal["predicted"], cal["observed"], "o-", color="#2b6cb0",
            label="deciles of the predicted chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted chance of response (cross-fitted)")
    ax.set_ylabel("observed share responding at week 24")
    ax.set_title(f"Calibration: ECE {result.calibration_ece:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def _stage1_method(result: AnalysisResult) -> str:
    """The stage-1 coefficient interval's method as the bootstrap recorded it."""
    coef = result.coefficients.get(1, pd.DataFrame())
    return str(coef["method"].iloc[0]) if "method" in coef and len(coef) else "m-out-of-n"


def _bootstrap_sites(result: AnalysisResult) -> int | None:
    """The number of sites the Q-learning bootstrap resampled, as its stage-1 interval method
    records it (:meth:`tailor.dtr.bootstrap.BootstrapResult.method`); None: participants."""
    found = re.search(r"(\d+) sites resampled", _stage1_method(result))
    return int(found.group(1)) if found else None


def intervals_used(result: AnalysisResult) -> list[str]:
    """The Methods' account of which interval each shown number carries (issue 14: say which
    stage-1 interval is used and what every interval treats as independent)."""
    clus = (f"site-clustered (CR1, clusters '{result.plan.cluster}')" if result.plan.cluster
            else "participant-level (no site column)")
    sites = _bootstrap_sites(result)
    if sites is not None:
        short = "whole sites resampled"
        unit = (f"{short} ({sites} sites, clusters '{result.plan.cluster}'; Davison & Hinkley "
                "1997, sec. 3.8; Field & Welsh 2007)")
        scale = (f"m counts sites: m = ceil(G^((1 + 0.1 (1 - p)) / 1.1)) of the G = {sites}, "
                 "p the estimated non-regular share of participants, and the root interval "
                 "rescales by sqrt(m / G); with few sites cluster-bootstrap intervals run "
                 "somewhat narrow, see docs/analysis.md")
    else:
        short = "participants resampled"
        unit = short + (f" (fewer than {MIN_CLUSTERS} '{result.plan.cluster}' values: too "
                        "few for a site bootstrap)" if result.plan.cluster else "")
        scale = "the root interval rescales by sqrt(m / n)"
    return [
        "Intervals, number by number. Regime values, the as-randomized and single-treatment "
        f"values, the contrasts and the time-point rates: 95% Wald intervals, {clus}, from the "
        "cross-fitted doubly robust influence functions; the best single treatment's interval "
        "is selection-adjusted (cluster bootstrap of the best, simultaneous max-|t|) and the "
        "primary contrast's one-sided bound is an intersection-union test against every "
        "single treatment.",
        f"Stage-1 coefficients (non-regular: the stage-2 rule's argmax makes them "
        f"non-differentiable where two stage-2 options tie): {_stage1_method(result)} "
        "bootstrap (Chakraborty, Laber & Zhao 2013; m chosen from the estimated share of "
        f"participants whose best two stage-2 options cannot be told apart; {unit}; {scale}). "
        "No projection or adaptive-confidence (Laber et al. 2014) interval is computed. "
        "Stage-2 coefficients: percentile bootstrap ("
        + (f"all {sites} of {sites} sites drawn" if sites is not None else "n out of n")
        + f"; {short}).",
        "Phenotype map benefit intervals: from the same stage-1 bootstrap replicates and the "
        "same m-out-of-n root interval as the stage-1 coefficients (replicates of size m "
        f"rescaled to the full sample; {short}).",
        f"Variable importance (stages 1 and 2) and the forest plot by domain: 95% Wald "
        f"intervals, {clus}, conditional on the fitted models; Shapley values: no interval. "
        "Embedded regimes: Wald intervals with the "
        + ("site-clustered sandwich covariance (estimating functions summed within site, "
           "x G/(G-1))" if result.plan.cluster else
           "sandwich covariance (participant level)") + ". "
        f"Subgroup effects: inverse-probability-weighted means with influence-function "
        f"intervals, {clus}. "
        "The decision tool's model file: a bootstrap of the whole two-stage fit, resampling "
        "sites.",
    ]


def _software() -> dict[str, str]:
    import numba
    import scipy
    import sklearn
    import statsmodels

    return {"tailor": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__, "scipy": scipy.__version__,
            "statsmodels": statsmodels.__version__, "scikit-learn": sklearn.__version__,
            "numba": numba.__version__}


def write_analysis(result: AnalysisResult, data: pd.DataFrame, out: Path, *,
                   sections: Callable[[HtmlReport], None] | None = None) -> dict[str, Path]:
    """Write every output of an analysis into ``out``; returns the paths by name.

    ``sections``, when given, adds sections at the top of the report (``tailor demo`` adds the
    trial flow, balance and response by stage this way)."""
    out.mkdir(parents=True, exist_ok=True)
    plots = out / "plots"
    paths: dict[str, Path] = {}
    tables = {"values_peg": result.values_peg, "values_responder": result.values_responder,
              "contrasts": result.contrasts, "heterogeneity": result.heterogeneity,
              "assignment_shares": result.assignment_shares,
              "effect_importance": result.effect_importance,
              "effect_importance_stage2": result.effect_importance_stage2,
              "domain_forest": result.domain_forest,
              "embedded_regimes": result.embedded,
              "embedded_pairwise": result.embedded_pairwise,
              "coefficients_stage1": result.coefficients[1],
              "coefficients_stage2": result.coefficients[2],
              "phenotype_map": result.phenotype_map, "modifier_importance": result.modifiers,
              "subgroups": result.subgroups, "recommendations": result.recommendations,
              "response_by_arm": result.response_by_arm, "balance": result.balance,
              "calibration": result.calibration}
    for name, table in tables.items():
        path = out / f"{name}.csv"
        table.to_csv(path, index=False)
        paths[name] = path
    model_path = out / "regime-model.json"
    model_path.write_text(json.dumps(result.model, indent=1))
    paths["model"] = model_path
    summary: dict[str, Any] = {
        "protocol": {"name": result.protocol_name, "content_hash": result.protocol_hash},
        "data_hash": result.data_hash, "n": result.n, "n_with_outcome": result.n_outcome,
        "plan": {k: list(v) if isinstance(v, tuple) else v
                 for k, v in result.plan.__dict__.items()},
        "analysis_plan": result.plan_hash,
        "primary_contrast": result.primary("responder") if not result.contrasts.empty
        else None,
        "time_points": result.time_points.to_dict(orient="records"),
        "headline_responder_rates": result.headline(),
        "values_peg": result.values_peg.to_dict(orient="records"),
        "tree_rules": result.tree_rules, "interpretable": result.interpretable,
        "notes": list(result.notes),
        "step_errors": dict(result.step_errors),
        "software": _software(),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=str))
    paths["results"] = out / "results.json"

    report = HtmlReport(f"SMART analysis: protocol '{result.protocol_name}'",
                        subtitle=f"{result.n} randomized participants, {result.n_outcome} with "
                                 f"the week-24 outcome; data {result.data_hash}; protocol "
                                 f"{result.protocol_hash[:12]}.")
    if sections is not None:
        sections(report)
    report.heading("Does personalizing beat the best single treatment?")
    if not result.contrasts.empty:
        report.paragraph(primary_in_words(result, "responder"), note=True)
        report.paragraph("On mean week-24 PEG (lower is better): "
                         + primary_in_words(result, "peg"))
    if not result.time_points.empty:
        tp = result.time_points
        report.paragraph("As randomized in this trial: " + "; ".join(
            f"{m} {_fmt(e, 'rate' in m)} [{_fmt(lo, 'rate' in m)}, {_fmt(hi, 'rate' in m)}]"
            for m, e, lo, hi in zip(tp["measure"], tp["estimate"], tp["lower"], tp["upper"],
                                    strict=True)) + ".")
    cont = result.contrasts
    if not cont.empty:
        shown = cont[cont["contrast"] != "as randomized (reference)"]
        report.table(pd.DataFrame({
            "Comparison": shown["contrast"],
            "Outcome": shown["outcome"].map({"responder": "responder rate, week 24",
                                             "peg": "mean PEG, week 24"}),
            "Difference [95% interval]": [
                f"{_fmt(e, o == 'responder', True)} [{_fmt(lo, o == 'responder', True)}, "
                f"{_fmt(hi, o == 'responder', True)}]" for e, lo, hi, o in
                zip(shown["estimate"], shown["lower"], shown["upper"], shown["outcome"],
                    strict=True)],
            "One-sided p": [f"{v:.3f}" for v in shown["p_one_sided"]],
            "Shows a benefit": ["yes" if v else "no" for v in shown["shows_benefit"]]}),
            caption="Primary and secondary contrasts: cross-fitted regimes minus the best "
                    "single first treatment (selection-aware: the benefit is claimed only if "
                    "the regime beats every single treatment, one-sided, alpha = "
                    f"{result.plan.alpha / 1:.2f}).")
    fig = _value_plot(result)
    report.figure(fig, caption="AIPW values with 95% intervals.", save_as=plots / "values")
    plt.close(fig)
    report.table(readable_values(result.values_responder, percent=True),
                 caption="Responder rate at week 24 (PEG reduced by >= "
                         f"{result.plan.responder_threshold:.0%}) by regime.")
    report.table(readable_values(result.values_peg, percent=False),
                 caption="Mean week-24 PEG by regime (lower is better).")
    if not result.heterogeneity.empty:
        report.heading("Which domain of the phenotype modifies the effect?")
        het = result.heterogeneity
        report.table(pd.DataFrame({
            "Domain": het["domain"].map(domain_label),
            "Variables": het["variables"].map(variables_label),
            "Test statistic (df)": [f"{v:.2f} ({d})" for v, d in
                                    zip(het["statistic"], het["df"], strict=True)],
            "p": [f"{v:.3g}" for v in het["p_value"]],
            "p (Holm)": [f"{v:.3g}" for v in het["p_holm"]],
            "Modifies (family-wise 5%)": ["yes" if v else "no" for v in het["modifies"]]}),
            caption="One joint test per domain of whether its variables change any first "
                    "treatment's effect relative to the reference (best linear projection of "
                    "cross-fitted doubly robust contrasts, site-clustered), Holm-adjusted "
                    "across domains.")
    add_heterogeneity_sections(report, result, plots)
    if not result.assignment_shares.empty:
        sh = result.assignment_shares
        report.table(pd.DataFrame({
            "Group": sh["group"], "Decision": sh["stage"], "Choice": sh["choice"],
            "Share": [f"{v:.0%}" for v in sh["share"]], "Of": sh["n"]}),
            caption="Counterfactual assignment shares under the deployed regime "
                    "(cross-fitted recommendations); the contraindicated subgroup separately.")
    report.heading("The interpretable regime (exploratory)")
    report.paragraph(interpretable_in_words(result))
    fig = _tree_plot(result)
    report.figure(fig, save_as=plots / "regime_tree")
    plt.close(fig)
    report.bullets(regime_in_words(result.tree))
    report.paragraph("At week 12 (stage 2) the deployed regime recommends, among the options the "
                     "protocol allows for the response category, the one with the best estimated "
                     "Q-value; its coefficients are below.")
    report.heading("The phenotype map")
    fig = _phenotype_plot(result, data.reset_index(drop=True))
    report.figure(fig, save_as=plots / "phenotype_map")
    plt.close(fig)
    if not result.phenotype_map.empty:
        report.table(readable_columns(result.phenotype_map),
                     caption="Profiles of those for whom each first treatment is estimated "
                             "best.")
    if not result.modifiers.empty:
        report.table(readable_columns(result.modifiers.assign(
            variable=result.modifiers["variable"].map(variable_label))),
            caption="Effect-modifier importance (permutation).")
    forest = _forest_plot(result)
    if forest is not None:
        report.figure(forest, save_as=plots / "forest")
        plt.close(forest)
    if not result.calibration.empty:
        report.heading("Is the decision tool's chance of response calibrated?")
        report.paragraph(
            "The decision tool's chance of response for the first treatment each participant "
            "received, cross-fitted (each participant predicted by the model fitted without "
            f"their fold; {result.plan.folds} folds), against whether they responded at week "
            "24, by deciles of the prediction (censoring-weighted). Expected calibration "
            f"error (ECE, the size-weighted mean gap): {result.calibration_ece:.3f}. The "
            "participants followed the trial's randomized second step, the prediction the "
            "model's own; held-out simulated patients: benchmarks/results/decide_coverage.md.")
        fig = _calibration_plot(result)
        report.figure(fig, save_as=plots / "calibration")
        plt.close(fig)
        cal = result.calibration
        report.table(pd.DataFrame({
            "Decile": cal["bin"], "Participants": cal["n"],
            "Predicted range": [f"{lo:.0%}-{hi:.0%}" for lo, hi in
                                zip(cal["lowest"], cal["highest"], strict=True)],
            "Mean predicted": [f"{v:.1%}" for v in cal["predicted"]],
            "Observed": [f"{v:.1%}" for v in cal["observed"]]}),
            caption="Calibration of the chance of response by decile of the prediction.")
    if not result.embedded.empty:
        report.heading("Embedded regimes")
        report.table(readable_columns(result.embedded.head(15)),
                     caption="The 15 embedded regimes with the lowest mean week-24 PEG "
                             "(weighted and replicated).")
    report.heading("Trial summary")
    report.table(readable_columns(result.response_by_arm),
                 caption="Response by first treatment.")
    if not result.balance.empty:
        bal = result.balance
        if "factor" in bal:
            bal = bal.assign(factor=bal["factor"].map(variable_label))
        report.table(readable_columns(bal), caption="First-treatment counts by minimization factor.")
    report.heading("Coefficients")
    for stage, caption in ((1, f"Stage 1 ({_stage1_method(result)} bootstrap intervals; "
                               "non-regular: see Methods)."),
                           (2, "Stage 2 (percentile bootstrap intervals).")):
        coef = result.coefficients[stage]
        if "term" in coef:
            coef = coef.assign(term=coef["term"].map(term_label))
        report.table(readable_columns(coef), caption=caption)
    if result.step_errors:
        report.heading("Steps that could not be fitted")
        report.paragraph("These parts of the analysis could not be fitted to this data; their "
                         "tables are left out (not shown as NaN):", note=True)
        report.bullets([f"{step.replace('_', ' ')}: {reason}"
                        for step, reason in result.step_errors.items()])
    report.heading("Methods and software")
    report.bullets([
        "Q-learning (Murphy 2005) with per-participant feasible options; least squares; "
        "bootstrap intervals (percentile; adaptive m-out-of-n at stage 1).",
        "Regime values by augmented inverse probability weighting (Zhang et al. 2012) with the "
        "logged randomization probabilities. Every learned regime is cross-fitted as a whole "
        f"({result.plan.folds} folds, one partition shared by the doubly robust scores, the "
        "tree, the category regime and the stage-2 rule): no participant is scored by a model "
        "fitted on them.",
        ("Standard errors are site-clustered (cluster-robust influence functions, CR1; "
         f"clusters: '{result.plan.cluster}')" if result.plan.cluster else
         "Standard errors treat participants as independent (no site column)")
        + "; the best single treatment is selection-adjusted (bootstrap of the best, "
        f"{result.plan.bootstrap} cluster resamples; simultaneous max-|t| interval); the "
        "primary contrast is an intersection-union one-sided test against every single "
        "treatment.",
        f"Analysis plan: {result.plan.plan_name}"
        + (f" (file hash {result.plan.plan_file_hash[:12]})" if result.plan.plan_file_hash
           else "") + f"; resolved plan hash {result.plan_hash}. Candidate tailoring "
        "variables by domain: " + ("; ".join(
            f"{domain_label(d)}: {', '.join(variable_label(x) for x in v)}"
            for d, v in result.plan.domains)
            or ", ".join(variable_label(x) for x in result.plan.tree_features)) + ".",
        "Penalized Q-learning over every candidate variable (lasso on the option "
        "interactions, cross-validated one-SE penalty, relaxed refit) and, when the plan asks "
        "for it, an ensemble regime (stacked DR-learner: ridge + gradient boosting on the "
        "doubly robust scores), each cross-fitted like the others.",
        *intervals_used(result),
        "Interpretable regime: exact policy tree (Athey & Wager 2021) of depth "
        f"{result.plan.tree_depth} on censoring-weighted doubly robust scores; the "
        "pre-specified phenotype-category regime ranks options by mean score among members "
        "who may take them.",
        "Effect heterogeneity by domain: permutation importance of a cross-fitted linear "
        "DR-learner (loss against the doubly robust contrasts, site-clustered intervals "
        "conditional on the fitted models) with exact Shapley values of its predicted effect "
        "beside it, at stage 1 (first-treatment contrasts with the reference arm) and at "
        "stage 2 (each option vs the mean of the participant's feasible options, among those "
        "with a week-12 decision; all options, combinations and single options) and, per "
        "domain, the bottom vs top third "
        "of the domain's score, each first treatment vs the best single one (doubly robust, "
        "site-clustered); the interpretable regime's value is the cross-fitted value of the "
        "tree-learning procedure, not of the tree shown.",
        "Embedded regimes: weighted and replicated estimator (Nahum-Shani et al. 2012).",
        "Missing week-24 outcomes: inverse-probability-of-censoring weights.",
        *(text_labelled(note) for note in result.notes),
        "Software: " + ", ".join(f"{k} {v}" for k, v in _software().items()),
    ])
    paths["report"] = report.write(out / "report.html")
    return paths
