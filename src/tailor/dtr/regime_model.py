"""The deployed regime as a versioned model file, and what it predicts for new patients.

``tailor analyze`` writes ``regime-model.json`` (format ``tailor-regime/2``, built by
:func:`regime_document`). One model speaks: the PEG Q-learning regime. Its stage-1 Q-function
gives, for every feasible first treatment,

* the **expected week-24 PEG** when that treatment is followed by the regime's second step,
  with a 95% interval from the **bootstrap covariance** of the coefficients (participants or
  whole sites resampled; m-out-of-n replicates rescaled by m/n, or m/G when m of the G sites
  are drawn), widened for inputs that are missing;
* the **chance of response** (PEG reduced by the protocol's responder threshold) from the same
  prediction and the model's residual spread (stage-1 plus stage-2 residual variance, normal
  errors), with the interval obtained by mapping the ends of the expected-PEG interval;
* the **set of equally reasonable treatments**: every treatment whose expected PEG is within
  the plan's minimal important difference (``mid``, default 1 PEG point) of the best, or whose
  95% difference interval includes 0;
* the **recommendation** (the best of that set) and the second-stage plan per response
  category from the stage-2 Q-function.

The interpretable tree is kept only to say how often it agrees with the recommendation in the
trial (``tree_agreement``), never as a second recommendation.

Missing inputs: a missing numeric feature is integrated over its trial distribution (ten
quantiles, 5th to 95th percentile, kept in the file): the expected PEG is the mean of the
predictions at those values and the prediction variance gains their variance, per missing
feature (independence assumed). Files without the quantiles use the trial mean and
``(mu(mean +- sd) - mu)**2``;
:meth:`RegimeModel.could_change` names the missing inputs whose trial 5th-95th percentile range
would change the recommended treatment.

Term names are products of factors joined by ``:``; a factor is ``Intercept``, a numeric
column ``x``, or an indicator ``col[level]`` (see ``docs/analysis.md``), so evaluation needs no
code from the fitting library and is vectorized over patients (10,000 in a few milliseconds).

References
----------
Murphy SA (2005). A generalization error for Q-learning. JMLR 6:1073-97.
Chakraborty B, Laber EB, Zhao Y (2013). Inference for optimal dynamic treatment regimes using
an adaptive m-out-of-n bootstrap scheme. Biometrics 69:714-23.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special, stats

from tailor.dtr.data import decide
from tailor.exceptions import InputFileError, InvalidFieldError, MissingFieldError
from tailor.protocol import Protocol
from tailor.rules import stage_options

if TYPE_CHECKING:
    import pandas as pd

    from tailor.dtr.bootstrap import BootstrapResult
    from tailor.dtr.qlearning import QLearningResult

__all__ = ["FORMAT", "Decision", "Prediction", "RegimeModel", "StagePlan", "Z", "rcs_columns",
           "regime_document"]

FORMAT = "tailor-regime/2"
# trial quantiles (%) kept per input: a missing input is integrated over them
QUANTILE_POINTS = (5, 15, 25, 35, 45, 55, 65, 75, 85, 95)
Z = float(stats.norm.ppf(0.975))


# ----------------------------------------------------------------------------- bases
def rcs_columns(x: np.ndarray, knots: Sequence[float]) -> np.ndarray:
    """The nonlinear columns (n, k - 2) of a restricted cubic spline with knots ``t_1..t_k``
    (Harrell 2015, eq. 2.25: linear beyond the outer knots), divided by (t_k - t_1)^2 so they
    are on the scale of ``x``. The linear column is ``x`` itself (not returned)."""
    t = np.asarray(knots, dtype=float)
    k = len(t)
    x = np.asarray(x, dtype=float)
    span = (t[-1] - t[-2])
    norm = (t[-1] - t[0]) ** 2

    def cube(u: np.ndarray) -> np.ndarray:
        return np.maximum(u, 0.0) ** 3

    cols = [(cube(x - t[j]) - cube(x - t[-2]) * (t[-1] - t[j]) / span
             + cube(x - t[-1]) * (t[-2] - t[j]) / span) / norm for j in range(k - 2)]
    return np.stack(cols, axis=1) if cols else np.zeros((len(x), 0))


def _derive(cols: Mapping[str, np.ndarray], basis: Mapping[str, Mapping[str, Any]]
            ) -> dict[str, np.ndarray]:
    """``cols`` plus the model's derived basis columns computed from their raw variables."""
    out = dict(cols)
    for name, b in basis.items():
        raw = cols.get(str(b["of"]))
        if raw is not None:
            out[name] = rcs_columns(np.asarray(raw, dtype=float),
                                    b["knots"])[:, int(b["index"])]
    return out


# ----------------------------------------------------------------------------- writing
def _stage_document(result: QLearningResult, stage: int, spec_in: Mapping[str, Any],
                    replicates: np.ndarray | None, scale_factor: float) -> dict[str, Any]:
    fit = result.stage(stage)
    spec = fit.spec
    cov = None if fit.cov is None else fit.cov.tolist()
    boot_cov = None
    if replicates is not None and len(replicates) > 2:
        boot_cov = (np.cov(replicates, rowvar=False) * scale_factor).tolist()
    coef = np.asarray(fit.coefficients()["estimate"], dtype=float)
    scale = float(fit.scale)
    if not np.isfinite(scale):  # a penalized (lasso) fit: residual variance from its fit
        x_obs = fit.x_options[fit.observed[fit.rows], fit.rows, :]
        resid = fit.target[fit.rows] - fit.predict_designs(x_obs[None])[:, 0]
        scale = float(np.nanmean(resid ** 2))
    available = boot_cov is not None or cov is not None
    p = len(spec.term_names)
    return {"stage": stage, "treatment": spec.treatment, "options": list(spec.options),
            "coding": spec.coding, "main": spec_in.get("main"),
            "tailoring": spec_in.get("tailoring"), "terms": list(spec.term_names),
            "coef": coef.tolist(),
            # a penalized fit has no covariance: zeros, flagged, so the file keeps its shape
            "cov": (boot_cov if boot_cov is not None else cov if cov is not None
                    else np.zeros((p, p)).tolist()),
            "cov_method": ("bootstrap" if boot_cov is not None else "model (sandwich)"
                           if cov is not None else "none (penalized fit)"),
            "cov_available": available,
            "model_cov": cov, "residual_variance": scale}


def _features_of(terms: Sequence[str], treatment: str,
                 basis: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """The raw input variables of ``terms`` (a derived basis column counts as its variable)."""
    names: list[str] = []
    for term in terms:
        for f in term.split(":"):
            base = f.split("[", 1)[0]
            if basis and base in basis:
                base = str(basis[base]["of"])
            if base not in ("Intercept", treatment) and base not in names:
                names.append(base)
    return names


def regime_document(fit: QLearningResult, boot: BootstrapResult | None, *,
                    data: pd.DataFrame, protocol: Protocol, stages: Sequence[Mapping[str, Any]],
                    plan: Mapping[str, Any], data_hash: str, outcome: str, baseline: str,
                    responder_threshold: float, tree: Mapping[str, Any] | None,
                    tree_features: Sequence[str], tree_agreement: float | None,
                    simulated: bool | None = None, mid: float = 1.0,
                    date: str | None = None,
                    basis: Mapping[str, Mapping[str, Any]] | None = None,
                    cov_scale: float = 1.0, cov_note: str | None = None) -> dict[str, Any]:
    """The ``tailor-regime/2`` model file of a fitted PEG regime (see the module docstring).

    ``plan`` is the analysis plan as plain data (hashed into the provenance); ``simulated``
    says whether the data were simulated (None: not stated). ``basis`` names derived spline
    columns of the terms (:func:`tailor.dtr.decision_model.flexible_stages`); ``cov_scale``
    multiplies the bootstrap covariances (G / (G - 1) for a site bootstrap) and ``cov_note``
    describes the bootstrap in the file."""
    reps: list[np.ndarray | None] = [None, None]
    factors = [1.0, 1.0]
    if boot is not None:
        k = len(boot.coef_replicates)
        for i in range(min(k, 2)):
            last = i == k - 1
            r = boot.coef_replicates[i]
            if last and boot.last_stage_replicates is not None:
                r = boot.last_stage_replicates
            reps[i] = r
            factors[i] = ((boot.m / boot.units) if (boot.m and not last) else 1.0) * cov_scale
    docs = [_stage_document(fit, s + 1, stages[s], reps[s], factors[s])
            for s in range(len(stages))]
    if cov_note:
        for d in docs:
            if d["cov_method"] == "bootstrap":
                d["cov_method"] = cov_note
    basis_doc = {str(k): {"of": str(v["of"]), "knots": [float(t) for t in v["knots"]],
                          "index": int(v["index"])} for k, v in dict(basis or {}).items()}
    names = _features_of(docs[0]["terms"], docs[0]["treatment"], basis_doc)
    names += [f for f in tree_features if f not in names]
    feature_stats: dict[str, dict[str, float]] = {}
    for name in names:
        if name not in data.columns:
            continue
        x = np.asarray(data[name], dtype=float)
        x = x[np.isfinite(x)]
        if len(x):
            feature_stats[name] = {"mean": float(x.mean()), "sd": float(x.std(ddof=1)),
                                   "p05": float(np.quantile(x, 0.05)),
                                   "p95": float(np.quantile(x, 0.95)),
                                   "min": float(x.min()), "max": float(x.max()),
                                   **{f"q{q:02d}": float(np.quantile(x, q / 100))
                                      for q in QUANTILE_POINTS}}
    plan_json = json.dumps(dict(plan), sort_keys=True, default=str)
    return {
        "format": FORMAT,
        "provenance": {
            "trial": protocol.title if hasattr(protocol, "title") else protocol.name,
            "protocol": {"name": protocol.name, "version": protocol.version,
                         "content_hash": protocol.content_hash},
            "plan_hash": hashlib.sha256(plan_json.encode()).hexdigest()[:16],
            "data_hash": data_hash, "n": len(data),
            "date": date or datetime.now(UTC).date().isoformat(),
            "simulated": simulated},
        "outcome": outcome, "baseline": baseline, "lower_is_better": True,
        "mid": float(mid), "responder_threshold": float(responder_threshold),
        "stages": docs, "features": feature_stats, "basis": basis_doc,
        "tree": tree, "tree_features": list(tree_features),
        "tree_agreement": None if tree_agreement is None else float(tree_agreement),
    }


# ----------------------------------------------------------------------------- reading
def _column(name: str, features: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    if name not in features:
        raise MissingFieldError(f"'{name}' is needed by the model", field=name, rule="required")
    return features[name]


@dataclass(frozen=True)
class _Stage:
    treatment: str
    options: tuple[str, ...]
    terms: tuple[tuple[str, ...], ...]
    coef: np.ndarray
    cov: np.ndarray
    residual_variance: float

    @property
    def has_treatment(self) -> tuple[bool, ...]:
        """Per term: does it hold a treatment indicator (cached)."""
        cached: tuple[bool, ...] | None = self.__dict__.get("_has_treatment")
        if cached is None:
            cached = tuple(any(f.startswith(self.treatment + "[") for f in t)
                           for t in self.terms)
            object.__setattr__(self, "_has_treatment", cached)
        return cached

    def designs(self, features: Mapping[str, Any], option: str, n: int, *,
                contrast_only: bool = False) -> np.ndarray:
        """Design matrix (n, p) with every patient given ``option``. Numeric features are float
        arrays; categorical ones (``col[level]``) are compared as strings. With
        ``contrast_only``, terms without the treatment are zero (they cancel between options)."""
        out = np.ones((n, len(self.terms)))
        for j, factors in enumerate(self.terms):
            if contrast_only and not self.has_treatment[j]:
                out[:, j] = 0.0
                continue
            for f in factors:
                if f == "Intercept":
                    continue
                if f.endswith("]") and "[" in f:
                    name, level = f[:-1].split("[", 1)
                    if name == self.treatment:
                        if option != level:
                            out[:, j] = 0.0
                        continue
                    col = np.asarray(_column(name, features, n)).astype(str)
                    out[:, j] *= col == level
                else:
                    out[:, j] *= np.asarray(_column(f, features, n), dtype=float)
        return out


@dataclass(frozen=True)
class StagePlan:
    """The week-12 plan for one response category."""

    category: str
    options: tuple[str, ...]
    recommended: str | None
    randomized_in_trial: bool


@dataclass(frozen=True)
class Prediction:
    """Predictions for n patients over the stage-1 options (arrays (n, k); NaN = infeasible).

    ``best`` is the index of the lowest expected PEG; ``reasonable`` marks the equally
    reasonable set; ``reason`` is 'mid' (within the minimal important difference), 'interval'
    (difference interval includes 0) or '' per cell."""

    options: tuple[str, ...]
    mean: np.ndarray
    se: np.ndarray
    diff: np.ndarray
    diff_se: np.ndarray
    p_response: np.ndarray
    p_lower: np.ndarray
    p_upper: np.ndarray
    best: np.ndarray
    reasonable: np.ndarray
    reason: np.ndarray


@dataclass(frozen=True)
class Decision:
    """What the decision tool shows for one patient."""

    eligible: tuple[str, ...]
    recommended: str
    equally_reasonable: tuple[str, ...]
    reasons: Mapping[str, str]
    ranking: tuple[str, ...]
    outcome: Mapping[str, tuple[float, float, float]]
    difference: Mapping[str, tuple[float, float, float]]
    response: Mapping[str, tuple[float, float, float]]
    plan: tuple[StagePlan, ...]
    missing: tuple[str, ...]
    tree_choice: str | None


class RegimeModel:
    """A regime loaded from a ``tailor-regime/2`` model file (see the module docstring)."""

    def __init__(self, data: Mapping[str, Any], *, source: str | None = None) -> None:
        if data.get("format") != FORMAT:
            raise InputFileError(f"not a {FORMAT} model file (format {data.get('format')!r}); "
                                 "re-run `tailor analyze` to write one", path=source)
        try:
            self.stages = [self._stage(s) for s in data["stages"]]
            self.provenance: dict[str, Any] = dict(data["provenance"])
            self.protocol_info: dict[str, Any] = dict(self.provenance["protocol"])
            self.mid = float(data.get("mid", 1.0))
            self.threshold = float(data["responder_threshold"])
            self.baseline = str(data["baseline"])
            self.feature_stats: dict[str, dict[str, float]] = {
                k: {kk: float(vv) for kk, vv in v.items()}
                for k, v in dict(data.get("features") or {}).items()}
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InputFileError(f"model file is incomplete or malformed ({exc})",
                                 path=source) from None
        try:
            self.basis: dict[str, dict[str, Any]] = {
                str(k): {"of": str(v["of"]), "knots": [float(t) for t in v["knots"]],
                         "index": int(v["index"])}
                for k, v in dict(data.get("basis") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFileError(f"model file has a malformed basis ({exc})",
                                 path=source) from None
        self.tree = data.get("tree")
        self.tree_agreement = data.get("tree_agreement")
        self.data = dict(data)
        self.source = source
        s1 = self.stages[0]
        self.features = _features_of([":".join(t) for t in s1.terms], s1.treatment,
                                     self.basis)
        tailoring = set()
        for t in s1.terms:
            if any(f.startswith(s1.treatment + "[") for f in t):
                tailoring |= set(_features_of([":".join(t)], s1.treatment, self.basis))
        self.tailoring = [f for f in self.features if f in tailoring]
        self.sigma = math.sqrt(sum(max(s.residual_variance, 0.0) for s in self.stages))

    @staticmethod
    def _stage(s: Mapping[str, Any]) -> _Stage:
        coef = np.asarray(s["coef"], dtype=float)
        cov = np.asarray(s["cov"], dtype=float)
        terms = tuple(tuple(t.split(":")) for t in s["terms"])
        if coef.shape != (len(terms),) or cov.shape != (len(terms), len(terms)):
            raise ValueError("coefficients and terms disagree")
        return _Stage(str(s["treatment"]), tuple(s["options"]), terms, coef, cov,
                      float(s.get("residual_variance", 0.0)))

    @classmethod
    def load(cls, path: str | Path) -> RegimeModel:
        p = Path(path)
        if not p.is_file():
            raise InputFileError("model file not found", path=str(p))
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputFileError(f"not JSON ({exc})", path=str(p)) from None
        return cls(data, source=str(p))

    # ------------------------------------------------------------------ vectorized core
    def _columns(self, patients: Mapping[str, Any], n: int, *, check: bool
                 ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Numeric feature arrays with missing values set to the trial mean; returns them and
        the (n, f) missing mask over :attr:`features`."""
        cols: dict[str, np.ndarray] = {}
        miss = np.zeros((n, len(self.features)), dtype=bool)
        for j, name in enumerate(self.features):
            raw = patients.get(name)
            if raw is None:
                x = np.full(n, np.nan)
            else:
                try:
                    x = np.asarray(raw, dtype=float).reshape(-1)
                except (TypeError, ValueError):
                    bad = raw if np.ndim(raw) == 0 else next(
                        (v for v in raw if not _is_number(v)), raw)
                    raise InvalidFieldError(f"'{name}' must be a number; got {bad!r}",
                                            field=name, value=bad, rule="number") from None
                if x.shape == (1,) and n > 1:
                    x = np.repeat(x, n)
            if check and np.isinf(x).any():
                raise InvalidFieldError(f"'{name}' must be finite", field=name, rule="finite")
            m = ~np.isfinite(x)
            if m.any():
                if name == self.baseline or name not in self.feature_stats:
                    raise MissingFieldError(f"'{name}' is needed by the model and has no "
                                            "trial average to fall back on", field=name,
                                            rule="required")
                x = np.where(m, self.feature_stats[name]["mean"], x)
            cols[name] = x
            miss[:, j] = m
        return _derive(cols, self.basis), miss

    def predict(self, patients: Mapping[str, Any], eligible: np.ndarray | None = None
                ) -> Prediction:
        """Vectorized predictions: ``patients`` maps feature -> array (NaN/None = missing);
        ``eligible`` is a boolean (n, k) mask over the stage-1 options (default all)."""
        s1 = self.stages[0]
        n = max((np.size(v) for v in patients.values() if v is not None), default=1)
        cols, miss = self._columns(patients, n, check=True)
        k = len(s1.options)
        elig = np.ones((n, k), dtype=bool) if eligible is None else np.asarray(eligible, bool)
        if not elig.any(axis=1).all():
            raise InvalidFieldError("every patient needs at least one eligible treatment",
                                    field="eligible", rule="non-empty")
        x = np.stack([s1.designs(cols, a, n) for a in s1.options], axis=1)  # (n, k, p)
        mean = x @ s1.coef
        # extra variance of missing inputs: shift each missing feature by one trial SD
        shifts = np.zeros((n, k, 0))
        adjust = np.zeros((n, k))
        for j, name in enumerate(self.features):
            if not miss[:, j].any():
                continue
            st = self.feature_stats[name]
            points = [st[f"q{q:02d}"] for q in QUANTILE_POINTS if f"q{q:02d}" in st]
            if len(points) < len(QUANTILE_POINTS):  # an older file: +- one SD
                points = [st["mean"] + st["sd"], st["mean"] - st["sd"]]
            mus = []
            for v in points:
                moved = dict(cols)
                moved[name] = np.where(miss[:, j], v, cols[name])
                moved = _derive(moved, self.basis)
                xm = np.stack([s1.designs(moved, a, n) for a in s1.options], axis=1)
                mus.append(xm @ s1.coef)
            mu = np.stack(mus, axis=2)  # (n, k, points)
            centre = mu.mean(axis=2) if len(points) > 2 else mean
            adjust = adjust + (centre - mean)
            shifts = np.concatenate([shifts, (mu - centre[:, :, None])
                                     / math.sqrt(len(points))], axis=2)
        mean = np.where(elig, mean + adjust, np.nan)
        best = decide(mean, elig, maximize=False)
        rows = np.arange(n)
        xb = x[rows, best]  # (n, p)
        var = np.einsum("nkp,pq,nkq->nk", x, s1.cov, x) + (shifts ** 2).sum(axis=2)
        dx = x - xb[:, None, :]
        dshift = shifts - shifts[rows, best][:, None, :]
        dvar = np.einsum("nkp,pq,nkq->nk", dx, s1.cov, dx) + (dshift ** 2).sum(axis=2)
        se = np.sqrt(np.maximum(var, 0.0))
        diff = mean - mean[rows, best][:, None]
        diff_se = np.sqrt(np.maximum(dvar, 0.0))
        within_mid = diff < self.mid
        covers_zero = diff - Z * diff_se <= 0
        reasonable = elig & (within_mid | covers_zero)
        reason = np.where(~reasonable, "", np.where(within_mid, "mid", "interval"))
        reason[rows, best] = "best"
        target = (1.0 - self.threshold) * cols[self.baseline][:, None]
        sig = max(self.sigma, 1e-9)
        p = special.ndtr((target - mean) / sig)
        p_lo = special.ndtr((target - (mean + Z * se)) / sig)
        p_hi = special.ndtr((target - (mean - Z * se)) / sig)
        return Prediction(s1.options, mean, se, np.where(elig, diff, np.nan),
                          np.where(elig, diff_se, np.nan), p, p_lo, p_hi, best, reasonable,
                          reason)

    def check_protocol(self, protocol: Protocol) -> None:
        if protocol.content_hash != self.protocol_info.get("content_hash"):
            raise InputFileError(
                f"the model was fitted under protocol '{self.protocol_info.get('name')}' "
                f"version hash {str(self.protocol_info.get('content_hash'))[:12]}, not the "
                f"loaded protocol {protocol.content_hash[:12]}", path=self.source)

    def decide(self, patient: Mapping[str, Any], eligible: Sequence[str],
               protocol: Protocol, *, plan: bool = True) -> Decision:
        """The decision for one patient with ``eligible`` first treatments (``plan=False``
        skips the week-12 plan, for what-if variants)."""
        self.check_protocol(protocol)
        s1 = self.stages[0]
        bad = [a for a in eligible if a not in s1.options]
        if bad or not eligible:
            raise InvalidFieldError(f"eligible arms must be a non-empty subset of "
                                    f"{', '.join(s1.options)}; got {list(eligible)}",
                                    field="eligible", value=list(eligible), rule="arms")
        row = {f: [_scalar(patient.get(f))] for f in self.features}
        mask = np.array([[a in eligible for a in s1.options]])
        pr = self.predict(row, mask)
        elig = [a for a in s1.options if a in eligible]
        idx = {a: i for i, a in enumerate(s1.options)}
        ranking = tuple(sorted(elig, key=lambda a: pr.mean[0, idx[a]]))
        rec = ranking[0]
        outcome, diff, resp = {}, {}, {}
        for a in elig:
            i = idx[a]
            m, s = float(pr.mean[0, i]), float(pr.se[0, i])
            outcome[a] = (m, m - Z * s, m + Z * s)
            d, ds = float(pr.diff[0, i]), float(pr.diff_se[0, i])
            diff[a] = (d, d - Z * ds, d + Z * ds)
            resp[a] = (float(pr.p_response[0, i]), float(pr.p_lower[0, i]),
                       float(pr.p_upper[0, i]))
        reasonable = tuple(a for a in ranking if pr.reasonable[0, idx[a]])
        reasons = {a: str(pr.reason[0, idx[a]]) for a in reasonable}
        missing = tuple(f for f in self.features if not _present(patient.get(f)))
        return Decision(
            eligible=tuple(elig), recommended=rec, equally_reasonable=reasonable,
            reasons=reasons, ranking=ranking, outcome=outcome, difference=diff,
            response=resp, plan=self._plan(patient, rec, eligible, protocol) if plan else (),
            missing=missing, tree_choice=_tree_choice(self.tree, patient, elig, s1.options))

    def could_change(self, patient: Mapping[str, Any], eligible: Sequence[str],
                     protocol: Protocol) -> dict[str, str]:
        """Missing inputs whose trial 5th-95th percentile values change the recommendation:
        feature -> the recommendation it could lead to."""
        base = self.decide(patient, eligible, protocol, plan=False).recommended
        out: dict[str, str] = {}
        for f in self.tailoring:
            if _present(patient.get(f)) or f not in self.feature_stats:
                continue
            for q in ("p05", "p95"):
                other = self.decide({**patient, f: self.feature_stats[f][q]}, eligible,
                                    protocol, plan=False).recommended
                if other != base:
                    out[f] = other
                    break
        return out

    def _plan(self, patient: Mapping[str, Any], first: str, eligible: Sequence[str],
              protocol: Protocol) -> tuple[StagePlan, ...]:
        contraindicated = [a for a in protocol.arm_codes if a not in eligible]
        plan = []
        s2 = self.stages[1] if len(self.stages) > 1 else None
        stage2 = protocol.stage(2) if len(protocol.stages) > 1 else None
        filled = {**{f: self.feature_stats[f]["mean"] for f in self.feature_stats},
                  **{k: v for k, v in patient.items() if _present(v)}}
        for category in (stage2.options or {}) if stage2 else {}:
            opts = stage_options(protocol, first, category, contraindicated).codes
            rec: str | None = opts[0] if len(opts) == 1 else None
            if s2 is not None and len(opts) > 1:
                fitted = [o for o in opts if o in s2.options]
                row = {**_derive({k: np.asarray([v]) for k, v in filled.items()
                                  if _is_number(v)}, self.basis),
                       **{k: [v] for k, v in filled.items()}, "A1": [first],
                       "response_category": [category]}
                try:
                    q = {o: float(s2.designs(row, o, 1, contrast_only=True)[0] @ s2.coef)
                         for o in fitted}
                    rec = min(q, key=lambda o: q[o]) if q else None
                except MissingFieldError:
                    rec = None
            plan.append(StagePlan(category, tuple(opts), rec, len(opts) > 1))
        return tuple(plan)


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return v is None
    return True


def _present(v: Any) -> bool:
    if v is None or (isinstance(v, str) and not v.strip()):
        return False
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return True  # present but invalid: predict() reports it


def _scalar(v: Any) -> Any:
    return None if v is None or (isinstance(v, str) and not v.strip()) else v


def _tree_choice(tree: Mapping[str, Any] | None, row: Mapping[str, Any],
                 eligible: Sequence[str], options: Sequence[str]) -> str | None:
    node = tree
    if not node:
        return None
    while not node.get("leaf"):
        feature = node["feature"]
        if not _present(row.get(feature)):
            return None
        if node.get("kind") == "categorical":
            go_left = str(row[feature]) == str(node["level"])
        else:
            go_left = float(row[feature]) <= float(node["threshold"])
        node = node["left"] if go_left else node["right"]
    for idx in node.get("ranking", [node.get("action_index")]):
        if idx is not None and options[int(idx)] in eligible:
            return options[int(idx)]
    return None
