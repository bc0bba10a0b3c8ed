"""A real uvicorn server in a subprocess, and a light load generator to drive it.

The server runs in its own process(es) so that the load generator does not share its GIL.
The load generator is a minimal HTTP/1.1 keep-alive client over asyncio streams: requests
are encoded before the clock starts, so it spends a few tens of microseconds of CPU per
request (httpx spends several hundred) and leaves the machine's cores to the server. Its
own CPU use is measured and reported beside the figures.

(Not named `http.py`: running a file of this folder as a script would put the folder first
on sys.path, and `import http` in uvicorn and httpx would then find this module.)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, tree_cpu_seconds, tree_peak_rss_mb

SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 120.0
ERROR_SAMPLES_MAX = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A running `uvicorn api.server:build` (supervisor plus workers)."""

    process: subprocess.Popen[bytes]
    port: int
    workers: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_rss_mb(self) -> float | None:
        return tree_peak_rss_mb(self.pid)

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def uvicorn_server(
    database_url: str,
    data_dir: Path,
    workers: int = 1,
    settings_env: dict[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """Start the API as `corridor serve` would, minus the per-request access log.

    `corridor serve` logs every request at info level; a production deployment behind a
    proxy turns that off, and so does the benchmark (it would measure terminal I/O).
    `settings_env` adds CORRIDOR_* settings for the server.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    env.update(
        CORRIDOR_DATABASE_URL=database_url,
        CORRIDOR_DATA_DIR=str(data_dir),
        # The benchmark measures the ledger, not the per-key request rate limit.
        CORRIDOR_RATE_LIMIT_PER_S="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings_env or {})
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.server:build",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "info",
    ]
    log_path = data_dir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = ServerProcess(process, port, workers, log_path)
    try:
        _wait_ready(server)
        yield server
    finally:
        _stop(server)


def _wait_ready(server: ServerProcess) -> None:
    """Every worker has logged its start-up and the API answers."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    url = f"http://127.0.0.1:{server.port}/openapi.json"
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"the API server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API server did not start in time:\n{server.log_tail()}")
        started = server.log_tail(1000).count("Application startup complete")
        if started >= server.workers:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.05)


def _stop(server: ServerProcess) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=SERVER_STOP_TIMEOUT_S)


# ------------------------------------------------------------------------- the client


def encode_post(port: int, path: str, api_key: str, body: Any) -> bytes:
    """One complete HTTP/1.1 request, encoded before the clock starts."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {api_key}\r\n"
        "Content-Type: application/json\r\n"
        "Accept: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "\r\n"
    )
    return head.encode() + payload


@dataclass
class LoadOutcome:
    """What a run of the load generator saw; latencies of successful requests only."""

    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    sent: int = 0
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    chunked = False
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            close = value == b"close"
    if not chunked:
        return status, await reader.readexactly(length), close
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailer fields
            return status, b"".join(parts), close
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _drive(
    port: int, requests: Sequence[bytes], concurrency: int, time_cap_s: float, server_pid: int
) -> LoadOutcome:
    outcome = LoadOutcome()
    next_index = 0
    deadline = time.perf_counter() + time_cap_s

    async def client() -> None:
        nonlocal next_index
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while next_index < len(requests) and time.perf_counter() < deadline:
            payload = requests[next_index]
            next_index += 1
            outcome.sent += 1
            try:
                if reader is None or writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                started = time.perf_counter()
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    writer.write(payload)
                    status, body, close = await _read_response(reader)
                took = time.perf_counter() - started
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                outcome.errors += 1
                if len(outcome.error_samples) < ERROR_SAMPLES_MAX:
                    outcome.error_samples.append(f"{type(exc).__name__}: {exc}")
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            if 200 <= status < 300:
                outcome.ok += 1
                outcome.latencies_s.append(took)
            else:
                outcome.errors += 1
                if len(outcome.error_samples) < ERROR_SAMPLES_MAX:
                    outcome.error_samples.append(f"HTTP {status}: {body[:300]!r}")
            if close and writer is not None:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    cpu_before = time.process_time()
    server_before = tree_cpu_seconds(server_pid)
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    outcome.elapsed_s = time.perf_counter() - started
    outcome.client_cpu_s = time.process_time() - cpu_before
    outcome.server_cpu_s = tree_cpu_seconds(server_pid) - server_before
    return outcome


def drive(
    server: ServerProcess,
    requests: Sequence[bytes],
    concurrency: int,
    time_cap_s: float = float("inf"),
) -> LoadOutcome:
    """Send the requests over `concurrency` keep-alive connections, as fast as answered.

    Stops issuing new requests after `time_cap_s`; `outcome.sent` says how many went out.
    """
    return asyncio.run(_drive(server.port, requests, concurrency, time_cap_s, server.pid))
