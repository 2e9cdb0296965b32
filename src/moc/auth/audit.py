"""The audit log: every admin and operator action, with who, on what, and
how it ended, written to the store and to moc's log as one event."""

from __future__ import annotations

import logging
from typing import Any

from moc.auth.model import AuditEvent
from moc.auth.principal import Principal
from moc.auth.store import AuthStore
from moc.clock import Clock
from moc.errors import StoreUnavailable
from moc.telemetry.logs import event

log = logging.getLogger("moc.audit")

MAX_QUERY = 1000


class AuditLog:
    def __init__(self, store: AuthStore, clock: Clock, keep_days: int) -> None:
        self._store = store
        self._clock = clock
        self._keep_s = keep_days * 86_400.0

    def prune(self) -> int:
        """Drop events older than ``auth.audit_keep_days``; the number dropped."""
        return self._store.prune_audit(self._clock.now() - self._keep_s)

    def record(
        self,
        key_id: str,
        action: str,
        obj: str,
        status: int,
        result: str = "ok",
        **details: Any,
    ) -> None:
        event(log, logging.INFO, "audit", key_id=key_id or "-", action=action, object=obj,
              result=result, status=status, **details)  # fmt: skip
        try:
            self._store.append_audit(
                self._clock.now(), key_id, action, obj, result, status, details
            )
        except StoreUnavailable as exc:  # the log line above still has it
            event(log, logging.ERROR, "could not store an audit event", error=str(exc))

    def on_behalf(self, principal: Principal, action: str, obj: str, owner: str) -> None:
        """Record an action on another caller's object (a lease ended, a job
        cancelled by an operator or admin); one's own is not audited."""
        if owner != principal.id:
            self.record(principal.id, action, obj, 200, owner=owner, role=principal.role.label)

    def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        key_id: str | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        return self._store.audit(
            since=since, until=until, key_id=key_id, action=action, limit=min(limit, MAX_QUERY)
        )
