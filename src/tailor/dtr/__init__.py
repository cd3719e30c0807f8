"""Dynamic treatment regimes for SMARTs: Q-learning, regime values (IPW/AIPW), embedded
regimes, missing data and the phenotype map. Pure statistics: data frames in, results out."""

from tailor.dtr.bootstrap import BootstrapResult
from tailor.dtr.crossfit import compare_regimes, crossfit_value
from tailor.dtr.embedded import (
    EmbeddedRegime,
    EmbeddedResult,
    WeightedReplicated,
    embedded_regimes,
)
from tailor.dtr.formula import parse_formula, parse_options
from tailor.dtr.missing import (
    MultipleImputation,
    PooledEstimate,
    ipcw_weights,
    pool_tables,
    rubin_pool,
)
from tailor.dtr.phenotype import (
    modifier_importance,
    phenotype_profiles,
    responder_indicator,
    subgroup_effects,
)
from tailor.dtr.phenotype_regime import PhenotypeRegime
from tailor.dtr.policytree import PolicyTree, PolicyTreeResult
from tailor.dtr.qlearning import QLearning, QLearningResult, StageFit
from tailor.dtr.value import (
    AIPWValue,
    DRScores,
    DRScoring,
    IPWValue,
    RegimeFunction,
    ValueEstimate,
    aipw_value,
    dr_scores,
    ipw_value,
    single_option_regime,
    static_regime,
    value_data,
)

__all__ = [
    "AIPWValue",
    "BootstrapResult",
    "DRScores",
    "DRScoring",
    "EmbeddedRegime",
    "EmbeddedResult",
    "IPWValue",
    "MultipleImputation",
    "PhenotypeRegime",
    "PolicyTree",
    "PolicyTreeResult",
    "PooledEstimate",
    "QLearning",
    "QLearningResult",
    "RegimeFunction",
    "StageFit",
    "ValueEstimate",
    "WeightedReplicated",
    "aipw_value",
    "compare_regimes",
    "crossfit_value",
    "dr_scores",
    "embedded_regimes",
    "ipcw_weights",
    "ipw_value",
    "modifier_importance",
    "parse_formula",
    "parse_options",
    "phenotype_profiles",
    "pool_tables",
    "responder_indicator",
    "rubin_pool",
    "single_option_regime",
    "static_regime",
    "subgroup_effects",
    "value_data",
]
