"""Worker functions the Dask tests send to their cluster (importable there, unlike a test)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from orchestrator_graph.workers import WorkerInput


def where_it_ran(payload: WorkerInput) -> dict[str, Any]:
    """Sleeps the task's effort and says which Dask worker ran it. With ``inputs.announce``
    (a file), the first run of the task writes its process id there before sleeping, so a
    test can kill that process mid-task."""
    from distributed import get_worker

    announce = payload.task.inputs.get("announce")
    if announce and not Path(announce).exists():
        Path(announce).write_text(str(os.getpid()))
    time.sleep(payload.task.effort)
    worker = get_worker()
    regions = [r.removeprefix("region-") for r in worker.state.total_resources]
    return {
        "value": len(payload.task.id),
        "pid": os.getpid(),
        "regions": regions,
        "summary": f"{payload.task.id} done in region {regions[0] if regions else '-'}",
    }


def measure_upstream(payload: WorkerInput) -> dict[str, Any]:
    """The length and digest of the ``blob`` its dependency ``big`` produced."""
    import hashlib

    blob = payload.upstream["big"]["blob"]
    return {"length": len(blob), "digest": hashlib.sha256(blob.encode()).hexdigest()}


def slow_when_rerun(payload: WorkerInput) -> dict[str, Any]:
    """Attempt 1 writes its process id to ``inputs.announce`` and waits to be killed; Dask's
    rerun of it (the file is there) takes ``inputs.rerun`` seconds; a later attempt (the
    orchestrator's hedge) answers at once."""
    announce = Path(payload.task.inputs["announce"])
    if payload.attempt == 1 and not announce.exists():
        announce.write_text(str(os.getpid()))
        time.sleep(60)
    elif payload.attempt == 1:
        time.sleep(payload.task.inputs["rerun"])
    return {"value": payload.attempt, "pid": os.getpid(), "summary": f"attempt {payload.attempt}"}


def warm() -> None:
    """Import what a task needs once per Dask worker process, before a test's clock runs."""
    import orchestrator_graph.workers  # noqa: F401
