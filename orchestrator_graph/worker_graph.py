"""The worker subgraph: one attempt of one task on one worker, reviewed and recorded.

prepare (approved upstream outputs from the ledger) -> execute (the worker, timed, time-out)
-> review (quality gates) -> record (the ledger item for (run, task, attempt))."""

from __future__ import annotations

import asyncio
import time
import traceback
import warnings
from collections.abc import Mapping
from typing import Any, NotRequired

from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel
from langgraph.runtime import Runtime
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

from orchestrator_graph.context import Context
from orchestrator_graph.events import Event, stream_emitter
from orchestrator_graph.ledger import Ledger
from orchestrator_graph.models import Review, Task, TaskResult
from orchestrator_graph.qa import review_result
from orchestrator_graph.roles import Roles
from orchestrator_graph.workers import Worker, WorkerContext, WorkerInput

DEFAULT_OUTPUT_DIR = "orchestrator-output"

# The dispatcher calls this checkpointer-less subgraph with durability="exit" (see graph.py);
# langgraph warns that durability then has no effect, which is the point.
warnings.filterwarnings("ignore", message="`durability` has no effect", category=UserWarning)


class AttemptState(TypedDict):
    run_id: str
    task: dict[str, Any]
    worker: str
    attempt: int
    feedback: str
    upstream_keys: dict[str, str]
    upstream: NotRequired[dict[str, Any]]
    result: NotRequired[dict[str, Any]]
    review: NotRequired[dict[str, Any]]


class AttemptOutput(TypedDict):
    result: dict[str, Any]
    review: dict[str, Any]


_fallback_store = InMemoryStore()


def store_of(runtime: Runtime[Any]) -> Any:
    """The graph's store; without one (compiled with no store) an in-process store, so the graph
    still runs, but finished attempts then survive only as long as the process."""
    return runtime.store if runtime.store is not None else _fallback_store


def create_worker_graph(roster: Mapping[str, Worker], roles: Roles) -> Pregel:
    async def prepare(state: AttemptState, runtime: Runtime[Context]) -> dict[str, Any]:
        ledger = Ledger(store_of(runtime), state["run_id"])
        upstream = {dep: await ledger.output(key) for dep, key in state["upstream_keys"].items()}
        return {"upstream": upstream}

    async def execute(state: AttemptState, runtime: Runtime[Context]) -> dict[str, Any]:
        context = Context.coerce(runtime.context)
        task = Task.model_validate(state["task"])
        worker = roster[state["worker"]]
        payload = WorkerInput(
            run_id=state["run_id"],
            task=task,
            attempt=state["attempt"],
            upstream=state.get("upstream", {}),
            feedback=state["feedback"],
        )
        ctx = WorkerContext(
            model=roles.model("worker", context),
            output_dir=context.output_dir or DEFAULT_OUTPUT_DIR,
            emit=stream_emitter(runtime.stream_writer),
        )
        started = time.time()
        output, error = None, None
        try:
            output = await asyncio.wait_for(worker.call(payload, ctx), timeout=task.timeout)
        except TimeoutError:
            error = f"timed out after {task.timeout:g}s"
        except Exception as err:  # a worker's failure is a result to review, not a crash of the run
            error = f"{type(err).__name__}: {err}"
            frames = traceback.extract_tb(err.__traceback__)[-1:]
            error += "".join(f" (at {f.filename}:{f.lineno})" for f in frames)
        summary = output.get("summary", "") if isinstance(output, dict) else ""
        result = TaskResult(
            task_id=task.id,
            attempt=state["attempt"],
            worker=worker.name,
            output=output,
            summary=str(summary),
            error=error,
            started_at=started,
            finished_at=time.time(),
        )
        return {"result": result.model_dump(mode="json")}

    async def review(state: AttemptState, runtime: Runtime[Context]) -> dict[str, Any]:
        context = Context.coerce(runtime.context)
        task = Task.model_validate(state["task"])
        result = TaskResult.model_validate(state["result"])
        verdict = await review_result(
            task,
            result,
            policy=context.qa_policy,
            mode=context.review_mode,
            reviewer=roles.model("reviewer", context),
        )
        stream_emitter(runtime.stream_writer)(
            Event(
                kind="qa_verdict",
                node="qa_reviewer",
                task_id=task.id,
                worker=result.worker,
                attempt=result.attempt,
                message=f"{verdict.verdict} ({verdict.score:.2f})",
                data={"score": verdict.score, "feedback": verdict.feedback},
            )
        )
        return {"review": verdict.model_dump(mode="json")}

    async def record(state: AttemptState, runtime: Runtime[Context]) -> dict[str, Any]:
        ledger = Ledger(store_of(runtime), state["run_id"])
        await ledger.record(
            TaskResult.model_validate(state["result"]), Review.model_validate(state["review"])
        )
        return {}

    builder = StateGraph(AttemptState, context_schema=Context, output_schema=AttemptOutput)
    builder.add_node("prepare", prepare)
    builder.add_node("execute", execute)
    builder.add_node("review", review)
    builder.add_node("record", record)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "execute")
    builder.add_edge("execute", "review")
    builder.add_edge("review", "record")
    builder.add_edge("record", END)
    # No checkpointer of its own: the ledger makes each attempt durable, and many attempts run
    # concurrently inside the dispatcher's one superstep.
    return builder.compile(checkpointer=False, name="worker")
