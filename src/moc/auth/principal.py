"""The caller a request was authenticated as, and the limits it runs under."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import cached_property

from moc.auth.roles import Role
from moc.config import KeyLimits
from moc.errors import Forbidden


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's limits; None is no limit."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_requests: int | None = None
    device_byte_seconds_per_day: int | None = None

    @classmethod
    def of(cls, config: KeyLimits) -> Limits:
        return cls(
            config.requests_per_minute,
            config.tokens_per_minute,
            config.concurrent_requests,
            config.device_byte_seconds_per_day,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            name: value for name in self.__slots__ if (value := getattr(self, name)) is not None
        }

    @property
    def any(self) -> bool:
        return bool(self.as_dict())


NO_LIMITS = Limits()


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: an API key (``id`` is the key's id) or a JWT
    subject (``id`` is ``jwt:<subject>``). ``models`` are globs of the models
    it may use; None is every model. Objects it makes (leases, jobs) carry
    ``id`` as their owner."""

    id: str
    role: Role
    name: str = ""
    models: tuple[str, ...] | None = None
    limits: Limits = NO_LIMITS

    @cached_property
    def _model_re(self) -> re.Pattern[str] | None:
        if self.models is None:
            return None
        return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in self.models) or "(?!)")

    def may_use(self, model: str) -> bool:
        pattern = self._model_re
        return pattern is None or pattern.match(model) is not None

    def owns(self, owner: str) -> bool:
        """Whether it may see and end an object whose owner is ``owner``."""
        return self.role.sees_all() or owner == self.id

    def check_owns(self, kind: str, object_id: str, owner: str) -> None:
        """Forbidden unless it may see and end this object (every transport's check)."""
        if not self.owns(owner):
            raise Forbidden(
                f"{kind} {object_id} belongs to another key; key {self.id} may see and end "
                "only its own (operators and admins: every one)",
                owner_is_caller=False,
            )


# Auth off: every caller is this one, allowed everything, owner of nothing in
# particular (objects made then carry an empty owner).
ANONYMOUS = Principal(id="", role=Role.ADMIN, name="anonymous")

# Auth on, on a route open to all (health, the API document): nobody in
# particular, owner of nothing, allowed nothing beyond the route.
NOBODY = Principal(id="-", role=Role.VIEWER, name="no credentials", models=())
