"""Use cases: the only layer that touches both the database and the statistics. Each use case
is one transaction that writes its own audit rows (through the data layer's hooks)."""

from tailor.services.context import Actor, RequestContext
from tailor.services.uow import DataLockedError

__all__ = ["Actor", "DataLockedError", "RequestContext"]
