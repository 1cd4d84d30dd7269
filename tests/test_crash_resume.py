"""SIGKILL a run while workers are running, resume it from a new process: it completes, nothing
that finished before the kill runs again, and it ends exactly as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import time

import pytest
from crash_job import executions, finished_attempts, outcome, report_of, start

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    return outcome(report_of(start("start", tmp_path_factory.mktemp("clean"), "-", "clean")))


@pytest.mark.parametrize(("backend", "kill_after"), [("sqlite", 2), ("sqlite", 7), ("postgres", 4)])
async def test_kill_and_resume(backend, kill_after, tmp_path, uninterrupted, request):
    pg = request.getfixturevalue("postgres_url") if backend == "postgres" else "-"
    thread = f"crash-{kill_after}"
    proc = start("start", tmp_path, pg, thread)
    deadline = time.time() + 60
    while len(executions(tmp_path)) < kill_after:  # kill while workers are running
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, "the job never reached the kill point"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = await finished_attempts(tmp_path, pg)
    ran_before = len(executions(tmp_path))
    assert finished_before, "nothing was recorded before the kill"

    report = report_of(start("resume", tmp_path, pg, thread))
    assert outcome(report) == uninterrupted
    rerun = set(executions(tmp_path)[ran_before:]) & finished_before
    assert not rerun, f"finished attempts ran again after resume: {sorted(rerun)}"
