"""OpenTelemetry traces of a run, built after the fact from what the run left behind: one span
for the run, one per node step (from the checkpoint history: a node runs from the checkpoint
that scheduled it to the next one) and one per attempt (from the ledger, under the dispatcher
step it ran in), with run, thread, task, worker and attempt attributes. LangSmith tracing, when
configured, is unaffected: these spans go to whatever OpenTelemetry exporter you give."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from orchestrator_graph.observe import RunView

SCOPE = "orchestrator_graph"


class NodeStep(BaseModel):
    """One node's run in one superstep."""

    node: str
    step: int
    start: float
    end: float


def node_steps(history: Sequence[tuple[int, float, Sequence[str]]]) -> list[NodeStep]:
    """From checkpoints as (step, created_at, next nodes): each node scheduled by a checkpoint
    ran until the checkpoint after it. A last checkpoint with nodes still due (a run waiting for
    a human, or still going) gives them no span: they have not finished."""
    ordered = sorted(history, key=lambda h: h[1])
    out = []
    for (step, start, nodes), (_, end, _) in zip(ordered, ordered[1:], strict=False):
        out += [NodeStep(node=n, step=step, start=start, end=end) for n in nodes]
    return [s for s in out if not s.node.startswith("__")]


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def export_run(view: RunView, steps: Sequence[NodeStep], provider: Any) -> int:
    """Emit the run's spans through ``provider`` (an OpenTelemetry ``TracerProvider``); returns
    how many were emitted."""
    from opentelemetry import trace

    tracer = provider.get_tracer(SCOPE)
    base = {"orchestrator.run_id": view.run_id, "orchestrator.thread_id": view.thread_id}
    starts = [t for t in (view.started_at, *(s.start for s in steps)) if t]
    begin = min(starts, default=view.updated_at)
    end = max([*(s.end for s in steps), *(a.finished_at for a in view.attempts), begin])
    run = tracer.start_span(
        "orchestrator.run",
        start_time=_ns(begin),
        attributes={
            **base,
            "orchestrator.status": view.state,
            "orchestrator.request": view.request,
        },
    )
    count = 1
    run_ctx = trace.set_span_in_context(run)
    dispatch = [s for s in steps if s.node == "dispatcher"]
    for step in steps:
        span = tracer.start_span(
            f"node {step.node}",
            context=run_ctx,
            start_time=_ns(step.start),
            attributes={**base, "langgraph.node": step.node, "langgraph.step": step.step},
        )
        count += 1
        if step.node == "dispatcher":
            count += _attempts(tracer, view, step, dispatch, trace.set_span_in_context(span), base)
        span.end(end_time=_ns(step.end))
    if not dispatch:  # no finished dispatcher step (the run is still going): under the run
        count += _attempts(tracer, view, None, dispatch, run_ctx, base)
    run.end(end_time=_ns(end))
    return count


def _attempts(
    tracer: Any,
    view: RunView,
    step: NodeStep | None,
    dispatch: Sequence[NodeStep],
    parent: Any,
    base: dict[str, str],
) -> int:
    """The attempts that ran in this dispatcher step (or, with no step, all of them)."""

    def inside(a: Any) -> bool:
        if step is None:
            return True
        later = [s for s in dispatch if s.start > step.start]
        return a.started_at >= step.start and (not later or a.started_at < later[0].start)

    mine = [a for a in view.attempts if inside(a)]
    for a in mine:
        span = tracer.start_span(
            f"attempt {a.task_id}#{a.attempt}",
            context=parent,
            start_time=_ns(a.started_at),
            attributes={
                **base,
                "orchestrator.task_id": a.task_id,
                "orchestrator.worker": a.worker,
                "orchestrator.attempt": a.attempt,
                "orchestrator.verdict": a.verdict,
                "orchestrator.score": a.score,
                "orchestrator.tokens": a.tokens + a.review_tokens,
                **({"orchestrator.error": a.error} if a.error else {}),
            },
        )
        span.end(end_time=_ns(a.finished_at))
    return len(mine)


async def local_steps(graph: Any, thread_id: str) -> list[NodeStep]:
    """The node steps of a thread in a compiled graph's checkpointer."""
    history = []
    async for state in graph.aget_state_history({"configurable": {"thread_id": thread_id}}):
        created = datetime.fromisoformat(state.created_at).timestamp()
        history.append((state.metadata.get("step", -1), created, list(state.next)))
    return node_steps(history)


async def server_steps(client: Any, thread_id: str, limit: int = 200) -> list[NodeStep]:
    """The node steps of a thread on a LangGraph server (``langgraph_sdk`` client)."""
    history = await client.threads.get_history(thread_id, limit=limit)
    return node_steps(
        [
            (
                (h.get("metadata") or {}).get("step", -1),
                datetime.fromisoformat(h["created_at"].replace("Z", "+00:00")).timestamp(),
                list(h.get("next") or []),
            )
            for h in history
        ]
    )
