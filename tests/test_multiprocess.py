"""Many processes on one data folder (SQLite) or one PostgreSQL: concurrent CLI runs, one
runner per thread, crashed runners taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from langgraph.store.base import PutOp
from multiprocess_workers import read_log

from orchestrator_graph.errors import ThreadBusy
from orchestrator_graph.thread_lease import thread_lease

TESTS = str(Path(__file__).resolve().parent)
ROSTER = (
    "workers:\n  - {name: sleeper, skills: {sim: 1.0}, capacity: 4,"
    ' run: "multiprocess_workers:sleeper"}\n'
)


def setup_folder(
    folder: Path, tasks: int, sleep: float, chain: bool, hold: tuple[str, ...] = ()
) -> None:
    """A plan of ``tasks`` sleeps (a chain, or all at once); the tasks in ``hold`` also wait
    for the file ``go`` in the folder."""
    plan = [
        {
            "id": f"t{i}",
            "title": f"step {i}",
            "skills": ["sim"],
            "inputs": {
                "sleep": sleep,
                **({"until": str(folder / "go")} if f"t{i}" in hold else {}),
            },
            **({"depends_on": [f"t{i - 1}"]} if chain and i else {}),
        }
        for i in range(tasks)
    ]
    (folder / "plan.json").write_text(json.dumps({"goal": "sleep in steps", "tasks": plan}))
    (folder / "team.yaml").write_text(ROSTER)


def start(folder: Path, *args: str, home: bool = True) -> subprocess.Popen[str]:
    """The CLI in its own process, the test workers importable, their log in ``folder/log``;
    ``home=False`` leaves the data folder at its default (``./.orchestrator-graph``)."""
    drop = {"OPENAI_API_KEY", "ORCHESTRATOR_GRAPH_HOME", "ORCHESTRATOR_GRAPH_CHROMA"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join([TESTS, env.get("PYTHONPATH", "")])
    env["OG_TEST_LOG"] = str(folder / "log")
    if home:
        env["ORCHESTRATOR_GRAPH_HOME"] = str(folder)
    command = [sys.executable, "-m", "orchestrator_graph.cli", *args]
    return subprocess.Popen(
        command, env=env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, errors = process.communicate(timeout=240)
    return process.returncode, out, errors


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def started(folder: Path, task: str) -> bool:
    return any(e["event"] == "began" and e["task"] == task for e in read_log(folder / "log"))


@pytest.mark.slow
def test_ten_concurrent_cli_runs_on_the_default_data_folder(tmp_path):
    """Once 6 of 10 failed with "database is locked", one with "duplicate column name" while
    setting up the store, and one lost its memory record ("table collections already exists")."""
    setup_folder(tmp_path, tasks=12, sleep=0.02, chain=False)
    runs = [
        start(
            tmp_path,
            "run",
            "--plan",
            "plan.json",
            "--roster",
            "team.yaml",
            "--thread",
            f"r{i}",
            "--json",
            home=False,
        )
        for i in range(10)
    ]
    results = [finish(p) for p in runs]
    for code, out, errors in results:
        assert code == 0, errors
        report = json.loads(out)
        assert report["status"] == "done" and report["memory"].startswith("remembered in")
    ended = Counter(e["task"] for e in read_log(tmp_path / "log") if e["event"] == "ended")
    assert ended == {f"t{i}": 10 for i in range(12)}  # each run's tasks ran once
    from orchestrator_graph.memory import MemoryHandle

    memory = MemoryHandle(str(tmp_path / ".orchestrator-graph" / "chroma")).open()
    assert memory.count() == 10


@pytest.mark.slow
def test_resume_of_a_running_thread_is_refused_naming_its_runner(tmp_path):
    setup_folder(tmp_path, tasks=3, sleep=0.1, chain=True, hold=("t1",))
    first = start(tmp_path, "run", "--plan", "plan.json", "--roster", "team.yaml", "--thread", "t")
    wait_for(lambda: started(tmp_path, "t1"))
    code, _out, errors = finish(start(tmp_path, "resume", "t"))
    assert code == 2 and f"error: thread t is being run by pid {first.pid} on " in errors
    assert len(errors.strip().splitlines()) == 1
    (tmp_path / "go").touch()
    assert finish(first)[0] == 0
    ended = Counter(e["task"] for e in read_log(tmp_path / "log") if e["event"] == "ended")
    assert ended == {"t0": 1, "t1": 1, "t2": 1}


@pytest.mark.slow
def test_two_resumes_of_a_crashed_thread_run_the_remaining_work_once(tmp_path):
    setup_folder(tmp_path, tasks=4, sleep=2.0, chain=True)
    crashed = start(
        tmp_path, "run", "--plan", "plan.json", "--roster", "team.yaml", "--thread", "t"
    )
    wait_for(lambda: started(tmp_path, "t1"))
    crashed.send_signal(signal.SIGKILL)
    crashed.communicate(timeout=30)
    resumes = [start(tmp_path, "resume", "t", "--json") for _ in range(2)]
    (won, out, _), (lost, _, refusal) = sorted(map(finish, resumes))
    assert won == 0 and json.loads(out)["status"] == "done"
    winner = next(p for p in resumes if p.returncode == 0)
    assert lost == 2 and f"thread t is being run by pid {winner.pid} on " in refusal
    log = read_log(tmp_path / "log")
    ended = Counter(e["task"] for e in log if e["event"] == "ended")
    assert ended == {"t0": 1, "t1": 1, "t2": 1, "t3": 1}
    began = [(e["task"], e["pid"]) for e in log if e["event"] == "began"]
    assert began == [
        ("t0", crashed.pid),
        ("t1", crashed.pid),
        ("t1", winner.pid),
        ("t2", winner.pid),
        ("t3", winner.pid),
    ]  # t1 died with its process; only it ran again


HOLD = """
import asyncio, sys
from orchestrator_graph.thread_lease import thread_lease
async def main():
    async with thread_lease("t", postgres_url=sys.argv[1]):
        print("held", flush=True)
        await asyncio.sleep(600)
asyncio.run(main())
"""


async def test_postgres_thread_lease_refuses_a_live_holder_and_frees_a_crashed_one(
    postgres_url,
):
    async with thread_lease("t", postgres_url=postgres_url):
        with pytest.raises(ThreadBusy, match=f"thread t is being run by pid {os.getpid()} on "):
            async with thread_lease("t", postgres_url=postgres_url):
                pass
        async with thread_lease("other", postgres_url=postgres_url):
            pass  # another thread is free
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, postgres_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ThreadBusy, match=f"by pid {holder.pid} on "):
            async with thread_lease("t", postgres_url=postgres_url):
                pass
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the server notices the dead connection and drops its lock
        try:
            async with thread_lease("t", postgres_url=postgres_url) as lease:
                assert lease.pid == os.getpid()
            break
        except ThreadBusy:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant (an end at the same instant as a begin closes
    first)."""
    edges = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans])
    now = peak = 0
    for _at, step in edges:
        now += step
        peak = max(peak, now)
    return peak


@pytest.mark.slow
async def test_four_orchestrator_processes_share_one_team_on_postgres(tmp_path, make_database):
    """Once: three processes added +5 to a worker's attempts for 15 attempts, and a worker of
    capacity 2 ran five tasks at once."""
    fresh_database = make_database()  # the team's history must start empty
    from multiprocess_workers import FLEET_TEAM

    from orchestrator_graph.persistence import open_persistence
    from orchestrator_graph.registry import load_history

    env = {**os.environ, "OG_TEST_LOG": str(tmp_path / "log")}
    env["PYTHONPATH"] = os.pathsep.join([TESTS, env.get("PYTHONPATH", "")])
    script = str(Path(TESTS) / "multiprocess_workers.py")
    fleet = [
        subprocess.Popen(
            [sys.executable, script, fresh_database, str(p), "25", "3"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(4)
    ]
    for process in fleet:
        _out, errors = process.communicate(timeout=280)
        assert process.returncode == 0, errors[-2000:]
    log = [e for e in read_log(tmp_path / "log") if e["event"] == "ended"]
    assert len({e["run"] for e in log}) == 100
    ran = Counter(e["worker"] for e in log)
    assert sum(ran.values()) == 300  # 100 runs x 3 tasks, each approved at its first attempt
    async with open_persistence(postgres_url=fresh_database) as (_saver, store):
        history = await load_history(store, FLEET_TEAM)
    assert {w: history[w]["sim"].attempts for w in FLEET_TEAM} == dict(ran)
    assert {w: history[w]["sim"].successes for w in FLEET_TEAM} == dict(ran)
    for worker, capacity in FLEET_TEAM.items():
        spans = [(e["began"], e["at"]) for e in log if e["worker"] == worker]
        assert most_at_once(spans) <= capacity, worker


async def test_concurrent_history_writers_lose_no_update(make_persistence):
    """Two dispatches that loaded the same history each add attempts; saving whole stats let
    the last writer's copy win (3 runs of 5 attempts added +5, not +15)."""
    import uuid

    from orchestrator_graph.history_log import HistoryWriter
    from orchestrator_graph.registry import SkillStats, load_history

    name = f"w{uuid.uuid4().hex[:8]}"  # the Postgres database is shared by the session
    async with make_persistence() as (_saver, store):
        writers = []
        for _ in range(3):
            loaded = await load_history(store, [name])
            writers.append((HistoryWriter(store, loaded), loaded))
        for round_ in range(5):
            for writer, history in writers:
                stats = history[name].setdefault("sim", SkillStats())
                stats.add(approved=round_ % 2 == 0, score=0.5, seconds=1.0, effort=2.0)
                await writer.save(history, {name})  # rewritten as it grows, never doubled
        total = (await load_history(store, [name]))[name]["sim"]
    assert (total.attempts, total.successes, total.timed) == (15, 9, 15)
    assert total.quality_sum == pytest.approx(7.5) and total.slowness_sum == pytest.approx(7.5)


@pytest.mark.parametrize("writer", ["history compaction", "store batch"])
async def test_a_write_cancelled_while_waiting_for_the_write_lock_leaves_no_transaction(
    tmp_path, writer
):
    """Seen once in CI: a CLI run failed with "cannot start a transaction within a
    transaction". A write cancelled while its ``BEGIN IMMEDIATE`` waited for another process's
    write lock left that BEGIN queued on the store's connection: aiosqlite ran it all the same,
    with no one to end it, and the store's next write could not begin."""
    import asyncio
    import sqlite3

    from orchestrator_graph.history_log import compact
    from orchestrator_graph.persistence import open_persistence

    async with open_persistence(tmp_path) as (_saver, store):
        await store.aput(("n",), "a", {"v": 1})
        other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        if writer == "history compaction":
            waiting = asyncio.ensure_future(compact(store))
        else:
            base = store
            while hasattr(base, "inner"):
                base = base.inner
            waiting = asyncio.ensure_future(base.abatch([PutOp(("n",), "b", {"v": 2})]))
        await asyncio.sleep(0.3)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        other.execute("COMMIT")
        other.close()
        await store.aput(("n",), "c", {"v": 3})
        assert (await store.aget(("n",), "c")).value == {"v": 3}
    with sqlite3.connect(tmp_path / "store.db") as check:  # committed, seen from outside
        keys = {k for (k,) in check.execute("SELECT key FROM store WHERE prefix = 'n'")}
    assert {"a", "c"} <= keys
