"""Ollama-compatible routes: generate, chat, embed, embeddings, tags, ps, show, version.

Inference goes through the same dispatcher as the OpenAI routes; the answer is
translated (:mod:`moc.gateway.ollama_wire`) into Ollama's objects, one JSON
line per streamed piece. Errors keep Ollama's shape (``{"error": "…"}``, which
the ``ollama`` client raises as ``ResponseError``) with moc's ``code`` beside
the message; statuses come from the same mapping as every other route.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Send

from moc.backends.state import State
from moc.cluster.forward import is_forwarded
from moc.dispatch.request import Endpoint, InferenceRequest, priority_of
from moc.dispatch.service import Opened, Timing
from moc.dispatch.upstream import UpstreamFailed, error_message
from moc.errors import InvalidRequest, MocError
from moc.gateway import ollama_wire as wire
from moc.gateway.http.body import read_body
from moc.gateway.http.cluster import Forwarded
from moc.gateway.http.errors import error_json, error_response, http_status, ollama_error_body
from moc.gateway.http.exchange import Exchange, RawEndpoint
from moc.gateway.http.guard import check_model
from moc.gateway.http.respond import json, services
from moc.gateway.views import iso
from moc.lifecycle.slot import ModelView
from moc.services import Services
from moc.version import __version__

NDJSON = b"application/x-ndjson"


def _error(exc: MocError, timing: Timing | None = None) -> Response:
    return error_response(exc, ollama_error_body, timing.headers() if timing else ())


Handler = Callable[[Request], Awaitable[ASGIApp]]


def ollama_errors(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> ASGIApp:
        try:
            return await handler(request)
        except MocError as exc:
            return _error(exc)

    return wrapped


async def read_object(request: Request, s: Services) -> dict[str, Any]:
    """The body as a JSON object (no body: an empty one)."""
    raw = await read_body(request, s.config.gateway.max_body)
    try:
        doc = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("body", f"is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("body", "must be a JSON object", value=type(doc).__name__)
    return doc


async def read_doc(
    request: Request, s: Services, streams: bool = True, names: tuple[str, ...] = ("model", "name")
) -> dict[str, Any]:
    """The body as an object whose model (the first of ``names`` given) is in
    ``model``; ``stream`` is checked where the route streams."""
    doc = await read_object(request, s)
    model = next((doc[n] for n in names if doc.get(n)), None)
    if not isinstance(model, str) or not model:
        raise InvalidRequest(names[0], "is required: the name of a model moc serves", value=model)
    doc["model"] = model
    if not streams:
        return doc
    stream = doc.get("stream", True)  # Ollama streams unless told not to
    if not isinstance(stream, bool):
        raise InvalidRequest("stream", "must be true or false", value=stream)
    doc["stream"] = stream
    return doc


# --- inference -------------------------------------------------------------------
async def _routed(request: Request, s: Services, doc: dict[str, Any], here: Exchange) -> ASGIApp:
    """In a cluster, a model another node serves is answered there (the body
    sent on as read, with the model's name moc resolved)."""
    if s.cluster is None or is_forwarded(request.scope):
        return here
    node = await s.cluster.serving(doc["model"])
    return here if node is None else Forwarded(s.cluster, node, orjson.dumps(doc), here)


async def _infer(request: Request, chat: bool) -> ASGIApp:
    timing = Timing()
    s = services(request)
    try:
        doc = await read_doc(request, s)
        check_model(request.scope, doc["model"])
        field = doc.pop("priority", None)
        priority = priority_of(request.headers.get("x-moc-priority"), field)
        empty = not doc.get("messages") if chat else not doc.get("prompt")
        if empty:
            return await _load_or_unload(s, doc, chat)
        if chat:
            body, endpoint = wire.chat_body(doc, doc["stream"]), Endpoint.CHAT
        else:
            path, body = wire.generate_body(doc, doc["stream"])
            endpoint = Endpoint.CHAT if path == "/chat/completions" else Endpoint.COMPLETION
    except MocError as exc:
        response = _error(exc, timing)
        s.metrics.request_done("-", "ollama", response.status_code, 0.0)
        return response
    parsed = InferenceRequest(endpoint, doc["model"], priority, doc["stream"], body, None)

    async def relay(opened: Opened, send: Send, timing: Timing, exchange: Exchange) -> int:
        return await _relay(opened, send, timing, exchange, chat)

    here = Exchange(s, parsed, "ollama", relay, timing, ollama_error_body)
    return await _routed(request, s, doc, here)


async def _load_or_unload(s: Services, doc: dict[str, Any], chat: bool) -> Response:
    """Ollama's empty request: load the model, or with keep_alive 0 unload it."""
    out = wire.closing(doc["model"], chat, wire.Tally())
    out["done_reason"] = await _keep_alive(s, doc)
    return json(out)


async def _keep_alive(s: Services, doc: dict[str, Any]) -> str:
    """Load the model, or with keep_alive 0 unload it; says which ("load", "unload")."""
    name = doc["model"]
    s.models.view(name)
    if doc.get("keep_alive") in (0, "0", "0s", "0m"):
        await asyncio.shield(s.loader.unload(name, "keep_alive 0"))
        return "unload"
    await asyncio.shield(s.loader.ensure_loaded(name, explicit=True))
    return "load"


async def _send_whole(
    exchange: Exchange, send: Send, status: int, data: bytes, headers: list[tuple[bytes, bytes]]
) -> int:
    headers.append((b"content-length", str(len(data)).encode()))
    await exchange.start(send, status, headers)
    exchange.finishing()
    await send({"type": "http.response.body", "body": data})
    return status


async def _relay(opened: Opened, send: Send, timing: Timing, exchange: Exchange, chat: bool) -> int:
    reply = opened.reply
    model = exchange.request.model
    tally = wire.Tally(started=timing.arrived, load_s=timing.load_s)
    headers = [(b"content-type", NDJSON), *timing.headers()]
    streamed = reply.content_type.startswith("text/event-stream")
    if not streamed:
        try:
            body = await reply.read()
        except UpstreamFailed as exc:
            failed = exchange.services.dispatcher.stream_failed(opened, exc)
            return await exchange.send_error(send, failed)
        if reply.status >= 400:
            out: dict[str, Any] = {"error": error_message(body)}
            status = reply.status
        else:
            out = {**wire.answer(orjson.loads(body), model, chat, tally), **tally.final()}
            status = 200
        data = orjson.dumps(out)
        if exchange.request.stream:
            data += b"\n"
        else:
            headers[0] = (b"content-type", b"application/json")
        return await _send_whole(exchange, send, status, data, headers)
    await exchange.start(send, reply.status, headers)
    buffer = bytearray()
    try:
        async for chunk in reply.chunks():
            lines = []
            for data in wire.sse_events(buffer, chunk):
                if data == b"[DONE]":
                    continue
                doc = orjson.loads(data)
                if "error" in doc:
                    lines.append(orjson.dumps({"error": error_message(data)}))
                elif doc.get("choices"):
                    piece = wire.answer(doc, model, chat, tally)
                    if wire.has_content(piece):
                        lines.append(orjson.dumps(piece))
                else:
                    tally.absorb(doc)  # the usage-only last chunk
            if lines:
                payload = b"\n".join(lines) + b"\n"
                await send({"type": "http.response.body", "body": payload, "more_body": True})
    except UpstreamFailed as exc:
        failed = exchange.services.dispatcher.stream_failed(opened, exc)
        exchange.finishing()
        line = error_json(failed, ollama_error_body) + b"\n"
        await send({"type": "http.response.body", "body": line})
        return http_status(failed)
    exchange.finishing()
    last = orjson.dumps(wire.closing(model, chat, tally)) + b"\n"
    await send({"type": "http.response.body", "body": last})
    return reply.status


@ollama_errors
async def generate(request: Request) -> ASGIApp:
    return await _infer(request, chat=False)


@ollama_errors
async def chat(request: Request) -> ASGIApp:
    return await _infer(request, chat=True)


# --- embeddings ------------------------------------------------------------------
async def _embed(request: Request, legacy: bool) -> ASGIApp:
    """/api/embed (``input``: a text or a list), or the older /api/embeddings
    (``prompt``: one text). No text loads the model and answers no embeddings,
    as Ollama does."""
    timing = Timing()
    s = services(request)
    try:
        doc = await read_doc(request, s, streams=False)
        check_model(request.scope, doc["model"])
        priority = priority_of(request.headers.get("x-moc-priority"), doc.pop("priority", None))
        dims = None
        if legacy:
            prompt = doc.get("prompt")
            if prompt is not None and not isinstance(prompt, str):
                raise InvalidRequest("prompt", "must be a string", value=type(prompt).__name__)
            texts = [prompt] if prompt else []
        else:
            texts = wire.embed_inputs(doc)
            dims = wire.embed_dimensions(doc)
        if not texts:
            await _keep_alive(s, doc)
            return json({"embedding": []} if legacy else {"model": doc["model"], "embeddings": []})
    except MocError as exc:
        response = _error(exc, timing)
        s.metrics.request_done("-", "ollama", response.status_code, 0.0)
        return response
    body = wire.embeddings_body(doc["model"], texts)
    parsed = InferenceRequest(Endpoint.EMBEDDING, doc["model"], priority, False, body, None)

    async def relay(opened: Opened, send: Send, timing: Timing, exchange: Exchange) -> int:
        return await _relay_embed(opened, send, timing, exchange, legacy, dims)

    here = Exchange(s, parsed, "ollama", relay, timing, ollama_error_body)
    return await _routed(request, s, doc, here)


async def _relay_embed(
    opened: Opened, send: Send, timing: Timing, exchange: Exchange, legacy: bool, dims: int | None
) -> int:
    reply = opened.reply
    try:
        body = await reply.read()
    except UpstreamFailed as exc:
        failed = exchange.services.dispatcher.stream_failed(opened, exc)
        return await exchange.send_error(send, failed)
    out: dict[str, Any]
    if reply.status >= 400:
        out = {"error": error_message(body)}
    elif legacy:
        found = wire.vectors(orjson.loads(body))
        out = {"embedding": found[0] if found else []}
    else:
        tally = wire.Tally(started=timing.arrived, load_s=timing.load_s)
        out = wire.embed_answer(orjson.loads(body), exchange.request.model, dims, tally)
    headers = [(b"content-type", b"application/json"), *timing.headers()]
    return await _send_whole(exchange, send, reply.status, orjson.dumps(out), headers)


@ollama_errors
async def embed(request: Request) -> ASGIApp:
    return await _embed(request, legacy=False)


@ollama_errors
async def embeddings(request: Request) -> ASGIApp:
    return await _embed(request, legacy=True)


# --- listing ---------------------------------------------------------------------
def _file_facts(model: ModelView) -> tuple[int, str, str]:
    """(size, modified_at, digest) of the model's file; zeros for remote models."""
    path = model.spec.path
    if path is None:
        return 0, wire.now_iso(), hashlib.sha256(model.spec.name.encode()).hexdigest()
    try:
        st = path.stat()
    except OSError:
        return 0, wire.now_iso(), hashlib.sha256(model.spec.name.encode()).hexdigest()
    when = iso(st.st_mtime)
    # Not the file's content hash (reading gigabytes per listing is too dear):
    # a stable id that changes when the file does, which is what clients use it for.
    ident = f"{model.spec.name}\0{path}\0{st.st_size}\0{st.st_mtime_ns}"
    return st.st_size, when, hashlib.sha256(ident.encode()).hexdigest()


async def _details(s: Services, model: ModelView) -> dict[str, Any]:
    facts = await s.models.file_facts(model.spec.name)
    family = facts.architecture if facts else ""
    return {
        "parent_model": "",
        "format": "gguf" if model.spec.backend == "llamacpp" else model.spec.backend,
        "family": family,
        "families": [family] if family else None,
        "parameter_size": "",
        "quantization_level": "",
    }


async def tags(request: Request) -> Response:
    s = services(request)
    rows = []
    for model in s.models.views():
        size, when, digest = _file_facts(model)
        rows.append(
            {
                "name": model.spec.name,
                "model": model.spec.name,
                "modified_at": when,
                "size": size,
                "digest": digest,
                "details": await _details(s, model),
            }
        )
    return json({"models": rows})


async def ps(request: Request) -> Response:
    s = services(request)
    rows = []
    now = s.clock.now()
    for model in s.models.views():
        if model.state is not State.READY:
            continue
        unload_in = model.unload_in_s
        expires = now + unload_in if unload_in is not None else now + 10 * 365 * 86400
        _, _, digest = _file_facts(model)
        device = s.device(model.device) if model.device else None
        held = model.reserved or model.measured or 0
        rows.append(
            {
                "name": model.spec.name,
                "model": model.spec.name,
                "size": held,
                "digest": digest,
                "details": await _details(s, model),
                "expires_at": iso(expires),
                "size_vram": held if device is not None and device.kind == "nvidia" else 0,
                "context_length": model.spec.ctx,
            }
        )
    return json({"models": rows})


@ollama_errors
async def show(request: Request) -> ASGIApp:
    s = services(request)
    raw = await read_body(request, s.config.gateway.max_body)
    try:
        doc = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("body", f"is not valid JSON: {exc}") from None
    name = doc.get("model") or doc.get("name") if isinstance(doc, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidRequest("model", "is required", value=name)
    model = s.models.view(name)
    _, when, _ = _file_facts(model)
    info: dict[str, Any] = {}
    cached = await s.models.file_facts(name)
    if cached is not None:
        arch = cached.architecture
        info = {
            "general.architecture": arch,
            f"{arch}.context_length": cached.ctx_train,
            f"{arch}.embedding_length": cached.embedding,
            f"{arch}.block_count": cached.layers,
            f"{arch}.attention.head_count": cached.heads,
            f"{arch}.attention.head_count_kv": cached.kv_heads,
            "general.vocab_size": cached.vocab,
        }
    return json(
        {
            "modelfile": "",
            "parameters": f"num_ctx {model.spec.ctx}",
            "template": "",
            "details": await _details(s, model),
            "model_info": info,
            "capabilities": ["completion", "embedding"]
            if model.spec.embeddings
            else ["completion"],
            "modified_at": when,
        }
    )


async def version(request: Request) -> Response:
    return json({"version": wire.OLLAMA_API_VERSION, "moc_version": __version__})


routes = [
    Route("/api/generate", RawEndpoint(generate), methods=["POST"]),
    Route("/api/chat", RawEndpoint(chat), methods=["POST"]),
    Route("/api/embed", RawEndpoint(embed), methods=["POST"]),
    Route("/api/embeddings", RawEndpoint(embeddings), methods=["POST"]),
    Route("/api/tags", tags, methods=["GET"]),
    Route("/api/ps", ps, methods=["GET"]),
    Route("/api/show", show, methods=["POST"]),
    Route("/api/version", version, methods=["GET"]),
]
