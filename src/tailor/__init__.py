"""tailor: run and analyze SMART precision-medicine trials."""

__all__ = ["__version__"]

__version__ = "0.1.0"
