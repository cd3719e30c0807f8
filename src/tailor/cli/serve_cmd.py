"""``tailor serve``: run the API with uvicorn (settings from the ``TAILOR_`` environment)."""

from __future__ import annotations

import typer


def serve(host: str = typer.Option("127.0.0.1", help="Interface to bind."),
          port: int = typer.Option(8000, help="TCP port."),
          workers: int = typer.Option(1, min=1, help="Worker processes.")) -> None:
    """Serve the JSON API (OpenAPI at /docs and /openapi.json)."""
    import uvicorn

    uvicorn.run("tailor.web.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="warning", access_log=False)
