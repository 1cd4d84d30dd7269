"""The worker-history log is compacted into its snapshot atomically: several appenders
(threads, each with its own connections) add to one worker's history while each compacts it now
and then and a reader reads it in a loop; every total read on the way and at the end is exact
(SQLite data folder and PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestrator_graph.history_log import LOG, HistoryWriter, compact
from orchestrator_graph.persistence import open_persistence
from orchestrator_graph.registry import SkillStats, load_history

PROCESSES, ROUNDS = 3, 30
READS = [0]  # how many totals the reader has read: appenders wait for one at each compaction


async def append(data: str | None, url: str | None, worker: str) -> None:
    """One appender (a thread of its own, with its own connections): each round adds one
    attempt and saves it; every third round compacts and reads the total back, which must hold
    this appender's own attempts so far and no more than every appender's together."""
    async with open_persistence(data, url) as (_saver, store):
        history = await load_history(store, [worker])
        writer = HistoryWriter(store, history)
        for done in range(1, ROUNDS + 1):
            history[worker].setdefault("sim", SkillStats()).add(True, 1.0, 0.5, 1.0)
            await writer.save(history, [worker])
            if done % 3 == 0:
                await compact(store)
                seen = (await load_history(store, [worker]))[worker]["sim"].attempts
                assert done <= seen <= ROUNDS * PROCESSES, (done, seen)
                await _a_read_since(READS[0])


async def _a_read_since(reads: int, patience: float = 5.0) -> None:
    """Until the reader has read once more, so reads interleave with the appends and
    compactions whatever the threads' speeds (a CI run's reader read once in all)."""
    deadline = time.monotonic() + patience
    while READS[0] == reads and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


async def watch(data: str | None, url: str | None, worker: str, done: threading.Event) -> int:
    """A reader beside them: the total it reads never goes down nor past every attempt."""
    reads, last = 0, 0
    async with open_persistence(data, url) as (_saver, store):
        while not done.is_set():
            history = await load_history(store, [worker])
            seen = history[worker]["sim"].attempts if "sim" in history[worker] else 0
            assert last <= seen <= ROUNDS * PROCESSES, (last, seen)
            reads, last = reads + 1, seen
            READS[0] = reads
    return reads


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_appenders_and_compactions_keep_totals_exact(backend, tmp_path, request):
    url = request.getfixturevalue("make_database")() if backend == "postgres" else None
    data = None if url else str(tmp_path)
    async with open_persistence(data, url):
        pass  # the setup, once, before the appenders start
    done = threading.Event()
    READS[0] = 0
    with ThreadPoolExecutor(PROCESSES + 1) as pool:
        reader = pool.submit(asyncio.run, watch(data, url, "w", done))
        runs = [pool.submit(asyncio.run, append(data, url, "w")) for _ in range(PROCESSES)]
        try:
            for run in runs:
                run.result(timeout=120)
        finally:
            done.set()
        assert reader.result(timeout=30) >= 10
    async with open_persistence(data, url) as (_saver, store):
        left = len(await store.asearch(LOG, limit=10_000))
        total = (await load_history(store, ["w"]))["w"]["sim"]
        assert await compact(store) == left
        again = (await load_history(store, ["w"]))["w"]["sim"]
        assert await store.asearch(LOG) == []
    assert left < PROCESSES * ROUNDS  # compactions folded most of the log
    assert (total.attempts, total.successes, total.timed) == (PROCESSES * ROUNDS,) * 3
    assert total.latency_sum == pytest.approx(0.5 * PROCESSES * ROUNDS)
    assert again == total


async def test_a_load_compacts_a_long_log(make_persistence, monkeypatch):
    from orchestrator_graph import history_log

    monkeypatch.setattr(history_log, "COMPACT_AT", 4)
    name = f"w{uuid.uuid4().hex[:8]}"
    async with make_persistence() as (_saver, store):
        history = await load_history(store, [name])
        writer = HistoryWriter(store, history)
        for _ in range(5):
            history[name].setdefault("sim", SkillStats()).add(True, 1.0, 1.0)
            await writer.save(history, [name])
        assert (await load_history(store, [name]))[name]["sim"].attempts == 5  # and compacts
        mine = [i for i in await store.asearch(LOG, limit=10_000) if i.value["worker"] == name]
        assert mine == []
        assert (await load_history(store, [name]))[name]["sim"].attempts == 5


async def test_a_tenants_history_is_compacted_under_its_own_namespace(make_persistence):
    from orchestrator_graph.tenancy import TenantStore

    async with make_persistence() as (_saver, store):
        tenants = {t: TenantStore(store, f"{t}{uuid.uuid4().hex[:6]}") for t in ("a", "b")}
        for n, tenant in enumerate(tenants.values(), start=1):
            history = await load_history(tenant, ["w"])
            writer = HistoryWriter(tenant, history)
            for _ in range(n):
                history["w"].setdefault("sim", SkillStats()).add(True, 1.0, 1.0)
                await writer.save(history, ["w"])
        assert await compact(tenants["a"]) == 1  # its own entry, not the other tenant's
        assert len(await tenants["b"].asearch(LOG)) == 2
        totals = [(await load_history(t, ["w"]))["w"]["sim"].attempts for t in tenants.values()]
    assert totals == [1, 2]
