"""The one error type of node_config.network: an expected failure with a stable code."""

from __future__ import annotations


class NetworkConfigError(ValueError):
    """A refused input or an inconsistent network. ``code`` is stable; ``str()`` is one line."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
