"""Work on a Dask cluster of two regions on 127.0.0.1 (an in-process scheduler, Nanny worker
processes): it lands only in its region, and a worker process killed mid-task costs no extra
attempt: Dask reruns the task elsewhere and the ledger shows one approved attempt per task; a
hedge beside Dask's rerun leaves one approved attempt and the loser cancelled on the cluster;
large values cross once, by reference."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import pytest_asyncio
from dask_tasks import measure_upstream, slow_when_rerun, warm, where_it_ran
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import create_orchestrator
from orchestrator_graph.dask_workers import CLIENTS, DASK_ENV, dask_worker
from orchestrator_graph.errors import InputError
from orchestrator_graph.ledger import Ledger
from orchestrator_graph.models import Criterion, Plan, Task
from orchestrator_graph.workers import Worker, WorkerContext, WorkerInput

pytestmark = pytest.mark.slow
LOCAL = "127.0.0.1:0"  # a worker's HTTP server (metrics) too, on loopback


def _plan(announce: Path) -> Plan:
    tasks = [
        Task(
            id=f"{region}{i}",
            title=f"work {i} in {region}",
            skills=[region],
            effort=0.5,
            inputs={"announce": str(announce)} if (region, i) == ("eu", 0) else {},
            acceptance=[Criterion(kind="has_keys", keys=["value", "pid"])],
        )
        for region in ("eu", "us")
        for i in range(3)
    ]
    return Plan(goal="regional work", tasks=tasks, source="declared")


async def _kill_when_announced(announce: Path) -> int:
    deadline = time.time() + 120
    while not announce.exists() or not announce.read_text():
        assert time.time() < deadline, "the announced task never started"
        await asyncio.sleep(0.02)
    pid = int(announce.read_text())
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def two_regions():
    """A scheduler and three worker processes (two in region eu, one in us) on 127.0.0.1, for
    the tests that kill one: started once (processes take seconds to start)."""
    from distributed import Nanny, Scheduler

    async with Scheduler(
        host="127.0.0.1", port=0, dashboard=False, dashboard_address=LOCAL
    ) as scheduler:
        nannies = [
            Nanny(
                scheduler.address,
                host="127.0.0.1",
                nthreads=1,
                resources={f"region-{region}": 1},
                dashboard=False,
                dashboard_address=LOCAL,
                silence_logs=True,
            )
            for region in ("eu", "eu", "us")
        ]
        await asyncio.gather(*nannies)
        try:
            yield scheduler
        finally:
            await asyncio.gather(*(n.close() for n in nannies))


async def _ready(scheduler) -> None:
    """Every worker process up (one killed by an earlier test restarts), and warm."""
    client = await CLIENTS.get(scheduler.address)
    await client.wait_for_workers(3, timeout=60)
    await client.run(warm)  # no import of the package inside a timed attempt


@pytest.mark.asyncio(loop_scope="module")
async def test_a_killed_dask_worker_process_costs_no_extra_attempt(tmp_path, two_regions):
    scheduler = two_regions
    announce = tmp_path / "announce"
    await _ready(scheduler)
    try:
        team = [
            dask_worker(f"{r}-pool", where_it_ran, skills=[r], region=r, capacity=2)
            for r in ("eu", "us")
        ]
        store = InMemoryStore()
        graph = create_orchestrator(workers=team).compile(checkpointer=InMemorySaver(), store=store)
        # stall_after=0: no hedge; Dask alone reruns the killed process's task.
        context = {"use_memory": False, "dask_address": scheduler.address, "stall_after": 0}
        run = graph.ainvoke(
            {"request": "regional work", "plan": _plan(announce).model_dump(mode="json")},
            {"configurable": {"thread_id": "dask"}},
            context=context,
        )
        killed, out = await asyncio.gather(_kill_when_announced(announce), run)
    finally:
        await CLIENTS.close()
    assert out["report"]["status"] == "done"
    attempts = await Ledger(store, out["report"]["run_id"]).attempts()
    assert sorted((r.task_id, r.attempt, v.verdict) for r, v in attempts) == [
        (f"{region}{i}", 1, "approve") for region in ("eu", "us") for i in range(3)
    ]
    outputs = {r.task_id: r.output for r, _ in attempts}
    assert outputs["eu0"]["pid"] != killed  # finished by another process than the killed one
    assert all(o["regions"] == [tid[:2]] for tid, o in outputs.items())
    assert team[0].run.traffic.tasks == 3 and team[0].run.traffic.sent > 0


@pytest.mark.asyncio(loop_scope="module")
async def test_a_hedge_beside_a_dask_rerun_cancels_the_loser_on_the_cluster(tmp_path, two_regions):
    """A worker process dies mid-task: Dask reruns the task (slowly) while the orchestrator,
    seeing the attempt stall, hedges on another worker of the team. The hedge passes QA first;
    the rerun's Dask task is cancelled on the cluster and the ledger holds one approved attempt."""
    scheduler = two_regions
    announce = tmp_path / "announce"
    task = Task(
        id="t",
        title="work",
        skills=["any"],
        effort=0.3,
        inputs={"announce": str(announce), "rerun": 3},
        acceptance=[Criterion(kind="has_keys", keys=["value", "pid"])],
    )
    plan = Plan(goal="hedged", tasks=[task], source="declared")
    await _ready(scheduler)
    try:
        team = [
            dask_worker(name, slow_when_rerun, skills=["any"], address=scheduler.address)
            for name in ("first", "second")
        ]
        store = InMemoryStore()
        graph = create_orchestrator(workers=team).compile(checkpointer=InMemorySaver(), store=store)
        run = graph.ainvoke(
            {"request": "hedged", "plan": plan.model_dump(mode="json")},
            {"configurable": {"thread_id": "hedged"}},
            context={"use_memory": False, "stall_after": 2.0},
        )
        killed, out = await asyncio.gather(_kill_when_announced(announce), run)
        for _ in range(100):  # the scheduler lets go of a cancelled task soon, not at once
            if not scheduler.tasks:
                break
            await asyncio.sleep(0.05)
        left = {key: ts.state for key, ts in scheduler.tasks.items()}
    finally:
        await CLIENTS.close()
    assert out["report"]["status"] == "done"
    attempts = await Ledger(store, out["report"]["run_id"]).attempts()
    assert [(r.attempt, r.worker, v.verdict) for r, v in attempts] == [(2, "second", "approve")]
    assert attempts[0][0].output["pid"] != killed
    stalled = [b["worker"] for b in out["report"]["bottlenecks"] if b["kind"] == "stall"]
    # the original's stall found once; on a loaded machine the hedge may be slow enough to be
    # reported too (CI: Dask had just restarted a process), without a third attempt
    assert stalled.count("first") == 1
    assert (team[0].run.traffic.cancelled, team[1].run.traffic.tasks) == (1, 1)
    assert left == {}  # nothing of the run left on the cluster: the rerun was cancelled


async def test_a_large_dependency_output_goes_to_dask_by_reference():
    """A 1 MB output read by four Dask tasks crosses once (scattered), not in each payload."""
    import hashlib

    from distributed import Scheduler
    from distributed import Worker as DaskProcess

    blob = "x" * 1_000_000
    maker = Worker(name="maker", skills=["make"], run=lambda p: {"blob": blob, "summary": "big"})
    readers = [
        Task(id=f"read{i}", title=f"read {i}", skills=["read"], depends_on=["big"])
        for i in range(4)
    ]
    plan = Plan(
        goal="fan out a large output",
        tasks=[Task(id="big", title="make it", skills=["make"]), *readers],
        source="declared",
    )
    async with (
        Scheduler(host="127.0.0.1", port=0, dashboard=False, dashboard_address=LOCAL) as scheduler,
        DaskProcess(scheduler.address, host="127.0.0.1", nthreads=2, dashboard_address=LOCAL),
    ):
        reader = dask_worker(
            "reader", measure_upstream, skills=["read"], capacity=4, address=scheduler.address
        )
        store = InMemoryStore()
        graph = create_orchestrator(workers=[maker, reader]).compile(
            checkpointer=InMemorySaver(), store=store
        )
        try:
            out = await graph.ainvoke(
                {"request": "fan out", "plan": plan.model_dump(mode="json")},
                {"configurable": {"thread_id": "by-reference"}},
                context={"use_memory": False},
            )
        finally:
            await CLIENTS.close()
    assert out["report"]["status"] == "done", out["report"]["reason"]
    traffic = reader.run.traffic
    assert (traffic.tasks, traffic.references) == (4, 4)
    assert traffic.sent / traffic.tasks < 5_000  # the payloads, without the megabyte
    assert 1_000_000 < traffic.scattered < 1_100_000  # the megabyte, once
    digest = hashlib.sha256(blob.encode()).hexdigest()
    expected = {"length": 1_000_000, "digest": digest}
    assert all(out["tasks"][t.id]["status"] == "approved" for t in readers)
    attempts = await Ledger(store, out["report"]["run_id"]).attempts()
    read = {r.task_id: r.output for r, v in attempts if v.verdict == "approve"}
    assert [read[t.id] for t in readers] == [expected] * 4


async def test_no_cluster_address_is_one_clear_error(monkeypatch):
    monkeypatch.delenv(DASK_ENV, raising=False)
    worker = dask_worker("w", where_it_ran, skills=["eu"])
    payload = WorkerInput(run_id="r", task=Task(id="t", title="t", skills=["eu"]), attempt=1)
    ctx = WorkerContext(model=None, output_dir="", emit=lambda e: None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=rf"no Dask scheduler.*\${DASK_ENV}"):
        await worker.run(payload, ctx)
