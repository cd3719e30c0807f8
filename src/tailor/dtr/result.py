"""The result protocol of :mod:`tailor.dtr`.

Estimators take hyper-parameters only (scikit-learn's contract: :class:`Params` gives
``get_params``/``set_params`` from ``__init__``'s keyword arguments, so
``sklearn.base.clone`` works); data go to ``fit``, which returns a frozen result. Every result
has

- ``summary(alpha)`` -> :class:`Summary`: a DataFrame (the table) that prints as a titled
  text report (``str``) and renders as HTML in notebooks (``_repr_html_``);
- ``to_frame()`` -> a plain DataFrame of the estimates;
- ``conf_int(alpha)`` -> a DataFrame of the estimates' lower and upper limits.

A stage number outside 1..K raises :class:`~tailor.exceptions.EstimationError` everywhere
(:func:`tailor.dtr.data.check_stage`).

Regimes: the word names one concept, a rule giving a recommendation per participant and
stage (``None``: as randomized). Its kinds have distinct names, for how the rule is given:
:data:`~tailor.dtr.value.RegimeFunction` (recommendations per treatment column, or a callable
of the table giving them: what the value estimators take), an embedded regime of the trial
(:class:`~tailor.dtr.embedded.EmbeddedRegime`, whose ``recommend`` gives that form), a learned
Q-learning regime (:meth:`~tailor.dtr.qlearning.QLearningResult.recommend`, same form), and
the simulator's :class:`~tailor.stats.truth.TrueRegime` (choosers valued exactly on the
potential outcomes). ``Regime`` in ``tailor.dtr.value`` and ``tailor.stats.truth`` is a
deprecated alias of the first and the last (removed in the next release).

Estimators and their results: :class:`~tailor.dtr.qlearning.QLearning` ->
:class:`~tailor.dtr.qlearning.QLearningResult`; :class:`~tailor.dtr.policytree.PolicyTree` ->
:class:`~tailor.dtr.policytree.PolicyTreeResult` (no ``conf_int``: nothing it reports has an
interval); :class:`~tailor.dtr.value.IPWValue` and :class:`~tailor.dtr.value.AIPWValue` ->
:class:`~tailor.dtr.value.ValueEstimate`; :class:`~tailor.dtr.value.DRScoring` ->
:class:`~tailor.dtr.value.DRScores`.
"""

from __future__ import annotations

import html
import inspect
from typing import Any, ClassVar

import pandas as pd

from tailor.exceptions import EstimationError

__all__ = ["Params", "Summary"]


class Summary(pd.DataFrame):
    """A result's table (a DataFrame) with a title and header lines: ``str`` gives the text
    report, ``_repr_html_`` the HTML one, ``to_frame`` the plain table."""

    _metadata: ClassVar[list[str]] = ["title", "lines"]

    def __init__(self, data: Any = None, *args: Any, title: str = "",
                 lines: tuple[str, ...] | list[str] = (), **kwargs: Any) -> None:
        super().__init__(data, *args, **kwargs)  # type: ignore[call-arg]
        self.title = title
        self.lines = tuple(lines)

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame  # derived tables are plain DataFrames

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self, copy=True)

    def __str__(self) -> str:
        rule = "=" * max(len(self.title), 40)
        body = self.to_frame().to_string(index=False, float_format=lambda v: f"{v:.4g}")
        return "\n".join([self.title, rule, *self.lines, "", body])

    def _repr_html_(self) -> str:
        head = "".join(f"<p>{html.escape(line)}</p>" for line in self.lines)
        return f"<h4>{html.escape(self.title)}</h4>{head}{self.to_frame().to_html(index=False)}"


class Params:
    """``get_params``/``set_params`` from the keyword arguments of ``__init__`` (each stored
    under its own name), as scikit-learn's ``BaseEstimator`` does; ``a__b`` reaches the
    parameter ``b`` of a nested estimator ``a``."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values()
                      if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update({f"{name}__{k}": v for k, v in value.get_params().items()})
            out[name] = value
        return out

    def set_params(self, **params: Any) -> Params:
        names = self._param_names()
        for key, value in params.items():
            head, _, rest = key.partition("__")
            if head not in names:
                raise EstimationError(f"{type(self).__name__} has no parameter {head!r} "
                                      f"(parameters: {names})")
            if rest:
                getattr(self, head).set_params(**{rest: value})
            else:
                setattr(self, head, value)
        return self
