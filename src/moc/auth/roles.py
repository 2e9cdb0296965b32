"""The four roles, each allowed what the ones below it are and more.

``viewer`` reads (health, devices, models, stats, metrics); ``user`` also runs
inference and holds its own leases and jobs; ``operator`` also loads and
unloads models, sees and ends every lease and job, runs learning jobs, goals
and artifacts; ``admin`` also manages keys and reads the audit log.
"""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    VIEWER = 1
    USER = 2
    OPERATOR = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def named(cls, name: str) -> Role | None:
        """The role called ``name`` (any case), or None."""
        return cls.__members__.get(name.upper()) if isinstance(name, str) else None

    def allows(self, minimum: Role) -> bool:
        return self >= minimum

    def sees_all(self) -> bool:
        """Whether this role sees and ends other callers' leases and jobs."""
        return self >= Role.OPERATOR
