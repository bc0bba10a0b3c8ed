"""`corridor demo` end to end: a real process on a fresh data dir, then again on the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.demo import run_demo
from tests.settlement.cli import finish, start

DEMO_SECONDS_MAX = 30


def test_demo_runs_end_to_end_and_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "corridor"
    env = {"CORRIDOR_DATA_DIR": str(data_dir), "CORRIDOR_DATABASE_URL": ""}
    done = finish(start(["demo"], env))
    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("[1/9]", "Settle the window on chain", "contract verifyTransfer: accepted"):
        assert step in done.stdout
    assert "OK (1 batch(es)" in done.stdout and "all checks passed" in done.stdout

    # Again on the same data dir, in process: fresh ids, the next batch, linked to the first.
    monkeypatch.delenv("CORRIDOR_DATABASE_URL", raising=False)
    capsys.readouterr()
    assert run_demo(data_dir, json=True) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] and summary["batch"]["number"] == 2
    assert summary["verify"]["ok"] and summary["verify"]["proofsChecked"] == 1
    assert summary["reconciliation"]["ok"]
    assert summary["proof"]["verifiedOnChain"] is True
    assert summary["elapsed_s"] < DEMO_SECONDS_MAX
