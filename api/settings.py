"""Corridor's configuration: environment variables with the prefix CORRIDOR_.

Switching the database, the chain or the FX sources is configuration, never a code change.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORRIDOR_", extra="ignore")

    data_dir: Path = Field(default=Path(".corridor"), description="where embedded state lives")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in data_dir"
    )

    fx_quote_lifetime_s: int = Field(default=30, description="default life of a firm quote")
    fx_quote_lifetime_max_s: int = Field(default=120, description="longest quote on request")
    fx_refresh_interval_s: int = Field(default=900, description="how often live rates refresh")
    fx_liquidity_participant: str = Field(
        default="fx-liquidity", description="the FX liquidity provider cross-currency payments use"
    )

    settlement_interval_s: int = Field(
        default=60, description="a window with transfers closes after this many seconds"
    )
    settlement_max_transfers: int = Field(
        default=10_000, description="a window closes when it holds this many transfers"
    )
    settlement_poll_s: float = Field(default=1.0, description="how often the worker looks")

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"
