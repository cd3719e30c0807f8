"""Allocation at each stage of a protocol: the function the simulator and the service call.

:func:`stage_option_sets` turns a participant's situation into the options to draw among, and
:func:`allocate` runs the stage's configured method (minimization, permuted blocks or simple
randomization) with the protocol's settings. :func:`replay` re-derives a whole allocation
sequence from a table of inputs, the way a coordinating centre validates a randomization before
go-live.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tailor.exceptions import AllocationError, InputFileError, RecordError
from tailor.protocol import Protocol
from tailor.rules import stage_options
from tailor.stats.randomization import (
    Allocation,
    BlockState,
    Draws,
    MinimizationState,
    minimization,
    permuted_block,
    simple,
)

__all__ = [
    "OptionSet",
    "StageState",
    "allocate",
    "new_stage_state",
    "replay",
    "stage_option_sets",
]


@dataclass(frozen=True)
class OptionSet:
    """What one participant is allocated among at one stage.

    ``options`` are in draw-interval order; ``balance_over`` is the set minimization ranges over
    (stage 1: every arm; later stages: the options the protocol defines for the participant's
    stage-1 arm and response category); ``eligible`` drops contraindicated options; ``stratum``
    keys permuted blocks; ``actions`` maps option code to continue/augment/switch.
    """

    stage: int
    options: tuple[str, ...]
    balance_over: tuple[str, ...]
    eligible: tuple[str, ...]
    stratum: str
    actions: Mapping[str, str]

    @property
    def randomized(self) -> bool:
        """False when the protocol defines a single option (e.g. an excellent responder)."""
        return len(self.balance_over) > 1


@dataclass
class StageState:
    """Running state of one stage's allocation sequence (derivable from its history)."""

    stage: int
    minimization: MinimizationState
    blocks: BlockState


def new_stage_state(protocol: Protocol, stage: int) -> StageState:
    spec = protocol.stage(stage).randomization
    return StageState(stage, MinimizationState([f.name for f in spec.factors]), BlockState())


def _order_key(protocol: Protocol, code: str) -> tuple[int, ...]:
    order = protocol.allocation_order
    return tuple(sorted(order.index(a) for a in protocol.option_arms(code)))


def stage_option_sets(protocol: Protocol, stage: int, *, eligible_arms: Sequence[str],
                      stage1_arm: str | None = None, category: str | None = None) -> OptionSet:
    """The option set for a participant at ``stage`` (eligible_arms: arms not contraindicated)."""
    unknown = [a for a in eligible_arms if a not in protocol.arm_codes]
    if unknown:
        raise RecordError(f"unknown arm(s) {unknown}; arms are {', '.join(protocol.arm_codes)}",
                          field="eligible_arms", value=unknown, rule="arm")
    if stage == 1:
        order = tuple(protocol.allocation_order)
        eligible = tuple(a for a in order if a in eligible_arms)
        return OptionSet(1, order, order, eligible, "", {a: "start" for a in order})
    if stage1_arm is None or category is None:
        raise RecordError(f"stage {stage} allocation needs the stage-1 arm and the response "
                          "category", field="stage1_arm" if stage1_arm is None
                          else "response_category", rule="required")
    contraindicated = [a for a in protocol.arm_codes if a not in eligible_arms]
    opts = stage_options(protocol, stage1_arm, category, contraindicated, stage=stage)
    candidates = sorted(opts.candidates, key=lambda o: _order_key(protocol, o.code))
    codes = tuple(o.code for o in candidates)
    eligible = tuple(c for c in codes if c in opts.codes)
    return OptionSet(stage, codes, codes, eligible, f"{stage1_arm}|{category}",
                     {o.code: o.action for o in candidates})


def allocate(protocol: Protocol, state: StageState, option_set: OptionSet,
             levels: Mapping[str, Any], draws: Draws, *,
             theta: float | Mapping[str, float] | None = None,
             omega: float | Mapping[str, float] | None = None, record: bool = True) -> Allocation:
    """Allocate one participant at ``option_set.stage`` with the protocol's method.

    ``levels`` are the participant's minimization factor levels (see
    :func:`tailor.rules.derive_factor_levels`). ``theta``/``omega`` override the protocol's
    settings for this participant (as the BEST package allows per row). With ``record`` the
    state is updated. A participant with a single defined option is not randomized: the result
    has probability 1 and does not enter the balancing counts.
    """
    if not option_set.eligible:
        raise AllocationError(
            f"stage {option_set.stage}: no eligible option among {list(option_set.options)}")
    spec = protocol.stage(option_set.stage).randomization
    if not option_set.randomized:
        only = option_set.eligible[0]
        one = {only: 1.0}
        return Allocation(option=only, options=option_set.options, probabilities=one,
                          conditional_probabilities=one, minimizer=None, imbalance={},
                          draws=draws.as_dict(), method="fixed")
    th = spec.theta if theta is None else theta
    om = spec.omega if omega is None else omega
    if spec.method == "minimization":
        result = minimization(state.minimization, options=option_set.options,
                              eligible=option_set.eligible, levels=levels, draws=draws,
                              theta=th, omega=om, balance_over=option_set.balance_over)
    elif spec.method == "permuted_block":
        stratum = option_set.stratum or "|".join(f"{k}={levels[k]}" for k in sorted(levels))
        result = permuted_block(state.blocks, stratum=stratum, options=option_set.options,
                                eligible=option_set.eligible, block_multiples=spec.block_sizes,
                                draws=draws)
    else:
        result = simple(options=option_set.options, eligible=option_set.eligible, draws=draws,
                        omega=om)
    if record and spec.method == "minimization":
        state.minimization.add(result.option, levels)
    return result


# --------------------------------------------------------------------------- replay
def _cell(df: pd.DataFrame, row: int, column: str) -> Any:
    value = df.at[row, column]
    return value.item() if isinstance(value, np.generic) else value


def _binary(df: pd.DataFrame, column: str, row: int, source: str | None) -> int:
    value = _cell(df, row, column)
    if isinstance(value, str):
        value = value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if number not in (0.0, 1.0):
        raise InputFileError(f"must be 0 or 1; got {value!r}", path=source, row=row + 1,
                             column=column)
    return int(number)


def _uniform(df: pd.DataFrame, column: str, row: int, source: str | None) -> float:
    value = _cell(df, row, column)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number < 1.0:
        raise InputFileError(f"must be a number in [0, 1); got {value!r}", path=source,
                             row=row + 1, column=column)
    return number


def _weight(df: pd.DataFrame, column: str, row: int, source: str | None, *, theta: bool) -> float:
    from fractions import Fraction

    value = _cell(df, row, column)
    try:
        number = float(Fraction(str(value).strip())) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        number = float("nan")
    ok = (0.0 <= number <= 1.0) if theta else (number > 0.0)
    if not ok:
        rule = "a probability in [0, 1] (e.g. 2/3)" if theta else "a weight > 0"
        raise InputFileError(f"must be {rule}; got {value!r}", path=source, row=row + 1,
                             column=column)
    return number


def replay(protocol: Protocol, stage: int, table: pd.DataFrame, *, seed: int | None = None,
           source: str | None = None) -> pd.DataFrame:
    """Re-derive an allocation sequence from its inputs, rows in file order.

    Stage 1 columns: ``participant_id``; the protocol's factor columns (0/1); ``eligible_<ARM>``
    for every arm (0/1); optionally ``u1``, ``u2``, ``u3`` and per-row ``theta_<ARM>`` /
    ``omega_<ARM>``. Later stages: ``participant_id``, ``stage1_arm``, ``response_category``,
    ``eligible_<ARM>``, optionally ``u1``-``u3`` and ``theta``. Without u-columns the draws come
    from ``numpy.random.default_rng(seed)``, three per row in file order, and are written out.

    Returns the input plus ``arm`` (stage 1) or ``option`` and ``action`` (later stages),
    ``minimizer``, ``randomized`` and ``p_<OPTION>`` for every option.

    Raises
    ------
    InputFileError
        Naming the row (1-based, header excluded), the column and the rule broken.
    """
    df = table.reset_index(drop=True).copy()
    spec = protocol.stage(stage).randomization
    required = ["participant_id"] + [f"eligible_{a}" for a in protocol.arm_codes]
    if stage == 1:
        required += [f.name for f in spec.factors]
    else:
        required += ["stage1_arm", "response_category"]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputFileError(f"missing column(s): {', '.join(missing)}; a stage-{stage} replay "
                             f"needs {', '.join(required)}", path=source)
    u_cols = [c for c in ("u1", "u2", "u3") if c in df.columns]
    if u_cols and len(u_cols) != 3:
        raise InputFileError("give all of u1, u2, u3 or none of them", path=source)
    if df["participant_id"].duplicated().any():
        dup = df.loc[df["participant_id"].duplicated(), "participant_id"].iloc[0]
        row = int(df.index[df["participant_id"] == dup][1])
        raise InputFileError(f"participant_id {dup!r} appears twice", path=source, row=row + 1,
                             column="participant_id")
    if df.empty:
        raise InputFileError("no rows to replay", path=source)
    rng = np.random.default_rng(seed) if not u_cols else None
    state = new_stage_state(protocol, stage)
    out_rows: list[dict[str, Any]] = []
    all_options: list[str] = []
    for i in range(len(df)):
        eligible = [a for a in protocol.arm_codes
                    if _binary(df, f"eligible_{a}", i, source) == 1]
        if u_cols:
            draws = Draws(*(_uniform(df, c, i, source) for c in ("u1", "u2", "u3")))
        else:
            assert rng is not None
            draws = Draws.from_rng(rng)
        theta: dict[str, float] | float | None = None
        omega: dict[str, float] | None = None
        if stage == 1:
            levels: dict[str, Any] = {f.name: _binary(df, f.name, i, source)
                                      for f in spec.factors}
            option_set = stage_option_sets(protocol, 1, eligible_arms=eligible)
            th_cols = [f"theta_{a}" for a in protocol.arm_codes if f"theta_{a}" in df.columns]
            om_cols = [f"omega_{a}" for a in protocol.arm_codes if f"omega_{a}" in df.columns]
            if th_cols:
                theta = {c[6:]: _weight(df, c, i, source, theta=True) for c in th_cols}
            if om_cols:
                omega = {c[6:]: _weight(df, c, i, source, theta=False) for c in om_cols}
        else:
            arm = str(df.at[i, "stage1_arm"]).strip()
            category = str(df.at[i, "response_category"]).strip()
            try:
                option_set = stage_option_sets(protocol, stage, eligible_arms=eligible,
                                               stage1_arm=arm, category=category)
            except RecordError as exc:
                raise InputFileError(str(exc), path=source, row=i + 1, column=exc.field) from None
            levels = {"stage1_arm": arm, "response_category": category}
            levels = {f.name: levels[f.field or f.name] for f in spec.factors}
            if "theta" in df.columns:
                theta = _weight(df, "theta", i, source, theta=True)
        if not option_set.eligible:
            raise InputFileError(f"no eligible option among {list(option_set.options)}",
                                 path=source, row=i + 1)
        result = allocate(protocol, state, option_set, levels, draws, theta=theta, omega=omega)
        out: dict[str, Any] = {"u1": draws.u1, "u2": draws.u2, "u3": draws.u3}
        if stage == 1:
            out["arm"] = result.option
        else:
            out["option"] = result.option
            out["action"] = option_set.actions[result.option]
            out["randomized"] = int(option_set.randomized)
        out["minimizer"] = result.minimizer or ""
        for o, p in result.probabilities.items():
            out[f"p_{o}"] = p
            if o not in all_options:
                all_options.append(o)
        out_rows.append(out)
    result_df = pd.DataFrame(out_rows)
    if stage == 1:
        result_df = result_df[["u1", "u2", "u3", "arm", "minimizer"]
                              + [f"p_{a}" for a in protocol.arm_codes]]
    else:
        ordered = sorted(all_options, key=lambda c: _order_key(protocol, c))
        prob_cols = [f"p_{o}" for o in ordered]
        result_df = result_df.reindex(columns=["u1", "u2", "u3", "option", "action", "randomized",
                                               "minimizer", *prob_cols])
        result_df[prob_cols] = result_df[prob_cols].fillna(0.0)
    for c in ("u1", "u2", "u3"):
        if c in df.columns:
            result_df = result_df.drop(columns=c)
    # a replayed output file may be replayed again: its result columns are re-derived
    stale = [c for c in df.columns if c in result_df.columns]
    return pd.concat([df.drop(columns=stale), result_df], axis=1)
