"""How the tests run the settlement commands: `corridor ...` once api/cli.py mounts them,
`python -m api.cli_settlement ...` until then (the same functions either way)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

COMMAND_TIMEOUT_S = 120


def corridor_command() -> list[str]:
    from api.cli import app

    names = {c.name or getattr(c.callback, "__name__", "") for c in app.registered_commands}
    script = Path(sys.executable).parent / "corridor"
    if {"verify", "demo", "settle"} <= names and script.exists():
        return [str(script)]
    return [sys.executable, "-m", "api.cli_settlement"]


def start(args: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Starts `corridor ARGS` in a real subprocess (collect it with `finish`)."""
    return subprocess.Popen(
        [*corridor_command(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parents[2],
    )


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = process.communicate(timeout=COMMAND_TIMEOUT_S)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
