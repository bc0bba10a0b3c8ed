"""The ASGI entry point for uvicorn: `api.server:build` (a factory, one per worker)."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from api.context import Corridor
from api.settings import Settings


def build() -> FastAPI:
    return create_app(Corridor.open(Settings()))
