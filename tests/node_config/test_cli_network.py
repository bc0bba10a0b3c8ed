"""`corridor network ...` through typer: options, --json, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from eth_account import Account
from typer.testing import CliRunner

from api.cli_network import network_app
from node_config.network.extradata import encode_extra_data_hex
from node_config.network.generator import NetworkSpec, build_genesis
from tests.node_config.fake_besu import FakeQbft, serve
from tests.node_config.test_extradata import BESU_DOC_EXTRA_DATA, BESU_DOC_VALIDATORS

app = typer.Typer()
app.add_typer(network_app, name="network")
runner = CliRunner()
OPERATOR = "0x" + "ab" * 20


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["network", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def one_line_error(code: int, stderr: str) -> str:
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_init_json_and_inspect_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "net"
    code, stdout, stderr = run(
        "init",
        "--out",
        str(out),
        "--validators",
        "4",
        "--partners",
        "acme,globex",
        "--operator",
        OPERATOR,
        "--chain-id",
        "777",
        "--json",
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["chain_id"] == 777
    assert len(summary["nodes"]) == 6
    assert summary["accounts"][0]["address"].lower() == OPERATOR
    for secret in summary["secret_files"]:
        assert (out / secret).read_text() not in stdout  # keys never reach stdout

    code, stdout, stderr = run("inspect", str(out), "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["ok"] and report["genesis"]["chain_id"] == 777

    code, _, stderr = run("inspect", str(out / "genesis.json"), "--chain-id", "778")
    assert "disagrees" in one_line_error(code, stderr)

    code, _, stderr = run("init", "--out", str(out), "--operator", OPERATOR)
    assert "not empty" in one_line_error(code, stderr)


def test_init_defaults_to_corridors_operator_keystore(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    account = Account.create()
    keystore = Account.encrypt(account.key, "pw", kdf="scrypt", iterations=2)
    (data_dir / "keys").mkdir(parents=True)
    (data_dir / "keys" / "operator.json").write_text(json.dumps(keystore))
    code, stdout, stderr = run(
        "init",
        "--out",
        str(tmp_path / "net"),
        "--json",
        env={"CORRIDOR_DATA_DIR": str(data_dir)},
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["accounts"][0]["address"] == account.address
    assert summary["operator_keystore_created"] is False


def test_init_refuses_too_few_validators(tmp_path: Path) -> None:
    code, _, stderr = run(
        "init", "--out", str(tmp_path / "n"), "--validators", "3", "--generate-operator"
    )
    assert "at least 4" in one_line_error(code, stderr)
    assert not (tmp_path / "n").exists()
    code, _, stderr = run(
        "init",
        "--out",
        str(tmp_path / "n"),
        "--validators",
        "1",
        "--no-fault-tolerance",
        "--generate-operator",
    )
    assert code == 0, stderr


def test_extradata_command() -> None:
    code, stdout, _ = run("extradata", "--validators", ",".join(BESU_DOC_VALIDATORS))
    assert code == 0 and stdout.strip() == BESU_DOC_EXTRA_DATA
    code, stdout, _ = run("extradata", "--validators", ",".join(BESU_DOC_VALIDATORS), "--json")
    assert json.loads(stdout)["extra_data"] == BESU_DOC_EXTRA_DATA
    code, stdout, _ = run("extradata", "--validators", BESU_DOC_EXTRA_DATA, "--decode", "--json")
    decoded = json.loads(stdout)
    assert [v.lower() for v in decoded["validators"]] == BESU_DOC_VALIDATORS
    assert decoded["round"] == 0 and decoded["vote"] is None
    code, _, stderr = run("extradata", "--validators", "0x1234")
    assert "not an address" in one_line_error(code, stderr)


def _genesis_file(tmp_path: Path, validators: int = 4, extra: str | None = None) -> Path:
    doc = build_genesis(
        NetworkSpec(chain_id=1337, timestamp=0),
        [f"0x{i:040x}" for i in range(1, validators + 1)],
        [OPERATOR],
    )
    if extra is not None:
        doc["extraData"] = extra
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(doc))
    return path


def test_inspect_refusals(tmp_path: Path) -> None:
    path = _genesis_file(tmp_path, extra="0xc0")
    code, _, stderr = run("inspect", str(path))
    assert "extraData" in one_line_error(code, stderr)

    path = _genesis_file(tmp_path, validators=3)
    code, _, stderr = run("inspect", str(path))
    assert "fault tolerance" in one_line_error(code, stderr)
    code, stdout, _ = run("inspect", str(path), "--no-fault-tolerance", "--json")
    assert code == 0 and len(json.loads(stdout)["consensus"]["validators"]) == 3

    path = _genesis_file(tmp_path)
    settings = tmp_path / "corridor.env"
    settings.write_text("CORRIDOR_CHAIN=rpc\nCORRIDOR_CHAIN_ID=99\n")
    code, _, stderr = run("inspect", str(path), "--settings", str(settings))
    assert "99" in one_line_error(code, stderr)
    code, _, stderr = run("inspect", str(path), env={"CORRIDOR_CHAIN_ID": "98"})
    assert "98" in one_line_error(code, stderr)
    code, stdout, stderr = run("inspect", str(path), env={"CORRIDOR_CHAIN_ID": "1337"})
    assert code == 0, stderr
    assert "tolerates 1 faulty" in stdout

    code, _, stderr = run("inspect", str(tmp_path / "missing.json"))
    assert "does not exist" in one_line_error(code, stderr)
    assert encode_extra_data_hex([])  # the codec is the one the CLI uses


def test_validator_vote_flow() -> None:
    validators = [f"0x{i:040x}" for i in range(1, 5)]
    candidate = "0x" + "c0" * 20
    fake = FakeQbft(validators)
    with serve(fake, 4) as urls:
        code, stdout, stderr = run("validator", "add", candidate, "--rpc", ",".join(urls))
        assert code == 0, stderr
        assert stdout.count("qbft_proposeValidatorVote") == 4  # printed, not performed
        assert not any(c[1] == "qbft_proposeValidatorVote" for c in fake.calls)

        code, stdout, stderr = run(
            "validator",
            "add",
            candidate,
            "--rpc",
            ",".join(urls[:3]),
            "--execute",
            "--wait",
            "5",
            "--json",
        )
        assert code == 0, stderr
        body = json.loads(stdout)
        assert body["votes_needed"] == 3 and body["changed"] is True
        assert all(r["ok"] for r in body["results"])

        code, stdout, _ = run("validator", "list", "--rpc", urls[0], "--json")
        listed = json.loads(stdout)
        assert candidate in [v.lower() for v in listed["validators"]]
        assert listed["faulty_tolerated"] == 1

        code, stdout, stderr = run(
            "validator", "discard", candidate, "--rpc", ",".join(urls[:3]), "--execute"
        )
        assert code == 0, stderr
        assert fake.votes == {0: {}, 1: {}, 2: {}}

        code, _, stderr = run("validator", "add", candidate, "--rpc", urls[0])
        assert "already a validator" in one_line_error(code, stderr)

    code, _, stderr = run("validator", "add", candidate)
    assert "--rpc" in one_line_error(code, stderr)


@pytest.mark.node
def test_dev_runs_anvil_with_the_dev_chain_and_a_funded_operator(tmp_path: Path) -> None:
    from node_config import anvil, chain

    if anvil.find_anvil() is None:
        pytest.skip("anvil not installed: run `npm ci` in contracts/")
    script = (
        "import typer; from api.cli_network import network_app; app = typer.Typer(); "
        "app.add_typer(network_app, name='network'); app()"
    )
    env = {**os.environ, "CORRIDOR_DATA_DIR": str(tmp_path / "data")}
    process = subprocess.Popen(
        [sys.executable, "-c", script, "network", "dev", "--operator", OPERATOR, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        text=True,
    )
    try:
        assert process.stdout is not None
        body = json.loads(process.stdout.readline())
        url = body["rpc_url"]
        assert body["settings"]["CORRIDOR_CHAIN_ID"] == str(chain.CHAIN_ID_DEV)
        assert int(anvil.rpc_call(url, "eth_chainId", []), 16) == chain.CHAIN_ID_DEV
        balance = int(anvil.rpc_call(url, "eth_getBalance", [OPERATOR, "latest"]), 16)
        assert balance == chain.OPERATOR_BALANCE_WEI
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the node went down with the command
        try:
            anvil.rpc_call(url, "eth_chainId", [], timeout_s=0.2)
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("anvil still answers after the dev command stopped")
