"""SIGKILL a run while workers are running, resume it from a new process: it completes, nothing
that finished before the kill runs again, and it ends exactly as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator_graph.persistence import open_persistence

JOB = Path(__file__).resolve().parent.parent / "evals" / "crash_job.py"
pytestmark = pytest.mark.slow


def job(mode: str, home: Path, pg: str, thread: str, effects: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(JOB), mode, str(home), pg, thread, str(effects)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def executions(effects: Path) -> list[tuple[str, ...]]:
    """(run id, task, attempt) per worker execution."""
    if not effects.exists():
        return []
    return [tuple(line.split()) for line in effects.read_text().splitlines()]


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1].removeprefix("REPORT "))


async def ledger_keys(home: Path, pg: str) -> set[tuple[str, ...]]:
    async with open_persistence(home, None if pg == "-" else pg) as (_saver, store):
        items = await store.asearch(("orchestrator_graph", "runs"), limit=10_000)
    return {(i.namespace[2], *i.key.split("#")) for i in items}


def outcome(report: dict) -> dict:
    return {
        "status": report["status"],
        "deliverable": report["deliverable"],
        "tasks": {t: (r["status"], r["result_key"]) for t, r in report["tasks"].items()},
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("clean")
    return outcome(finish(job("start", home, "-", "clean", home / "effects")))


@pytest.mark.parametrize(("backend", "kill_after"), [("sqlite", 2), ("sqlite", 7), ("postgres", 4)])
async def test_kill_and_resume(backend, kill_after, tmp_path, uninterrupted, request):
    pg = request.getfixturevalue("postgres_url") if backend == "postgres" else "-"
    effects, thread = tmp_path / "effects", f"crash-{kill_after}"
    proc = job("start", tmp_path, pg, thread, effects)
    deadline = time.time() + 60
    while len(executions(effects)) < kill_after:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, "the job never reached the kill point"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = await ledger_keys(tmp_path, pg)
    ran_before = len(executions(effects))
    assert finished_before, "nothing was recorded before the kill"

    report = finish(job("resume", tmp_path, pg, thread, effects))
    assert outcome(report) == uninterrupted
    rerun = set(executions(effects)[ran_before:]) & finished_before
    assert not rerun, f"finished attempts ran again after resume: {sorted(rerun)}"
