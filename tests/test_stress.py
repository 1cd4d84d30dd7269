"""The whole graph under adversarial timing: many seeded runs with jittered worker times, many
workers released on the same event-loop tick, slow attempts that get hedged and cancelled, and a
block of runs with CPU-hog processes beside them. The dispatcher's invariants are checked on
what really happened (the event stream, the workers' own counts and the ledger)."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import Worker, create_orchestrator
from orchestrator_graph.ledger import Ledger
from orchestrator_graph.simulation import random_plan

TICK = 0.002  # seconds between ticks; every worker due on a tick is released at once
QUIET_RUNS, HOG_RUNS = 150, 50


@dataclass
class Tally:
    runs: int = 0
    attempts: int = 0
    same_tick: int = 0  # worker completions released on a tick together with another
    hedges: int = 0
    cancelled: int = 0
    violations: list[str] = field(default_factory=list)


class Ticker:
    """Releases every waiting worker on the same loop iteration, every ``TICK`` seconds."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.released: Counter[int] = Counter()
        self.number = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            event, self.event = self.event, asyncio.Event()
            self.number += 1
            event.set()

    async def wait(self, ticks: int) -> None:
        for _ in range(ticks):
            await self.event.wait()
        self.released[self.number] += 1

    async def until(self, number: int) -> None:
        while self.number < number:
            await self.event.wait()
        self.released[self.number] += 1


def team(seed: int, ticker: Ticker, tally: Tally, busy: Counter[str], peak: Counter[str]):
    rng = random.Random(seed)
    workers = []

    meet: dict[str, int] = {}  # task -> the tick on which its stalled attempt and hedge end

    async def stalled(tid: str) -> None:
        for _ in range(25):
            await ticker.wait(1)
            if tid in meet:
                break
        await ticker.until(meet.get(tid, 0))

    def body(name: str):
        async def work(payload):
            busy[name] += 1
            peak[name] = max(peak[name], busy[name])
            tid = payload.task.id
            draw = random.Random(f"{seed}:{tid}:{payload.attempt}")
            slow = payload.attempt == 1 and draw.random() < 0.08  # now and then: a stall
            try:
                if slow:
                    await stalled(tid)
                elif payload.attempt > 1 and tid not in meet and draw.random() < 0.5:
                    meet[tid] = ticker.number + 2  # a hedge that ends with the stalled one
                    await ticker.until(meet[tid])
                else:
                    await ticker.wait(draw.randint(1, 6))
            except asyncio.CancelledError:
                tally.cancelled += 1
                raise
            finally:
                busy[name] -= 1
            return {"value": 1, "summary": payload.task.id}

        return work

    for i in range(rng.randint(3, 5)):
        workers.append(
            Worker(name=f"w{i}", skills=["sim"], capacity=rng.randint(1, 2), run=body(f"w{i}"))
        )
    return workers


async def one_run(seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    plan = random_plan(
        rng.randint(8, 24),
        seed=seed,
        shape=rng.choice(["layered", "fork_join", "chain_mix"]),
        mean_effort=TICK * 3,
    )
    ticker, busy, peak = Ticker(), Counter(), Counter()
    workers = team(seed, ticker, tally, busy, peak)
    store = InMemoryStore()
    graph = create_orchestrator(workers=workers).compile(checkpointer=InMemorySaver(), store=store)
    events: list[dict] = []
    clock = asyncio.ensure_future(ticker.run())
    try:
        async for _ns, ev in graph.astream(
            {"request": "stress", "plan": plan.model_dump()},
            {"configurable": {"thread_id": str(seed)}},
            stream_mode="custom",
            subgraphs=True,
            context={"use_memory": False, "worker_subgraph": seed % 4 == 0},
        ):
            events.append(ev)
    finally:
        clock.cancel()
    state = (await graph.aget_state({"configurable": {"thread_id": str(seed)}})).values
    report = state["report"]
    tally.runs += 1
    tally.same_tick += sum(n for n in ticker.released.values() if n > 1)
    tally.hedges += sum(1 for e in events if e["kind"] == "reassigned" and "hedged" in e["message"])
    check(seed, plan, report, events, peak, workers, tally)
    ledger = await Ledger(store, report["run_id"]).attempts()
    tally.attempts += len(ledger)
    applied = {
        (e["task_id"], e["attempt"])
        for e in events
        if e["kind"] in ("task_completed", "task_failed")
    }
    for result, _ in ledger:  # a recorded attempt the board never applied: only a hedge's loser
        key = (result.task_id, result.attempt)
        if key not in applied and report["tasks"][result.task_id]["status"] != "approved":
            tally.violations.append(f"seed {seed}: ledger has {key}, never applied")


def check(seed, plan, report, events, peak, workers, tally) -> None:
    bad = tally.violations
    if report["status"] != "done":
        bad.append(f"seed {seed}: run ended {report['status']}: {report.get('reason')}")
    deps = {t.id: t.depends_on for t in plan.tasks}
    approved: Counter[str] = Counter()
    applied: Counter[tuple[str, int]] = Counter()
    for e in events:
        if e["kind"] == "task_started":
            missing = [d for d in deps[e["task_id"]] if not approved[d]]
            if missing:
                bad.append(f"seed {seed}: {e['task_id']} started before {missing} were approved")
        if e["kind"] in ("task_completed", "task_failed"):
            applied[(e["task_id"], e["attempt"])] += 1
        if e["kind"] == "task_completed" and e["data"]["status"] == "approved":
            approved[e["task_id"]] += 1
    bad += [f"seed {seed}: {t} approved {n} times" for t, n in approved.items() if n > 1]
    bad += [f"seed {seed}: result {k} applied {n} times" for k, n in applied.items() if n > 1]
    capacity = {w.name: w.capacity for w in workers}
    bad += [
        f"seed {seed}: {w} ran {n} attempts at once (capacity {capacity[w]})"
        for w, n in peak.items()
        if n > capacity[w]
    ]


@pytest.fixture
def cpu_hogs():
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)
    ]  # stopped by their own pids
    yield
    for hog in hogs:
        hog.kill()
        hog.wait()


def report_line(tally: Tally, label: str) -> str:
    return (
        f"{label}: {tally.runs} runs, {tally.attempts} attempts, {tally.same_tick} same-tick "
        f"completions, {tally.hedges} hedges, {tally.cancelled} cancellations, "
        f"{len(tally.violations)} invariant violations"
    )


@pytest.mark.slow
async def test_many_runs_with_same_tick_completions_hedges_and_cancellations():
    tally = Tally()
    for seed in range(QUIET_RUNS):
        await one_run(seed, tally)
    print(report_line(tally, "quiet"))
    assert not tally.violations, tally.violations[:5]
    assert tally.same_tick > tally.runs and tally.hedges and tally.cancelled  # the races happened


@pytest.mark.slow
async def test_runs_with_cpu_hogs_beside_them(cpu_hogs):
    tally = Tally()
    for seed in range(1000, 1000 + HOG_RUNS):
        await one_run(seed, tally)
    print(report_line(tally, "with 2 CPU hogs"))
    assert not tally.violations, tally.violations[:5]
