"""Work on a Dask cluster of two regions on 127.0.0.1 (an in-process scheduler, Nanny worker
processes): it lands only in its region, and a worker process killed mid-task costs no extra
attempt: Dask reruns the task elsewhere and the ledger shows one approved attempt per task."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from dask_tasks import measure_upstream, where_it_ran
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import create_orchestrator
from orchestrator_graph.dask_workers import CLIENTS, DASK_ENV, dask_worker
from orchestrator_graph.errors import InputError
from orchestrator_graph.ledger import Ledger
from orchestrator_graph.models import Criterion, Plan, Task
from orchestrator_graph.workers import Worker, WorkerContext, WorkerInput

pytestmark = pytest.mark.slow


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


async def test_a_killed_dask_worker_process_costs_no_extra_attempt(tmp_path):
    from distributed import Nanny, Scheduler

    announce = tmp_path / "announce"
    async with Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler:
        nannies = [
            Nanny(
                scheduler.address,
                host="127.0.0.1",
                nthreads=1,
                resources={f"region-{region}": 1},
                dashboard=False,
                silence_logs=True,
            )
            for region in ("eu", "eu", "us")
        ]
        await asyncio.gather(*nannies)
        try:
            team = [
                dask_worker(f"{r}-pool", where_it_ran, skills=[r], region=r, capacity=2)
                for r in ("eu", "us")
            ]
            store = InMemoryStore()
            graph = create_orchestrator(workers=team).compile(
                checkpointer=InMemorySaver(), store=store
            )
            # stall_after=0: the orchestrator does not hedge what Dask is already rerunning.
            context = {"use_memory": False, "dask_address": scheduler.address, "stall_after": 0}
            run = graph.ainvoke(
                {"request": "regional work", "plan": _plan(announce).model_dump(mode="json")},
                {"configurable": {"thread_id": "dask"}},
                context=context,
            )
            killed, out = await asyncio.gather(_kill_when_announced(announce), run)
        finally:
            await CLIENTS.close()
            await asyncio.gather(*(n.close() for n in nannies))
    assert out["report"]["status"] == "done"
    attempts = await Ledger(store, out["report"]["run_id"]).attempts()
    assert sorted((r.task_id, r.attempt, v.verdict) for r, v in attempts) == [
        (f"{region}{i}", 1, "approve") for region in ("eu", "us") for i in range(3)
    ]
    outputs = {r.task_id: r.output for r, _ in attempts}
    assert outputs["eu0"]["pid"] != killed  # finished by another process than the killed one
    assert all(o["regions"] == [tid[:2]] for tid, o in outputs.items())
    assert team[0].run.traffic.tasks == 3 and team[0].run.traffic.sent > 0


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
        Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler,
        DaskProcess(scheduler.address, host="127.0.0.1", nthreads=2, dashboard=False),
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
