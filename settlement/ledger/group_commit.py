"""Group commit: the single transfers of concurrent callers, posted together.

A single transfer costs little next to its transaction's fixed price (BEGIN, the reads every
posting makes, COMMIT with its fsync), and on SQLite writers take turns anyway. So single
transfers are queued for one writer thread, which takes every request waiting (up to a full
batch) and posts them in one transaction; each caller gets its own result, exactly as if it
had posted alone, once the transaction is durable. Nothing waits on a timer: a lone request
is posted at once, and a round holds what arrived while the one before it was written.
Callers wait on a thread event or, from the event loop, on a future (`post_async`), so an
async endpoint needs no worker thread of its own. A thread that finds nothing being posted
and no one waiting posts its own request itself, sparing a sequential caller two thread
hand-overs per transfer.

Two waiting requests with the same (participant, id) never share a round: the later one
goes in the next round, where it finds the first and is answered as its replay. A caller's
own check inside the transaction (`within`: step-up confirmation) that refuses takes only
that caller out: the round is rolled back and posted again without it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace

from sqlalchemy import Connection

from settlement.errors import LedgerError
from settlement.ledger.model import BATCH_TRANSFERS_MAX, BatchResult, TransferRequest

# A check that runs inside a posting's transaction, after its writes (see Ledger.post_batch).
WithinPosting = Callable[[Connection, Sequence[BatchResult]], None]
# Posts requests[i] for owners[i], all in one transaction, running `within` before the
# commit; a result per request, in order.
PostRound = Callable[
    [Sequence[str], Sequence[TransferRequest], WithinPosting | None], list[BatchResult]
]
# The writer thread ends after this long without work; the next request starts another.
WRITER_IDLE_S = 2.0


class _Refused(Exception):
    """A caller's own check refused its transfer: the round is rolled back without it."""

    def __init__(self, position: int, error: LedgerError) -> None:
        super().__init__(error.detail)
        self.position = position
        self.error = error


@dataclass(eq=False)
class _Caller:
    owner: str
    request: TransferRequest
    within: WithinPosting | None
    # Called once, from the writer thread, when the answer is in.
    notify: Callable[[], None]
    result: BatchResult | None = None
    error: BaseException | None = None

    @property
    def answered(self) -> bool:
        return self.result is not None or self.error is not None

    def answer(self, result: BatchResult | None, error: BaseException | None = None) -> None:
        # A caller sees itself as the only item of its own batch.
        self.result = None if result is None else replace(result, index=0)
        self.error = error
        self.notify()

    def outcome(self) -> BatchResult:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class GroupCommit:
    """Runs `post_round`, in a writer thread, for whatever callers have queued."""

    def __init__(self, post_round: PostRound, round_max: int = BATCH_TRANSFERS_MAX) -> None:
        self._post_round = post_round
        self._round_max = round_max
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: deque[_Caller] = deque()
        self._writer: threading.Thread | None = None
        # A round is being posted (by the writer, or inline by a calling thread).
        self._busy = False

    def post(
        self, owner: str, request: TransferRequest, within: WithinPosting | None = None
    ) -> BatchResult:
        """Post one transfer for `owner`; returns when it is durable (or refused).

        `within(conn, [result])` runs in the transaction after the writes, as in post_batch.
        """
        done = threading.Event()
        caller = _Caller(owner, request, within, done.set)
        with self._lock:
            inline = not self._busy and not self._queue
            self._busy = self._busy or inline
        if not inline:
            self._enqueue(caller)
            done.wait()
            return caller.outcome()
        try:
            self._write([caller])
        finally:
            with self._lock:
                self._busy = False
                if self._queue:
                    self._wake_writer()
        return caller.outcome()

    async def post_async(
        self, owner: str, request: TransferRequest, within: WithinPosting | None = None
    ) -> BatchResult:
        """`post` for a coroutine: the event loop goes on serving while the round is written.

        If the awaiting task is cancelled (its client went away) the transfer may still be
        posted; a retry with the same id is then answered as a replay.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not done.done():
                done.set_result(None)

        def notify() -> None:
            # A closed loop (the server is shutting down) has no one left to answer.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(resolve)

        caller = _Caller(owner, request, within, notify)
        self._enqueue(caller)
        await done
        return caller.outcome()

    def _enqueue(self, caller: _Caller) -> None:
        with self._lock:
            self._queue.append(caller)
            self._wake_writer()

    def _wake_writer(self) -> None:
        if self._writer is None:
            self._start_writer()
        else:
            self._arrived.notify()

    def _start_writer(self) -> None:
        self._writer = threading.Thread(target=self._write_rounds, name="group-commit", daemon=True)
        self._writer.start()

    def _write_rounds(self) -> None:
        try:
            while True:
                with self._lock:
                    while self._busy or not self._queue:
                        if not self._arrived.wait(WRITER_IDLE_S) and not self._queue:
                            self._writer = None
                            return
                    round_ = self._take_round()
                    self._busy = True
                try:
                    self._write(round_)
                finally:
                    with self._lock:
                        self._busy = False
        except BaseException:
            # Only something like an interpreter shutdown gets here; whoever is still
            # queued must not wait for a writer that is gone.
            with self._lock:
                self._writer = None
                if self._queue:
                    self._start_writer()
            raise

    def _take_round(self) -> list[_Caller]:
        round_: list[_Caller] = []
        later: list[_Caller] = []
        ids: set[tuple[str, str]] = set()
        while self._queue and len(round_) < self._round_max:
            caller = self._queue.popleft()
            key = (caller.owner, caller.request.client_id)
            if key in ids:
                later.append(caller)
            else:
                ids.add(key)
                round_.append(caller)
        self._queue.extendleft(reversed(later))
        return round_

    def _write(self, round_: list[_Caller]) -> None:
        try:
            self._post(round_)
        finally:
            # Whatever went wrong, no caller of the round may wait forever.
            for caller in round_:
                if not caller.answered:
                    caller.answer(None, RuntimeError("the transfer's round was interrupted"))

    def _post(self, round_: list[_Caller]) -> None:
        while round_:
            try:
                results = self._post_round(
                    [c.owner for c in round_], [c.request for c in round_], _checks(round_)
                )
            except _Refused as refused:
                round_.pop(refused.position).answer(None, refused.error)
                continue
            except Exception as exc:
                if len(round_) == 1:
                    round_[0].answer(None, exc)
                else:
                    self._post_each(round_)
                return
            for caller, result in zip(round_, results, strict=True):
                caller.answer(result)
            return

    def _post_each(self, round_: list[_Caller]) -> None:
        """After a failure other than a refusal (those are per item): each caller alone, so
        that one request's failure is not every caller's, and each sees its own error."""
        for caller in round_:
            try:
                (result,) = self._post_round([caller.owner], [caller.request], caller.within)
            except Exception as exc:
                caller.answer(None, exc)
            else:
                caller.answer(result)


def _checks(round_: list[_Caller]) -> WithinPosting | None:
    """One check for the round: each caller's own, on its own result."""
    if all(caller.within is None for caller in round_):
        return None

    def check_each(conn: Connection, results: Sequence[BatchResult]) -> None:
        for position, (caller, result) in enumerate(zip(round_, results, strict=True)):
            if caller.within is None:
                continue
            try:
                caller.within(conn, [replace(result, index=0)])
            except LedgerError as error:
                raise _Refused(position, error) from error

    return check_each
