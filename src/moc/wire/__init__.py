"""moc's answers on the wire, each shape written once.

The native API's responses (a lease, a device, a model, a job, an error, …)
are TypedDicts here: the views in :mod:`moc.gateway.views` build them (plain
dicts, so the hot path pays nothing for the types), the OpenAPI document's
components are generated from them (:mod:`moc.gateway.http.openapi_answers`),
``docs/api.md``'s field tables are generated from those components
(``scripts/gen_api_docs.py``), and the SDK returns them typed.

Each field's docstring is its description in all three. This package is
stdlib-only and imports nothing else of moc, so the SDK can use it without
pulling in any server part. The ``Literal`` sets that mirror a server enum
(job status, process state, priority) are checked against it in
``tests/wire/test_shapes.py``.
"""

from moc.wire.artifacts import (
    Adapter,
    AdapterList,
    Artifact,
    ArtifactDetail,
    ArtifactFile,
    ArtifactList,
    ArtifactsRemoved,
    ArtifactVerified,
    KeyType,
    Producer,
    SigningKey,
    SigningKeyList,
)
from moc.wire.auth import (
    ApiKey,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRevoked,
    AuditEvent,
    AuditList,
    Caller,
    KeyLimits,
    RoleName,
)
from moc.wire.cluster import ClusterDevice, ClusterModel, ClusterNode, ClusterView
from moc.wire.datasets import Dataset, DatasetList, DatasetRemoved
from moc.wire.devices import Device, DeviceList
from moc.wire.errors import Error, ErrorBody, OllamaError
from moc.wire.goals import Goal, GoalDeleted, GoalList
from moc.wire.jobs import Job, JobList
from moc.wire.learning import (
    IndexHit,
    IndexList,
    IndexResults,
    LearningEvent,
    LearningJob,
    LearningJobList,
    LearningProgress,
)
from moc.wire.leases import Lease, LeaseList, LeaseReleased
from moc.wire.models import (
    Model,
    ModelDetail,
    ModelList,
    ModelSize,
    ModelUnloaded,
    SizeEstimate,
)
from moc.wire.system import Health, LoadedModel, Stats

__all__ = [
    "Adapter",
    "AdapterList",
    "ApiKey",
    "ApiKeyCreated",
    "ApiKeyList",
    "ApiKeyRevoked",
    "Artifact",
    "ArtifactDetail",
    "ArtifactFile",
    "ArtifactList",
    "ArtifactVerified",
    "ArtifactsRemoved",
    "AuditEvent",
    "AuditList",
    "Caller",
    "ClusterDevice",
    "ClusterModel",
    "ClusterNode",
    "ClusterView",
    "Dataset",
    "DatasetList",
    "DatasetRemoved",
    "Device",
    "DeviceList",
    "Error",
    "ErrorBody",
    "Goal",
    "GoalDeleted",
    "GoalList",
    "Health",
    "IndexHit",
    "IndexList",
    "IndexResults",
    "Job",
    "JobList",
    "KeyLimits",
    "KeyType",
    "LearningEvent",
    "LearningJob",
    "LearningJobList",
    "LearningProgress",
    "Lease",
    "LeaseList",
    "LeaseReleased",
    "LoadedModel",
    "Model",
    "ModelDetail",
    "ModelList",
    "ModelSize",
    "ModelUnloaded",
    "OllamaError",
    "Producer",
    "RoleName",
    "SigningKey",
    "SigningKeyList",
    "SizeEstimate",
    "Stats",
]
