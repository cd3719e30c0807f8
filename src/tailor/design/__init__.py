"""Design the next SMART: operating characteristics and sample size by simulation.

``grid`` (cells and replicate seeds), ``execution`` (local pool / Dask backends, checkpointed
and resumable studies), ``replicates`` (replicate functions), ``summary`` (per-cell summaries
with Monte-Carlo errors and failure counts), ``search`` (sample-size search with an interval for
N), ``sizing`` (classical formulas: Oetting et al. 2011, Artman et al. 2020, the global test),
``sequential`` (O'Brien-Fleming interim analyses), ``provenance`` (version, code and scenario
hashes), ``progress`` (rate and ETA lines), ``report`` (the HTML reports).
"""

from tailor.design.execution import (
    DaskBackend,
    LocalBackend,
    SerialBackend,
    StudyResult,
    run_study,
)
from tailor.design.grid import Cell, expand_grid, replicate_seed
from tailor.design.sizing import (
    mcb_power,
    mcb_sample_size,
    oetting_power,
    oetting_sample_size,
)

__all__ = [
    "Cell",
    "DaskBackend",
    "LocalBackend",
    "SerialBackend",
    "StudyResult",
    "expand_grid",
    "mcb_power",
    "mcb_sample_size",
    "oetting_power",
    "oetting_sample_size",
    "replicate_seed",
    "run_study",
]
