"""The errors moc raises, as a tree with stable codes.

Every error a client can see carries a ``code`` that never changes meaning.
The transports map classes to their own status codes, each in one function
(``gateway/http/errors.py``, ``gateway/grpc/errors.py``); nothing here knows
about HTTP or gRPC. The SDK turns an error envelope back into the same class
with :func:`from_code`, so client code can ``except InsufficientMemory``.

    MocError                          internal
    ├── InvalidRequest                invalid_request
    │   └── LearningJobInvalid        learning_job_invalid
    ├── NotFound                      not_found
    │   ├── DeviceNotFound            device_not_found
    │   ├── ModelNotFound             model_not_found
    │   ├── JobNotFound               job_not_found
    │   ├── DatasetNotFound           dataset_not_found
    │   ├── GoalNotFound              goal_not_found
    │   ├── LearningJobNotFound       learning_job_not_found
    │   ├── IndexNotFound             index_not_found
    │   ├── ArtifactNotFound          artifact_not_found
    │   ├── SigningKeyNotFound        signing_key_not_found
    │   ├── ApiKeyNotFound            api_key_not_found
    │   └── LeaseNotFound             lease_not_found
    │       ├── LeaseExpired          lease_expired
    │       └── LeaseReleased         lease_released
    ├── LeaseRevoked                  lease_revoked
    │   └── LeaseLost                 lease_lost
    ├── FencingTokenMismatch          fencing_token_mismatch
    ├── InsufficientMemory            insufficient_memory
    │   └── ExceedsCapacity           exceeds_capacity
    ├── QueueFull                     queue_full
    ├── ModelFileInvalid              model_file_invalid
    ├── DatasetInvalid                dataset_invalid
    ├── DatasetExists                 dataset_exists
    ├── DatasetInUse                  dataset_in_use
    ├── GoalExists                    goal_exists
    ├── ArtifactInvalid               artifact_invalid
    ├── ArtifactExists                artifact_exists
    ├── SigningKeyExists              signing_key_exists
    ├── ArtifactRefused               artifact_refused
    │   ├── ArtifactTampered          artifact_tampered
    │   ├── ArtifactUntrusted         artifact_untrusted
    │   └── ArtifactUnsigned          artifact_unsigned
    ├── TooManyActiveGoals            too_many_active_goals
    ├── Unauthenticated               unauthenticated
    ├── Forbidden                     forbidden
    ├── RateLimited                   rate_limited
    ├── Unavailable                   unavailable
    │   ├── ShuttingDown              shutting_down
    │   ├── StoreUnavailable          store_unavailable
    │   ├── QueueTimeout              queue_timeout
    │   └── BackendUnavailable        backend_unavailable
    │       ├── LoadFailed            load_failed
    │       ├── ModelDegraded         model_degraded
    │       ├── CircuitOpen           circuit_open
    │       └── UpstreamTimeout       upstream_timeout
    └── ConfigError                   config_error (startup only)
"""

from __future__ import annotations

from typing import Any, ClassVar


class MocError(Exception):
    """Answered as itself (code ``internal``): a bug; the message carries a
    reference to moc's log.

    The base of every error moc raises on purpose.
    """

    code: ClassVar[str] = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def __str__(self) -> str:
        return self.message


class InvalidRequest(MocError):
    """A request field is missing, of the wrong type or out of range; the message
    names the field, the limit and the value.

    ``field`` names it (dotted for nested fields), ``limit`` the bound it broke
    and ``value`` what was sent, so the message can say all three.
    """

    code = "invalid_request"

    def __init__(self, field: str, problem: str, *, value: Any = None, limit: Any = None) -> None:
        shown = "" if value is None else f" (got {value!r})"
        super().__init__(f"{field}: {problem}{shown}", field=field, value=value, limit=limit)
        self.field = field


class LearningJobInvalid(InvalidRequest):
    """A learning job whose fields are each well-formed but do not go together:
    a dataset of the wrong format for the kind, settings that contradict each
    other, a quantization type this host cannot make. ``field`` names it."""

    code = "learning_job_invalid"


class NotFound(MocError):
    """No such route."""

    code = "not_found"


class DeviceNotFound(NotFound):
    """No such device."""

    code = "device_not_found"


class ModelNotFound(NotFound):
    """No such model in the catalog; the message lists the known ones."""

    code = "model_not_found"


class JobNotFound(NotFound):
    """No such job (or it finished more than ``jobs.keep_s`` ago)."""

    code = "job_not_found"


class LearningJobNotFound(NotFound):
    """No such learning job."""

    code = "learning_job_not_found"


class IndexNotFound(NotFound):
    """No index of that name (an ``index`` learning job makes one)."""

    code = "index_not_found"


class ArtifactNotFound(NotFound):
    """No artifact of that name (or name and version, or digest) in the registry."""

    code = "artifact_not_found"


class ApiKeyNotFound(NotFound):
    """No API key has this id."""

    code = "api_key_not_found"


class SigningKeyNotFound(NotFound):
    """No signing key of that name in moc's data directory."""

    code = "signing_key_not_found"


class DatasetNotFound(NotFound):
    """No such dataset, by name or id."""

    code = "dataset_not_found"


class GoalNotFound(NotFound):
    """No such goal."""

    code = "goal_not_found"


class LeaseNotFound(NotFound):
    """No such lease."""

    code = "lease_not_found"


class LeaseExpired(LeaseNotFound):
    """The lease existed but its TTL ran out; its memory went back to the pool."""

    code = "lease_expired"


class LeaseReleased(LeaseNotFound):
    """The lease was released."""

    code = "lease_released"


class LeaseRevoked(MocError):
    """A higher-priority request took the memory of this preemptible lease."""

    code = "lease_revoked"


class LeaseLost(LeaseRevoked):
    """The node that held the lease is gone from the cluster (its heartbeat
    lapsed): its memory went with it. The fencing token tells a write made
    under it apart from the next holder's."""

    code = "lease_lost"


class FencingTokenMismatch(MocError):
    """The caller's fencing token is not the lease's."""

    code = "fencing_token_mismatch"


class InsufficientMemory(MocError):
    """Not enough free memory now (for a model: even after evicting every idle,
    unpinned model); ``retry_after_s`` says when to try again."""

    code = "insufficient_memory"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


class ExceedsCapacity(InsufficientMemory):
    """The request is larger than any eligible device's capacity: it can never
    fit. For a model the message names the bytes needed and the largest capacity."""

    code = "exceeds_capacity"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, retry_after_s=0.0, **details)


class QueueFull(MocError):
    """Too many requests waiting: a priority's queue, lease waiters, or unfinished jobs."""

    code = "queue_full"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


class ModelFileInvalid(MocError):
    """The model's file (or folder) is missing or not a model its runtime can
    read. Not retryable: no load can succeed until someone changes the file
    or the configuration, so it carries no ``Retry-After``."""

    code = "model_file_invalid"


class DatasetInvalid(MocError):
    """An uploaded dataset has lines that are not of its format; nothing was stored.
    ``details.errors`` lists the first of them, each with its line, field and
    what was expected; ``details.error_count`` counts them all."""

    code = "dataset_invalid"


class DatasetExists(MocError):
    """A dataset of that name exists with other content; upload with
    ``replace=true`` to replace it."""

    code = "dataset_exists"


class DatasetInUse(MocError):
    """The dataset is used by unfinished learning jobs, named in ``details.jobs``;
    it cannot be removed or replaced until they finish."""

    code = "dataset_in_use"


class GoalExists(MocError):
    """A goal of that name exists already; change it with PATCH instead."""

    code = "goal_exists"


class ArtifactInvalid(MocError):
    """An artifact, manifest, signature or bundle that is malformed: an unknown
    field, a digest of the wrong length, a file that escapes the bundle, a
    symlink, extra or missing files. The message names what is wrong; nothing
    of it was stored."""

    code = "artifact_invalid"


class ArtifactExists(MocError):
    """An artifact of that name and version exists with other content, or its
    name is a model's name (a request for the name would be ambiguous)."""

    code = "artifact_exists"


class SigningKeyExists(MocError):
    """A signing key of that name exists already; keys are never overwritten."""

    code = "signing_key_exists"


class ArtifactRefused(MocError):
    """An artifact failed verification and was not loaded, imported or
    served; nothing was reserved for it. Not retryable: only a change of the
    files or of the trust policy can make it pass."""

    code = "artifact_refused"


class ArtifactTampered(ArtifactRefused):
    """A file of the artifact is not what its manifest says: changed, missing
    or added. The message names the file."""

    code = "artifact_tampered"


class ArtifactUntrusted(ArtifactRefused):
    """The artifact's signature does not verify, or its signer is not in
    ``artifacts.trusted_keys`` (or is expired or revoked). The message names
    the key."""

    code = "artifact_untrusted"


class ArtifactUnsigned(ArtifactRefused):
    """The artifact has no signature and ``artifacts.require_signature`` is on."""

    code = "artifact_unsigned"


class TooManyActiveGoals(MocError):
    """As many goals are active as ``goals.max_active_goals`` allows; pause or
    finish one first. ``details`` has the ``limit`` and the ``active`` count."""

    code = "too_many_active_goals"


class Unauthenticated(MocError):
    """No credentials, or credentials moc does not accept: a key that is
    malformed, unknown, revoked or expired, a token whose signature, issuer,
    audience or times do not check. The message says which, never the secret."""

    code = "unauthenticated"


class Forbidden(MocError):
    """The caller is known but may not do this: its role does not allow the
    route, the model is not among its key's, or the object is another key's."""

    code = "forbidden"


class RateLimited(MocError):
    """A limit of the caller's key is reached (requests or tokens per minute,
    concurrent requests, device byte-seconds per day), or too many bad
    credentials came from one address; ``retry_after_s`` says when to try again."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


class Unavailable(MocError):
    """moc, or a part it needs, cannot serve now."""

    code = "unavailable"


class ShuttingDown(Unavailable):
    """moc is stopping."""

    code = "shutting_down"


class StoreUnavailable(Unavailable):
    """The state store could not be written; nothing was changed."""

    code = "store_unavailable"


class QueueTimeout(Unavailable):
    """The request waited its priority's ``timeout_s`` in the queue and was not sent."""

    code = "queue_timeout"


class BackendUnavailable(Unavailable):
    """A model's runtime is not serving (stopping, restarting, or gone), or failed
    mid-answer (then as the stream's last event)."""

    code = "backend_unavailable"


class LoadFailed(BackendUnavailable):
    """The runtime did not become ready; the message has its log's last lines,
    ``details.out_of_memory`` says whether it ran out of memory."""

    code = "load_failed"


class ModelDegraded(BackendUnavailable):
    """The model failed too many times in a row; load it explicitly after fixing the cause."""

    code = "model_degraded"


class CircuitOpen(BackendUnavailable):
    """The model's backend failed repeatedly; requests fail fast until a probe succeeds."""

    code = "circuit_open"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


class UpstreamTimeout(BackendUnavailable):
    """The backend sent nothing for ``gateway.upstream_timeout_s``; the request
    is not sent again, since the backend may still be working on it (also as a
    stream's last event)."""

    code = "upstream_timeout"


class ConfigError(MocError):
    """The configuration is invalid; raised at startup, never to a client."""

    code = "config_error"


def _all_subclasses(cls: type[MocError]) -> list[type[MocError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


_BY_CODE: dict[str, type[MocError]] = {c.code: c for c in _all_subclasses(MocError)}


def from_code(code: str, message: str, details: dict[str, Any] | None = None) -> MocError:
    """Rebuild the error a server reported (used by the SDK)."""
    cls = _BY_CODE.get(code, MocError)
    err = MocError.__new__(cls)
    MocError.__init__(err, message, **(details or {}))
    if isinstance(err, InsufficientMemory | QueueFull | CircuitOpen | RateLimited):
        err.retry_after_s = float((details or {}).get("retry_after_s", 1.0))
    if isinstance(err, InvalidRequest):
        err.field = str((details or {}).get("field", ""))
    return err
