"""The daemon's side of index queries: texts to vectors through a long-lived child.

The daemon does not import torch; a query's text is embedded by
``<python> -m moc.learning.worker.embed <model_folder>`` (the same
sentence-transformers model the index was built with, recorded in its
``meta.embedder.model``), started on the first query and kept for the next.

A :class:`QueryEmbedder` owns its child and the pipe to it. Requests take
turns under one lock, since replies come back in order on one pipe. A
request that is cancelled or times out while the child works would leave
its reply in the pipe for the next request to read, so the child is killed
then and started again by the next call; a child that exited is likewise
started again.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from moc.errors import Unavailable

READ_LIMIT = 64 * 1024 * 1024  # one reply line: 256 texts × 1024 floats fits many times


class QueryEmbedder:
    def __init__(
        self,
        python: str,
        model_path: str | Path,
        *,
        log: Path | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.python = python
        self.model_path = str(model_path)
        self.log = log
        self.timeout_s = timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def _start(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        stderr: Any = asyncio.subprocess.DEVNULL
        if self.log is not None:
            stderr = self.log.open("ab")  # the child holds it; closed here once started
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "moc.learning.worker.embed",
                self.model_path,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                limit=READ_LIMIT,
                env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
            )
        except OSError as exc:
            raise Unavailable(f"the query embedder did not start ({self.python}): {exc}") from exc
        finally:
            if self.log is not None:
                stderr.close()
        return self._proc

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, L2-normalized; raises :class:`Unavailable` if the child fails."""
        async with self._lock:
            proc = await self._start()
            assert proc.stdin is not None
            assert proc.stdout is not None
            try:
                proc.stdin.write(json.dumps({"texts": texts}).encode() + b"\n")
                await proc.stdin.drain()
                line = await asyncio.wait_for(proc.stdout.readline(), self.timeout_s)
            except (asyncio.CancelledError, TimeoutError):
                await self._stop()
                raise
            except (BrokenPipeError, ConnectionResetError) as exc:
                await self._stop()
                raise Unavailable(f"the query embedder exited: {exc}") from exc
            if not line:
                code = await proc.wait()
                raise Unavailable(
                    f"the query embedder for {self.model_path} exited with {code}"
                    + (f"; see {self.log}" if self.log else "")
                )
            reply = json.loads(line)
            if "error" in reply:
                raise Unavailable(f"the query embedder refused the request: {reply['error']}")
            vectors: list[list[float]] = reply["vectors"]
            return vectors

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.kill()
        await proc.wait()

    async def close(self) -> None:
        """End the child: stdin closed (it exits by itself), killed if it lingers."""
        async with self._lock:
            proc, self._proc = self._proc, None
            if proc is None or proc.returncode is not None:
                return
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
