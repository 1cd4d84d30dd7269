"""How the run's model calls and worker attempts appear in LangSmith: each named by its role
and task (``planner``, ``reviewer[task#attempt]``, ``worker[task#attempt]``; the attempt itself
``attempt[task#attempt]``) with tags and metadata (orchestrator run id, thread, task, worker,
attempt); each QA verdict recorded as feedback on the attempt's run. Nothing is sent unless
LangSmith tracing is on."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config

TAG = "orchestrator-graph"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Where:
    """The part of the run a call is made for."""

    run_id: str = ""
    task: str = ""
    worker: str = ""
    attempt: int = 0


_where: ContextVar[Where | None] = ContextVar("orchestrator_graph_where", default=None)


@contextmanager
def at(**fields: Any) -> Iterator[Where]:
    """Calls inside the block are made for these (``Where``) fields, added to the current."""
    where = replace(_where.get() or Where(), **fields)
    token = _where.set(where)
    try:
        yield where
    finally:
        _where.reset(token)


def run_name(role: str, where: Where | None = None) -> str:
    where = where or _where.get() or Where()
    return f"{role}[{where.task}#{where.attempt}]" if where.task else role


def run_config(role: str, run_id: str = "") -> RunnableConfig:
    """The config a call for ``role`` is made with: its name, tags and metadata."""
    where = _where.get() or Where()
    if run_id and not where.run_id:
        where = replace(where, run_id=run_id)
    metadata: dict[str, Any] = {"orchestrator_run_id": where.run_id, "role": role}
    thread = _thread_id()
    if thread:
        metadata["thread_id"] = thread
    tags = [TAG, f"role:{role}"]
    if where.task:
        metadata |= {"task": where.task, "worker": where.worker, "attempt": where.attempt}
        tags += [f"task:{where.task}", f"worker:{where.worker}"]
    return {"run_name": run_name(role, where), "tags": tags, "metadata": metadata}


def _thread_id() -> str:
    try:
        return str(get_config().get("configurable", {}).get("thread_id") or "")
    except RuntimeError:  # called outside a graph run
        return ""


def tracing() -> bool:
    from langsmith.utils import tracing_is_enabled

    return bool(tracing_is_enabled())


@contextmanager
def attempt_run(role: str = "attempt") -> Iterator[dict[str, str] | None]:
    """A LangSmith run around a worker's attempt (its own calls nest under it); yields its run,
    trace and project ids, or ``None`` when tracing is off."""
    if not tracing():
        yield None
        return
    from langsmith.run_helpers import trace

    config = run_config(role)
    with trace(
        config["run_name"], "chain", tags=config["tags"], metadata=config["metadata"]
    ) as run:
        ids = {"run_id": str(run.id), "trace_id": str(run.trace_id)}
        yield ids | ({"session_id": str(run.session_id)} if run.session_id else {})


async def record_verdict(run: dict[str, str] | None, verdict: Any) -> None:
    """The QA verdict as feedback on the attempt's run (``qa_score``, with the verdict as its
    value and the reviewer's feedback as the comment). Feedback LangSmith does not take is
    logged, not raised: the run's result does not depend on it."""
    if run is None:
        return
    from langsmith.run_trees import get_cached_client

    try:
        await asyncio.to_thread(
            functools.partial(
                get_cached_client().create_feedback,
                **run,  # type: ignore[arg-type]  # run_id and trace_id
                key="qa_score",
                score=verdict.score,
                value=verdict.verdict,
                comment=verdict.feedback or None,
                source_info={"reviewer": verdict.reviewer},
            )
        )
    except Exception as err:  # tracing is an observer: its failure must not fail the attempt
        log.warning("QA feedback for run %s not recorded: %s", run["run_id"], err)
