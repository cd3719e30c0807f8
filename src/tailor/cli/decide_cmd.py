"""`tailor decide`: batch-score a CSV of patients with the deployed regime's model file."""

from __future__ import annotations

from pathlib import Path

import typer


def decide(
    model: Path = typer.Option(..., "--model", help="regime-model.json from `tailor analyze`."),
    input: Path = typer.Option(..., "--input", help="CSV: the model's feature columns (blank = "
                               "missing); optional eligible_<ARM> or contraindicated (A|B)."),
    out: Path = typer.Option(..., "--out", help="Output CSV, one decision per row."),
) -> None:
    """Recommendation, equally reasonable set, expected PEG and response chance per patient."""
    import time

    import pandas as pd
    from rich.console import Console

    from tailor.dtr.regime_batch import score_patients
    from tailor.dtr.regime_model import RegimeModel
    from tailor.exceptions import InputFileError

    m = RegimeModel.load(model)
    if not input.is_file():
        raise InputFileError("file not found", path=str(input))
    try:
        frame = pd.read_csv(input)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputFileError(f"cannot read the table ({exc})", path=str(input)) from None
    t0 = time.perf_counter()
    result = score_patients(m, frame)
    took = time.perf_counter() - t0
    result.to_csv(out, index=False)
    sim = m.provenance.get("simulated")
    Console().print(f"scored {len(result)} patients in {took * 1000:.0f} ms -> {out}"
                    + ("\nnote: the model was fitted on SIMULATED data" if sim else ""))
