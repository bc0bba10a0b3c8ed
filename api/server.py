"""The ASGI entry point for uvicorn: `api.server:build` (a factory, one per worker)."""

from __future__ import annotations

import gc

from fastapi import FastAPI

from api.app import create_app
from api.context import Corridor
from api.settings import Settings


def build() -> FastAPI:
    app = create_app(Corridor.open(Settings()))
    # What start-up built (modules, the OpenAPI models, the chain's code) lives as long as
    # the process: kept out of the collector's full passes, whose walk over it was the
    # slowest requests' pause. A request allocates thousands of short-lived objects: the
    # default young generation (700) was collected several times per request; 50,000 cut
    # the CPU of a transfer request by about a quarter (bench/ledger.py).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
    return app
