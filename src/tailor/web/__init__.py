"""The web layer: FastAPI app factory and JSON API."""

from tailor.web.app import create_app

__all__ = ["create_app"]
