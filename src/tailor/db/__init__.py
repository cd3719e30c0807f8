"""The trial database: models, engine/sessions, audit chain and migrations."""

from tailor.db.audit import AuditContext, ChainReport, verify_chain
from tailor.db.engine import Database, is_retryable
from tailor.db.schema import upgrade

__all__ = ["AuditContext", "ChainReport", "Database", "is_retryable", "upgrade", "verify_chain"]
