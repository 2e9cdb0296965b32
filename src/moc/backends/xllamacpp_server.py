"""llama.cpp's HTTP server from the ``xllamacpp`` wheel, as a child process.

moc starts this module with the same flags it would give ``llama-server``
(the subset below), so a plain ``pip install`` can run models without a
llama.cpp build::

    python -m moc.backends.xllamacpp_server --model m.gguf --port 8081 --ctx-size 4096

The server runs on its own threads inside this process; the main thread
waits for SIGTERM or SIGINT and then exits at once (the runtime holds no
state worth a graceful close). An unsupported flag exits with status 2 and
a message naming it, which moc reports as the load's failure.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

FLAGS = (
    "--model/-m, --host, --port, --ctx-size/-c, --parallel/-np, --threads/-t, "
    "--n-gpu-layers/-ngl, --lora, --lora-scaled, --alias/-a, --batch-size/-b, --ubatch-size/-ub, "
    "--embedding, --pooling, --no-warmup"
)
POOLING = ("none", "mean", "cls", "last", "rank")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        sys.stderr.write(f"xllamacpp runtime: {message} (supported flags: {FLAGS})\n")
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="moc.backends.xllamacpp_server", add_help=False, allow_abbrev=False)
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ctx-size", "-c", type=int, default=4096)
    p.add_argument("--parallel", "-np", type=int, default=1)
    p.add_argument("--threads", "-t", type=int)
    p.add_argument("--n-gpu-layers", "-ngl", "--gpu-layers", type=int)
    p.add_argument("--lora", action="append", default=[])
    p.add_argument("--lora-scaled", nargs=2, action="append", default=[], metavar=("FILE", "SCALE"))
    p.add_argument("--alias", "-a")
    p.add_argument("--batch-size", "-b", type=int)
    p.add_argument("--ubatch-size", "-ub", type=int)
    p.add_argument("--embedding", "--embeddings", action="store_true")
    p.add_argument("--pooling", choices=POOLING)
    p.add_argument("--no-warmup", action="store_true")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if not os.path.isfile(args.model):
        sys.stderr.write(f"xllamacpp runtime: model file {args.model} does not exist\n")
        sys.exit(2)
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = args.model
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx_size
    params.n_parallel = args.parallel
    if args.threads:
        params.cpuparams.n_threads = args.threads
        params.cpuparams_batch.n_threads = args.threads
    if args.n_gpu_layers is not None:
        params.n_gpu_layers = args.n_gpu_layers
    if args.lora or args.lora_scaled:
        params.lora_adapters = [xlc.CommonAdapterLoraInfo(path, 1.0) for path in args.lora] + [
            xlc.CommonAdapterLoraInfo(path, float(scale)) for path, scale in args.lora_scaled
        ]
    if args.alias:
        params.model_alias = {args.alias}
    if args.batch_size:
        params.n_batch = args.batch_size
    if args.ubatch_size:
        params.n_ubatch = args.ubatch_size
    params.embedding = args.embedding
    if args.pooling:
        params.pooling_type = getattr(
            xlc.llama_pooling_type, f"LLAMA_POOLING_TYPE_{args.pooling.upper()}"
        )

    params.warmup = not args.no_warmup

    # The server installs signal handlers of its own and answers /health
    # before its constructor returns; a SIGTERM in between would reach its
    # handler and be lost. Held pending until ours is installed (its threads
    # inherit the mask, so only this thread takes them).
    stopping = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    try:
        server = xlc.Server(params)
    except Exception as exc:  # the runtime reports load failures as plain exceptions
        sys.stderr.write(f"xllamacpp runtime: the server did not start: {exc}\n")
        sys.exit(1)
    stop = threading.Event()
    for sig in stopping:
        signal.signal(sig, lambda *_: stop.set())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)
    sys.stderr.write(f"xllamacpp runtime: listening on {server.listening_address}\n")
    sys.stderr.flush()
    stop.wait()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
