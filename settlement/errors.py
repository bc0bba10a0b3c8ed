"""Expected failures of the ledger, as values with stable machine-readable codes.

Broken invariants are not errors of this kind: they are assertions that stop the program.
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """A refused request. `code` is stable (clients branch on it); `detail` is for people.

    `extra` carries structured facts about the refusal (which limit, by how much), which the
    API returns as extension members of the problem document.
    """

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.extra = extra
