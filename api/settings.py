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
    reconcile_interval_s: int = Field(
        default=300, description="how often the leader re-checks recent batches against the chain"
    )

    # -- partner API (issue 6): webhooks, SSE, rate limits
    webhook_poll_s: float = Field(default=0.2, description="how often the dispatcher looks")
    webhook_timeout_s: float = Field(default=10.0, description="one delivery attempt's limit")
    webhook_backoff_base_s: float = Field(default=1.0, description="first retry delay")
    webhook_backoff_max_s: float = Field(default=3600.0, description="longest retry delay")
    webhook_attempts_max: int = Field(default=25, description="attempts before giving up")
    webhook_lifetime_s: float = Field(
        default=3 * 86_400, description="a delivery not done by then has failed"
    )
    rate_limit_per_s: float = Field(
        default=100.0, description="requests per second per API key; 0 turns limits off"
    )
    rate_limit_burst: int = Field(default=200, description="requests a key may send at once")
    otel: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry spans, metrics and logs (needs providers)",
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"
