"""The worker subgraph: one attempt of one task on one worker, reviewed and recorded.

execute (approved upstream outputs from the ledger; the worker, timed, with its time-out)
-> review (quality gates; then the ledger item for (run, task, attempt))."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, NotRequired

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from orchestrator_graph.context import Context
from orchestrator_graph.dispatch.board import Launch, WorkerClocks
from orchestrator_graph.env import Env
from orchestrator_graph.errors import BudgetSpent, ProviderError
from orchestrator_graph.events import Event
from orchestrator_graph.langsmith_runs import at, attempt_run, record_verdict
from orchestrator_graph.ledger import Ledger
from orchestrator_graph.llm import calling
from orchestrator_graph.models import Review, Task, TaskResult
from orchestrator_graph.protection.redact import default_redactor
from orchestrator_graph.qa import gate_result
from orchestrator_graph.registry import Registry
from orchestrator_graph.roles import Roles
from orchestrator_graph.sandbox import output_dir
from orchestrator_graph.usage import track_usage
from orchestrator_graph.workers import RunHandle, WorkerContext, WorkerInput

DURABILITY_KEY = "__pregel_durability"  # langgraph._internal._constants.CONFIG_KEY_DURABILITY


class AttemptState(TypedDict):
    run_id: str
    task: dict[str, Any]
    worker: str
    attempt: int
    feedback: str
    upstream_keys: dict[str, str]
    upstream: NotRequired[dict[str, Any]]
    """The approved upstream outputs, for the gates that compare against them (not kept)."""
    result: NotRequired[dict[str, Any]]
    review: NotRequired[dict[str, Any]]


class AttemptOutput(TypedDict):
    result: dict[str, Any]
    review: dict[str, Any]


class AttemptSteps:
    """The two steps of an attempt. ``graph()`` runs them as the ``worker`` subgraph (its own
    namespace in streams and Studio); ``run_inline`` runs the very same steps without it.

    ``clocks`` record, per (run, task, attempt), when the worker itself started and returned:
    the dispatcher measures stalls between the two (``board.WorkerClocks``)."""

    def __init__(self, registry: Registry, roles: Roles) -> None:
        self.registry, self.roles = registry, roles
        self.clocks = WorkerClocks()
        self.traced: dict[tuple[str, str, int], dict[str, str] | None] = {}
        """(run, task, attempt) -> the attempt's LangSmith run, for the QA verdict's feedback"""
        self.subgraph = self.graph()
        self._folder: tuple[tuple[str, str], str] | None = None

    async def output_folder(self, run_id: str, requested: str) -> str:
        """The run's output folder, resolved (on the file system, off the loop) once per run."""
        if self._folder is None or self._folder[0] != (run_id, requested):
            folder = await asyncio.to_thread(output_dir, requested)
            self._folder = ((run_id, requested), str(folder))
        return self._folder[1]

    async def run(self, run_id: str, launch: Launch, env: Env) -> tuple[TaskResult, Review]:
        """One attempt: inline, or (``Context.worker_subgraph``) through the ``worker`` subgraph."""
        await env.audit.flush(env.store, run_id)  # its assignment is chained before it runs
        try:
            return await self._run(run_id, launch, env)
        finally:  # a cancelled attempt (a hedge's loser) never reaches review, which pops it
            self.traced.pop((run_id, launch.task.id, launch.attempt), None)

    async def _run(self, run_id: str, launch: Launch, env: Env) -> tuple[TaskResult, Review]:
        if not env.context.worker_subgraph:
            return await self.run_inline(run_id, launch, env)
        task = launch.task
        attempt_state: AttemptState = {
            "run_id": run_id,
            "task": task.model_dump(mode="json", exclude_defaults=True),
            "worker": launch.worker,
            "attempt": launch.attempt,
            "feedback": launch.feedback,
            "upstream_keys": launch.upstream,
        }
        out = await self.subgraph.ainvoke(
            attempt_state,
            {
                "run_name": f"worker[{task.id}#{launch.attempt}]",
                "metadata": {
                    "task_id": task.id,
                    "attempt": launch.attempt,
                    "worker": launch.worker,
                },
                # The ledger makes the attempt durable: the subgraph has no checkpointer, and
                # inheriting the parent's "sync" durability fails in langgraph 1.2.22
                # (AttributeError: no _put_checkpoint_fut on a checkpointer-less loop). Set
                # through the config (langgraph's own key), not ``durability=``, which warns on
                # every call that it has no effect without a checkpointer.
                "configurable": {DURABILITY_KEY: "exit"},
            },
        )
        return TaskResult.model_validate(out["result"]), Review.model_validate(out["review"])

    async def execute(
        self,
        run_id: str,
        task: Task,
        worker_name: str,
        attempt: int,
        feedback: str,
        upstream_keys: dict[str, str],
        env: Env,
    ) -> tuple[TaskResult, dict[str, Any]]:
        """Gather the approved upstream outputs from the ledger, then run the worker, timed."""
        context = env.context
        ledger = Ledger(env.store, run_id)
        upstream = {dep: await ledger.output(key) for dep, key in upstream_keys.items()}
        worker = self.registry.get(worker_name)
        if worker is None:
            raise LookupError(f"worker {worker_name!r} was removed before its task started")
        payload = WorkerInput(
            run_id=run_id, task=task, attempt=attempt, upstream=upstream, feedback=feedback
        )
        ctx = WorkerContext(
            model=self.roles.model("worker", context),
            output_dir=await self.output_folder(run_id, context.output_dir),
            emit=env.emit,
            run=RunHandle(env.thread_id, env.store, env.checkpointer, context),
        )
        started = time.time()
        self.clocks.began[(run_id, task.id, attempt)] = started
        output, error = None, None
        try:
            with (
                track_usage() as usage,
                calling(self.roles.profile("worker", context)),
                at(run_id=run_id, task=task.id, worker=worker.name, attempt=attempt),
                attempt_run() as traced,
            ):
                self.traced[(run_id, task.id, attempt)] = traced
                call = worker.call(payload, ctx)
                output = await (asyncio.wait_for(call, task.timeout) if task.timeout else call)
        except (ProviderError, BudgetSpent):
            raise  # the provider or the budget, not the worker, failed: the run stops, resumable
        except TimeoutError:
            error = f"timed out after {task.timeout:g}s"
        except Exception as err:  # a worker's failure is a result to review, not a crash of the run
            error = f"{type(err).__name__}: {err}"
            frames = traceback.extract_tb(err.__traceback__)[-1:]
            error += "".join(f" (at {f.filename}:{f.lineno})" for f in frames)
            error = default_redactor().text(error)  # it may echo a key; it is stored and shown
        ended = self.clocks.returned[(run_id, task.id, attempt)] = time.time()
        summary = output.get("summary", "") if isinstance(output, dict) else ""
        result = TaskResult(
            task_id=task.id,
            attempt=attempt,
            worker=worker.name,
            output=output,
            summary=str(summary),
            error=error,
            started_at=started,
            finished_at=ended,
            tokens=usage.total_tokens,
            usage=usage.dump(),
        )
        return result, upstream

    async def review(
        self, run_id: str, task: Task, result: TaskResult, upstream: dict[str, Any], env: Env
    ) -> Review:
        """Quality gates on the result, then the ledger entry for (run, task, attempt)."""
        context = env.context
        where = at(run_id=run_id, task=task.id, worker=result.worker, attempt=result.attempt)
        with track_usage() as usage, calling(self.roles.profile("reviewer", context)), where:
            verdict = await gate_result(
                task, result, context, self.roles.model("reviewer", context), upstream
            )
        await record_verdict(self.traced.pop((run_id, task.id, result.attempt), None), verdict)
        verdict.tokens, verdict.usage = usage.total_tokens, usage.dump()
        env.emit(
            Event(
                kind="qa_verdict",
                node="review",
                role="reviewer",
                task_id=task.id,
                worker=result.worker,
                attempt=result.attempt,
                message=f"{verdict.verdict} ({verdict.score:.2f})",
                data={"score": verdict.score, "feedback": verdict.feedback},
            )
        )
        # Recorded before the dispatcher sees it: from here on this attempt never runs again.
        await Ledger(env.store, run_id).record(result, verdict)
        return verdict

    async def run_inline(self, run_id: str, launch: Launch, env: Env) -> tuple[TaskResult, Review]:
        """The same two steps, called directly: no subgraph, no state (de)serialisation."""
        task = launch.task
        result, upstream = await self.execute(
            run_id, task, launch.worker, launch.attempt, launch.feedback, launch.upstream, env
        )
        return result, await self.review(run_id, task, result, upstream, env)

    def drawing(self) -> CompiledStateGraph[AttemptState, Context, AttemptState, AttemptOutput]:
        """The same graph compiled to inherit a checkpointer, never run: langgraph's drawing
        (``get_graph(xray=True)``) and ``get_subgraphs`` skip checkpointer-less subgraphs."""
        return self.graph(checkpointer=None)

    def graph(
        self, checkpointer: bool | None = False
    ) -> CompiledStateGraph[AttemptState, Context, AttemptState, AttemptOutput]:
        async def execute(state: AttemptState, runtime: Runtime[Context]) -> dict[str, Any]:
            result, upstream = await self.execute(
                state["run_id"],
                Task.model_validate(state["task"]),
                state["worker"],
                state["attempt"],
                state["feedback"],
                state["upstream_keys"],
                Env.of(runtime),
            )
            return {"result": result.model_dump(mode="json"), "upstream": upstream}

        async def review(state: AttemptState, runtime: Runtime[Context]) -> dict[str, Any]:
            verdict = await self.review(
                state["run_id"],
                Task.model_validate(state["task"]),
                TaskResult.model_validate(state["result"]),
                state.get("upstream", {}),
                Env.of(runtime),
            )
            return {"review": verdict.model_dump(mode="json")}

        builder = StateGraph(AttemptState, context_schema=Context, output_schema=AttemptOutput)
        builder.add_node("execute", execute)
        builder.add_node("review", review)
        builder.add_edge(START, "execute")
        builder.add_edge("execute", "review")
        builder.add_edge("review", END)
        # No checkpointer of its own: the ledger makes each attempt durable, and many attempts run
        # concurrently inside the dispatcher's one superstep.
        return builder.compile(checkpointer=checkpointer, name="worker")


def drawn_with(
    node: Callable[..., Awaitable[Any]], drawing: CompiledStateGraph[Any, Any, Any, Any]
) -> Callable[..., Any]:
    """``node`` (the dispatcher) naming the attempt graph it runs, so that langgraph, which
    looks for a node's subgraphs among the names its function reads, draws it with xray and
    lists it in ``get_subgraphs``; ``drawing`` itself never runs."""

    async def dispatcher(state: Any, runtime: Runtime[Context]) -> Any:
        _ = drawing
        return await node(state, runtime)

    return dispatcher
