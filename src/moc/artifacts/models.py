"""A model declared by artifact (``artifact: name`` or ``name@sha256:…``):
its files verified, then its spec with the path its runtime reads."""

from __future__ import annotations

from moc.artifacts.registry import Registry
from moc.errors import ModelFileInvalid
from moc.models.spec import ModelSpec


async def verified_spec(registry: Registry, spec: ModelSpec) -> ModelSpec:
    """``spec`` with ``path`` set to the verified artifact's file (llama.cpp:
    its one ``.gguf`` file) or folder (vLLM). Raises what verification
    raises (ArtifactTampered, ArtifactUntrusted, ArtifactUnsigned,
    ArtifactNotFound), or ModelFileInvalid for an artifact the runtime cannot
    load, before anything is reserved for it."""
    assert spec.artifact is not None
    artifact = registry.get(spec.artifact)
    folder = await registry.verify(artifact)
    if spec.backend != "llamacpp":
        return spec.model_copy(update={"path": folder})
    files = [f.path for f in artifact.manifest.files]
    ggufs = [f for f in files if f.endswith(".gguf")] or (files if len(files) == 1 else [])
    if len(ggufs) != 1:
        raise ModelFileInvalid(
            f"model {spec.name}: artifact {artifact.ref} has {len(ggufs)} .gguf files; "
            "llama.cpp loads one",
            model=spec.name,
        )
    return spec.model_copy(update={"path": folder / ggufs[0]})
