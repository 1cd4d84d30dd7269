"""Scale: flat vs two-level vs three-level organisations, and work on Dask vs in-process.

``python evals/bench_scale.py [--quick] [--repeats N] [--skip-dask]`` prints, in one run:

1. per organisation and size: coordination overhead per task (CPU ms of this process per task;
   simulated workers only sleep, so all of it is coordination), makespan / lower bound (the
   lower bound of the same independent work on the same number of equal workers), the bytes that
   crossed each parent -> child boundary per task (down: the phase and its plan; up: summary and
   references), and the bytes written into checkpoints per task;
2. throughput of CPU-bound work run in-process vs on a local Dask cluster of 1, 2 and 4 worker
   processes (bound to 127.0.0.1), with the bytes per task each way;
3. a 1 MB dependency output read by 20 tasks on Dask: the bytes per task that cross to the
   cluster with every value in the payload (before) and with large values by reference (now).

Sizes (chosen to keep the run to a few minutes on 2 cores): 100 workers x 1,000 tasks, 1,000 x
1,000, 10,000 x 5,000 and 10,000 x 10,000. Every organisation holds about a hundred members per
orchestrator (two-level: workers/100 regional leads; three-level: sqrt(workers/100) regions x as
many teams).
The flat organisation is not run at 10,000 x 10,000: one plan holds at most 5,000 tasks
(``limits.MAX_TASKS``), which is what a hierarchy is for; 10,000 x 5,000 is its largest run.
Efforts are log-normal (sigma 0.3) with a mean chosen so the lower bound is about 3 s.

Run time: the whole default run (3 repeats) is CPU-bound coordination of about 40,000 tasks; on
a shared, loaded machine it takes far longer than on an idle one, so ``--sizes`` picks sizes
(``100x1000,10000x10000``) and ``--quick`` takes a minute."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import os
import statistics
import sys
import time
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import create_orchestrator
from orchestrator_graph.hierarchy import HIERARCHY
from orchestrator_graph.limits import MAX_TASKS
from orchestrator_graph.models import Criterion, Plan, Task
from orchestrator_graph.organisation import lower_bound, organisation
from orchestrator_graph.workers import Worker, WorkerInput

SIZES = [(100, 1_000), (1_000, 1_000), (10_000, 5_000), (10_000, 10_000)]
QUICK = [(100, 300), (1_000, 1_000)]
CONTEXT = {"use_memory": False, "adapt": False}


def shape(levels: int, workers: int) -> dict[str, int]:
    if levels == 2:
        return {"regions": max(2, workers // 100)}
    side = max(2, round(math.sqrt(workers / 100)))
    return {"regions": side, "teams": side}


def checkpoint_bytes(saver: InMemorySaver) -> int:
    total = sum(len(v[1]) for v in saver.blobs.values())
    for namespaces in saver.storage.values():
        for checkpoints in namespaces.values():
            total += sum(len(c[1]) + len(c[0][1]) for c in checkpoints.values())
    for writes in saver.writes.values():
        total += sum(len(w[3][1]) for w in writes.values())
    return total


async def link_bytes(store: InMemoryStore) -> tuple[int, int]:
    links = await store.asearch(HIERARCHY, limit=1_000_000)
    return sum(i.value["bytes_down"] for i in links), sum(i.value["bytes_up"] for i in links)


async def one_run(levels: int, workers: int, tasks: int) -> dict[str, Any]:
    mean = 3.0 * workers / tasks / 1.1  # the lower bound is about 3 s
    extra = shape(levels, workers) if levels > 1 else {}
    org = organisation(levels, workers=workers, tasks=tasks, mean_effort=mean, **extra)
    saver, store = InMemorySaver(), InMemoryStore()
    graph = create_orchestrator(workers=org.workers).compile(checkpointer=saver, store=store)
    cpu, wall = time.process_time(), time.perf_counter()
    out = await graph.ainvoke(
        {"request": "scale", "plan": org.plan.model_dump(mode="json")},
        {"configurable": {"thread_id": f"bench-{levels}-{workers}"}},
        context=CONTEXT,
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert out["report"]["status"] == "done", out["report"]["reason"]
    down, up = await link_bytes(store)
    return {
        "cpu_ms": cpu * 1000 / tasks,
        "ratio": wall / lower_bound(org.work, workers),
        "down": down / tasks,
        "up": up / tasks,
        "ckpt": checkpoint_bytes(saver) / tasks,
    }


ORGANISATIONS = ((1, "flat"), (2, "two-level"), (3, "three-level"))


async def organisations(sizes: list[tuple[int, int]], repeats: int) -> None:
    """Every size and organisation once per repeat, in turn: a shared machine's speed drifts by
    tens of percent over minutes, and taking the repeats of one row back to back would put
    that drift between the rows the table compares."""
    cells = [
        (workers, tasks, levels)
        for workers, tasks in sizes
        for levels, _ in ORGANISATIONS
        if levels > 1 or tasks <= MAX_TASKS
    ]
    runs: dict[tuple[int, int, int], list[dict[str, Any]]] = {cell: [] for cell in cells}
    for i in range(repeats):
        for cell in cells:
            runs[cell].append(await one_run(cell[2], cell[0], cell[1]))
        print(f"repeat {i + 1} of {repeats} done", file=sys.stderr, flush=True)
    print(f"\n## Organisations (median of {repeats} runs; load {os.getloadavg()[0]:.1f})\n")
    head = "| workers x tasks | organisation | CPU ms/task | makespan / lower bound |"
    print(head + " bytes down/task | bytes up/task | checkpoint bytes/task |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for workers, tasks in sizes:
        for levels, name in ORGANISATIONS:
            size = f"{workers:,} x {tasks:,}"
            if (workers, tasks, levels) not in runs:
                print(f"| {size} | {name} | not run: one plan holds at most {MAX_TASKS:,} tasks |")
                continue
            done = runs[(workers, tasks, levels)]
            med = {k: statistics.median(r[k] for r in done) for k in done[0]}
            print(
                f"| {size} | {name} | {med['cpu_ms']:.2f} | {med['ratio']:.2f} | "
                f"{med['down']:.0f} | {med['up']:.0f} | {med['ckpt']:.0f} |",
                flush=True,
            )


def crunch(payload: WorkerInput) -> dict[str, Any]:
    """About 50 ms of CPU: the kind of work worth sending to other processes."""
    digest = payload.task.id.encode()
    for _ in range(payload.task.inputs.get("rounds", 100_000)):
        digest = hashlib.sha256(digest).digest()
    return {"value": digest.hex()[:8], "summary": f"{payload.task.id} crunched"}


def _warm() -> None:
    import orchestrator_graph.workers  # noqa: F401


def crunch_plan(n: int) -> Plan:
    tasks = [
        Task(
            id=f"c{i:04d}",
            title=f"crunch {i}",
            skills=["cpu"],
            acceptance=[Criterion(kind="has_keys", keys=["value"])],
        )
        for i in range(n)
    ]
    return Plan(goal="crunch", tasks=tasks, source="declared")


async def throughput(worker: Worker, n: int) -> float:
    graph = create_orchestrator(workers=[worker]).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    start = time.perf_counter()
    out = await graph.ainvoke(
        {"request": "crunch", "plan": crunch_plan(n).model_dump(mode="json")},
        {"configurable": {"thread_id": "crunch"}},
        context=CONTEXT,
    )
    assert out["report"]["status"] == "done", out["report"]["reason"]
    return n / (time.perf_counter() - start)


async def dask_table(n: int, repeats: int) -> None:
    from distributed import LocalCluster

    from orchestrator_graph.dask_workers import CLIENTS, dask_worker

    print(f"\n## Work on Dask ({n} tasks of ~50 ms CPU; load {os.getloadavg()[0]:.1f})\n")
    print("| where | processes | tasks/s (median) | bytes sent/task | bytes back/task |")
    print("|---|---:|---:|---:|---:|")
    local = Worker(name="local", skills=["cpu"], capacity=8, run=crunch)
    rates = [await throughput(local, n) for _ in range(repeats)]
    print(f"| in-process (threads) | 1 | {statistics.median(rates):.1f} | 0 | 0 |", flush=True)
    for procs in (1, 2, 4):
        async with LocalCluster(
            n_workers=procs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            asynchronous=True,
        ) as cluster:
            worker = dask_worker(
                "dask", crunch, skills=["cpu"], capacity=8, address=cluster.scheduler_address
            )
            client = await CLIENTS.get(cluster.scheduler_address)
            await client.run(_warm)  # each process imports the package once, before the clock
            rates = [await throughput(worker, n) for _ in range(repeats)]
            await CLIENTS.close()
        t = worker.run.traffic
        print(
            f"| Dask | {procs} | {statistics.median(rates):.1f} | {t.sent / t.tasks:.0f} | "
            f"{t.received / t.tasks:.0f} |",
            flush=True,
        )


def read_blob(payload: WorkerInput) -> dict[str, Any]:
    blob = payload.upstream["big"]["blob"]
    return {"value": hashlib.sha256(blob.encode()).hexdigest()[:8], "summary": "read"}


def fan_out_plan(readers: int) -> Plan:
    tasks = [Task(id="big", title="make it", skills=["make"])]
    tasks += [
        Task(id=f"r{i:03d}", title=f"read {i}", skills=["read"], depends_on=["big"])
        for i in range(readers)
    ]
    return Plan(goal="fan out", tasks=tasks, source="declared")


async def reference_table(readers: int = 20) -> None:
    from distributed import LocalCluster

    from orchestrator_graph.dask_workers import BY_REFERENCE, CLIENTS, dask_worker

    blob = "x" * 1_000_000
    maker = Worker(name="maker", skills=["make"], run=lambda p: {"blob": blob, "summary": "big"})
    print(f"\n## A 1 MB dependency output read by {readers} tasks on Dask (2 processes)\n")
    print("| large values | payload bytes/task | scattered bytes/task | total bytes/task | s |")
    print("|---|---:|---:|---:|---:|")
    async with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        asynchronous=True,
    ) as cluster:
        for label, limit in (("in the payload (before)", 10**12), ("by reference", BY_REFERENCE)):
            reader = dask_worker(
                "reader",
                read_blob,
                skills=["read"],
                capacity=4,
                address=cluster.scheduler_address,
                by_reference=limit,
            )
            graph = create_orchestrator(workers=[maker, reader]).compile(
                checkpointer=InMemorySaver(), store=InMemoryStore()
            )
            start = time.perf_counter()
            out = await graph.ainvoke(
                {"request": "fan out", "plan": fan_out_plan(readers).model_dump(mode="json")},
                {"configurable": {"thread_id": "fan-out"}},
                context=CONTEXT,
            )
            assert out["report"]["status"] == "done", out["report"]["reason"]
            t = reader.run.traffic
            print(
                f"| {label} | {t.sent / t.tasks:,.0f} | {t.scattered / t.tasks:,.0f} | "
                f"{(t.sent + t.scattered) / t.tasks:,.0f} | {time.perf_counter() - start:.2f} |",
                flush=True,
            )
        await CLIENTS.close()


async def main(argv: list[str]) -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="small sizes, one run each")
    args.add_argument("--repeats", type=int, default=3)
    args.add_argument("--skip-dask", action="store_true")
    args.add_argument("--sizes", help="workers x tasks to run, e.g. 100x1000,10000x10000")
    opts = args.parse_args(argv)
    repeats = 1 if opts.quick else opts.repeats
    sizes = QUICK if opts.quick else SIZES
    if opts.sizes:
        sizes = [tuple(int(n) for n in size.split("x")) for size in opts.sizes.split(",")]
    print(f"# bench_scale {time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} CPUs")
    await organisations(sizes, repeats)  # type: ignore[arg-type]
    if not opts.skip_dask:
        await dask_table(40 if opts.quick else 100, repeats)
        await reference_table()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
