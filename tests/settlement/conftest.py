"""A whole Corridor (ledger, FX, embedded chain) in a temporary data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.context import Corridor
from api.settings import Settings
from settlement.chain import ChainConfig

SCRYPT_N_TEST = 2**10  # keystores in tests: fast to decrypt; never in production


def open_corridor(data_dir: Path, database_url: str) -> Corridor:
    settings = Settings(data_dir=data_dir, database_url=database_url)
    chain = ChainConfig(data_dir=data_dir, keystore_scrypt_n=SCRYPT_N_TEST)
    return Corridor.open(settings, chain_config=chain)


@pytest.fixture
def corridor(tmp_path: Path, database_url: str) -> Iterator[Corridor]:
    opened = open_corridor(tmp_path / "data", database_url)
    yield opened
    opened.close()
