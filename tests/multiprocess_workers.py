"""Workers for the multi-process tests, imported by CLI subprocesses (``run:`` in a roster):
each attempt sleeps ``inputs.sleep`` seconds (and until the file ``inputs.until`` exists, if
named: the test's signal to go on), and appends when it began and ended to the file
named by ``$OG_TEST_LOG`` (one JSON line each), so a test counts what really ran where."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from orchestrator_graph.workers import WorkerInput


def _log(**entry: Any) -> None:
    with open(os.environ["OG_TEST_LOG"], "a") as out:
        out.write(json.dumps({"pid": os.getpid(), **entry}) + "\n")


async def sleeper(payload: WorkerInput) -> dict[str, Any]:
    task = payload.task
    began = time.time()
    _log(event="began", task=task.id, at=began)
    await asyncio.sleep(float(task.inputs.get("sleep", 0.0)))
    until = task.inputs.get("until")
    while until and not os.path.exists(until):
        await asyncio.sleep(0.05)
    _log(event="ended", task=task.id, began=began, at=time.time())
    return {"value": task.id, "summary": f"{task.id} slept"}


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    try:
        with open(path) as log:
            return [json.loads(line) for line in log if line.strip()]
    except FileNotFoundError:
        return []
