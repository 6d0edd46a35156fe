"""Batch signing: one private-key operation for every request waiting on a key (§4.6, §4.8).

While a key computes a signature, the requests that arrive for it queue up; when it is done
the next signature covers all of them at once: :func:`crossroad.crypto.xades.sign_batch`
puts their parts in one hash chain and signs its result, and every caller gets its own
:class:`~crossroad.crypto.xades.SignedMessage`.  Under load the number of private-key
operations grows far slower than the number of messages, which also hides a slow HSM.

The signing itself (XML building, hashing and the private-key operation) runs on a worker
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from crossroad.crypto.xades import MessagePart, SignedMessage
from crossroad.errors import Code, XRoadError

#: Signs a batch of requests (blocking); returns one SignedMessage per request, in order.
SignBatch = Callable[[list[Sequence[MessagePart]]], list[SignedMessage]]

DEFAULT_MAX_BATCH = 1000


@dataclass
class _Pending:
    parts: Sequence[MessagePart]
    future: asyncio.Future[SignedMessage] = field(repr=False)


class BatchSigner:
    """The signing queue of one key.

    ``prepare`` is called on the event loop when a batch starts and returns the blocking
    ``SignBatch`` for it (with the certificate and OCSP responses current at that moment);
    the returned function is run on ``executor``.
    """

    def __init__(
        self,
        prepare: Callable[[], SignBatch],
        executor: Executor,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self._prepare = prepare
        self._executor = executor
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._inflight: list[_Pending] = []
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0  # private-key operations
        self.signed = 0  # requests signed

    async def sign(self, parts: Sequence[MessagePart]) -> SignedMessage:
        loop = asyncio.get_running_loop()
        pending = _Pending(parts, loop.create_future())
        self._queue.append(pending)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain(), name="batch-signer")
        return await pending.future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: len(batch)]
            # Callers that gave up (timeout, disconnect) need no signature.
            batch = [p for p in batch if not p.future.done()]
            if not batch:
                continue
            self._inflight = batch
            try:
                sign_batch = self._prepare()
                results = await loop.run_in_executor(
                    self._executor, sign_batch, [p.parts for p in batch]
                )
                if len(results) != len(batch):
                    raise XRoadError(Code.CANNOT_CREATE_SIGNATURE, "Batch signing lost requests")
            except Exception as exc:  # every waiting caller must hear about the failure
                err = (
                    exc
                    if isinstance(exc, XRoadError)
                    else XRoadError(Code.CANNOT_CREATE_SIGNATURE, f"Signing failed: {exc!r}")
                )
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(err)
                continue
            finally:
                self._inflight = []
            self.batches += 1
            self.signed += len(batch)
            for p, result in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)

    async def close(self) -> None:
        # Take the in-flight batch first: cancelling the worker clears it (its ``finally``),
        # and its callers must still hear that no signature is coming.
        waiting = [*self._inflight, *self._queue]
        worker = self._worker
        if worker is not None and not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        for p in [*waiting, *self._queue]:
            if not p.future.done():
                p.future.set_exception(
                    XRoadError(Code.CANNOT_CREATE_SIGNATURE, "The signer is shutting down")
                )
        self._queue.clear()
