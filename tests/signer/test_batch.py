"""BatchSigner on its own, deterministically: what waits on a key is signed together."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from crossroad.crypto.algorithms import SHA512
from crossroad.crypto.xades import MessagePart, SignedMessage
from crossroad.errors import Code, XRoadError
from crossroad.signer.batch import BatchSigner


def _parts(n: int) -> list[MessagePart]:
    return [MessagePart("/message.xml", SHA512, data=f"message {n}".encode())]


class _Key:
    """A stand-in private-key operation that records the batches it was given."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[int] = []
        self.gate = gate

    def sign(self, requests: list[Sequence[MessagePart]]) -> list[SignedMessage]:
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(len(requests))
        return [SignedMessage(f"<sig n='{len(requests)}'/>".encode()) for _ in requests]


def test_requests_waiting_on_the_key_share_one_operation() -> None:
    async def main() -> None:
        gate = threading.Event()
        key = _Key(gate)
        with ThreadPoolExecutor(1) as pool:
            batcher = BatchSigner(lambda: key.sign, pool)
            first = asyncio.ensure_future(batcher.sign(_parts(0)))
            await asyncio.sleep(0.05)  # the first batch (of one) is now on the key
            rest = [asyncio.ensure_future(batcher.sign(_parts(n))) for n in range(1, 100)]
            await asyncio.sleep(0.05)
            gate.set()
            results = await asyncio.gather(first, *rest)
        assert key.batches == [1, 99]
        assert len(results) == 100
        assert (batcher.batches, batcher.signed) == (2, 100)

    asyncio.run(main())


def test_max_batch_splits_a_long_queue() -> None:
    async def main() -> None:
        key = _Key()
        with ThreadPoolExecutor(1) as pool:
            batcher = BatchSigner(lambda: key.sign, pool, max_batch=10)
            await asyncio.gather(*(batcher.sign(_parts(n)) for n in range(25)))
        assert key.batches == [10, 10, 5]

    asyncio.run(main())


def test_a_failed_operation_fails_every_waiting_caller() -> None:
    def broken(requests: list[Sequence[MessagePart]]) -> list[SignedMessage]:
        raise RuntimeError("token removed")

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = BatchSigner(lambda: broken, pool)
            results = await asyncio.gather(
                *(batcher.sign(_parts(n)) for n in range(5)), return_exceptions=True
            )
        assert all(isinstance(r, XRoadError) for r in results)
        assert {r.code for r in results if isinstance(r, XRoadError)} == {
            Code.CANNOT_CREATE_SIGNATURE
        }

    asyncio.run(main())


def test_close_fails_the_queue() -> None:
    async def main() -> None:
        gate = threading.Event()
        key = _Key(gate)
        with ThreadPoolExecutor(1) as pool:
            batcher = BatchSigner(lambda: key.sign, pool)
            pending = [asyncio.ensure_future(batcher.sign(_parts(n))) for n in range(3)]
            await asyncio.sleep(0.05)
            await batcher.close()
            gate.set()
            for p in pending:
                with pytest.raises(XRoadError):
                    await p

    asyncio.run(main())
