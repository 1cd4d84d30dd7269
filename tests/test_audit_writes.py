"""How the audit chain reaches the store when many attempts append at once: in chain order,
without a hand-over per loop pass, and with no gap after a failed write."""

from __future__ import annotations

import asyncio
import random

import pytest
from langgraph.store.base import PutOp
from langgraph.store.memory import InMemoryStore

from orchestrator_graph.auditlog import AuditLog


@pytest.fixture(autouse=True)
def _no_default_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_HOME", str(tmp_path / "home"))


class SlowStore(InMemoryStore):
    """Writes take a seeded random time (a real database's round trips), one write may fail,
    and the order in which entries land is kept."""

    def __init__(self, seed: int, fail_on: int | None = None) -> None:
        super().__init__()
        self.random, self.fail_on, self.landed = random.Random(seed), fail_on, list[int]()

    async def abatch(self, ops):  # type: ignore[no-untyped-def]
        puts = [op for op in ops if isinstance(op, PutOp) and op.value is not None]
        if puts:
            await asyncio.sleep(self.random.uniform(0, 0.004))
            seqs = [op.value["seq"] for op in puts]
            if self.fail_on in seqs:
                self.fail_on = None
                raise ConnectionError("the database went away")
            self.landed += seqs
        return await super().abatch(ops)


def event(i: int) -> tuple[str, str, str, dict]:
    return (f"e{i}", "tester", "attempt", {"n": i})


async def test_concurrent_appends_land_in_chain_order_and_verify(tmp_path):
    store = SlowStore(seed=3)
    log = AuditLog(store, "r1", b"k" * 32, heads=tmp_path)
    await asyncio.gather(*(log.append([event(i)]) for i in range(40)))
    assert store.landed == list(range(1, 41))  # a crash would leave a prefix of the chain
    verified = await log.verify()
    assert verified.ok and verified.entries == 40 and verified.head == 40


async def test_appends_waiting_for_the_chain_to_load_go_on_together(tmp_path):
    """An asyncio.Lock handed the chain to one waiting append per loop pass; a run's stream of
    attempts kept that queue from draining (430 dispatcher rounds for 1,000 tasks, not 127)."""
    log = AuditLog(InMemoryStore(), "r1", b"k" * 32, heads=tmp_path)
    appends = [asyncio.ensure_future(log.append([event(i)])) for i in range(50)]
    while not any(a.done() for a in appends):  # the first loads the stored chain (a thread)
        await asyncio.sleep(0)
    passes = 0
    while not all(a.done() for a in appends):
        await asyncio.sleep(0)
        passes += 1
    assert passes <= 2
    assert sorted(r.seq for a in appends for r in a.result()) == list(range(1, 51))


async def test_a_failed_write_leaves_no_gap_in_the_chain(tmp_path):
    store = SlowStore(seed=5, fail_on=4)
    log = AuditLog(store, "r1", b"k" * 32, heads=tmp_path)
    outcomes = await asyncio.gather(
        *(log.append([event(i)]) for i in range(8)), return_exceptions=True
    )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert failed and all(isinstance(o, (ConnectionError, RuntimeError)) for o in failed)
    await log.append([event(99)])  # the next append reads the chain again and follows it
    verified = await log.verify()
    assert verified.ok, verified.broken
    assert store.landed == list(range(1, verified.entries + 1))
