"""The durable ledger: one store item per finished (run, task, attempt).

It is written the moment an attempt finishes, inside the dispatcher's superstep, so a process that
dies mid-superstep loses only attempts still in flight; a resumed dispatcher replays the ledger and
runs nothing that already finished. Outputs live here, by key, never in the checkpointed state."""

from __future__ import annotations

import math
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore, GetOp, Item

from orchestrator_graph.models import Review, Schedule, StatusSnapshot, TaskResult
from orchestrator_graph.usage import Tally, merge_usage, usage_update

ROOT = "orchestrator_graph"
# The store's layout: every namespace the package reads or writes.
STATUS = (ROOT, "status")  # run id -> its latest StatusSnapshot
SCHEDULES = (ROOT, "schedules")  # run id -> its planned Schedule (O(tasks): kept out of the state)
HISTORY = (ROOT, "performance")  # worker name -> skill -> SkillStats (compacted: history_log)
HISTORY_LOG = (ROOT, "performance_log")  # writer/seq/worker -> {"worker", "skills": additions}
HISTORY_GENERATION = (ROOT, "performance_generation")  # "generation": compactions committed
SPENT = (ROOT, "spent")  # + run id: usage of nodes that failed after calling models
THREAD_OWNERS = (ROOT, "cli_owners")  # thread id -> the process driving it now
THREAD_SETTINGS = (ROOT, "cli_threads")  # thread id -> the CLI settings it was started with
DOCTOR = (ROOT, "doctor")  # the deployment check's write probe
AUDIT = (ROOT, "audit")  # + run id: the keyed, hash-chained audit log (auditlog)
COMPLIANCE = (ROOT, "compliance")  # + run id: value fingerprint or check -> what was found/checked


def attempts_namespace(run_id: str) -> tuple[str, ...]:
    """One item per finished (task, attempt) of the run: the ledger."""
    return (ROOT, "runs", run_id, "attempts")


PAGE = 10_000  # attempts per store search: offset paging costs O(offset) per page
INT64 = 2**63 - 1
BIG_INT, FLOAT = "$int", "$float"  # the tagged forms of values a JSON store cannot keep

NO_STORE = (
    "the orchestrator graph runs without a store: task-level durability is OFF. Finished "
    "attempts, schedules and history live in this process only; a resumed run redoes them. "
    "Compile it with a store: graph.compile(checkpointer=..., store=...)."
)
_process_store: list[BaseStore] = []


def store_of(runtime: Runtime[Any]) -> BaseStore:
    """The graph's store, behind the data policy (``protection.persist``: every put redacted)
    and scoped to the signed-in tenant on the server (``tenancy``). A graph compiled without one
    warns once, loudly, and keeps its ledger in one store of this process (created then, never
    at import)."""
    from orchestrator_graph.protection.persist import protect_store  # it imports this module

    return protect_store(_store(runtime))


def innermost(store: BaseStore) -> BaseStore:
    """The store under the wrappers ``store_of`` adds (the data policy's, the tenant's)."""
    while (inner := getattr(store, "inner", None)) is not None:
        store = inner
    return store


def _store(runtime: Runtime[Any]) -> BaseStore:
    from orchestrator_graph.tenancy import for_run

    if runtime.store is not None:
        return for_run(runtime.store, runtime)
    if not _process_store:
        from langgraph.store.memory import InMemoryStore

        warnings.warn(NO_STORE, RuntimeWarning, stacklevel=3)
        _process_store.append(InMemoryStore())
    return for_run(_process_store[0], runtime)


def to_store(value: Any) -> Any:
    """``value`` with what the stores cannot keep exactly in a tagged, lossless form: integers
    beyond 64 bits (SQLite's JSON fails on them) as ``{"$int": "digits"}``, infinities and NaN
    (stored as null otherwise) as ``{"$float": "inf"}``. ``from_store`` undoes it."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -INT64 - 1 <= value <= INT64 else {BIG_INT: str(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {FLOAT: repr(value)}
    if isinstance(value, dict):
        return {str(k): to_store(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_store(v) for v in value]
    return value


def from_store(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and BIG_INT in value and isinstance(value[BIG_INT], str):
            return int(value[BIG_INT])
        if len(value) == 1 and FLOAT in value and isinstance(value[FLOAT], str):
            return float(value[FLOAT])
        return {k: from_store(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_store(v) for v in value]
    return value


def attempt_key(task_id: str, attempt: int) -> str:
    return f"{task_id}#{attempt}"


class Ledger:
    def __init__(self, store: BaseStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.namespace = attempts_namespace(run_id)

    async def record(self, result: TaskResult, review: Review) -> str:
        key = attempt_key(result.task_id, result.attempt)
        done, verdict = result.model_dump(mode="json"), review.model_dump(mode="json")
        await self.store.aput(
            self.namespace,
            key,
            # The output as the worker returned it (not JSON mode, which turns inf into null).
            {"result": {**done, "output": to_store(result.output)}, "review": verdict},
            index=False,
        )
        from orchestrator_graph.auditlog import record_attempt

        await record_attempt(self.store, self.run_id, done, verdict)
        return key

    async def attempts(self, *, outputs: bool = True) -> list[tuple[TaskResult, Review]]:
        """Every finished attempt, ordered by task and attempt number; ``outputs=False``: each
        without its output, which accounting and reports do not read."""
        out: list[tuple[TaskResult, Review]] = []
        offset = 0
        while True:
            page = await self.store.asearch(self.namespace, limit=PAGE, offset=offset)
            out.extend(
                (
                    TaskResult.model_validate(
                        from_store(i.value["result"])
                        if outputs
                        else {k: v for k, v in i.value["result"].items() if k != "output"}
                    ),
                    Review.model_validate(i.value["review"]),
                )
                for i in page
            )
            if len(page) < PAGE:
                break
            offset += PAGE
        return sorted(out, key=lambda pair: (pair[0].task_id, pair[0].attempt))

    async def outputs(self, keys: list[str]) -> dict[str, Any]:
        """Several outputs in one store batch."""
        items = await self.store.abatch([GetOp(self.namespace, key) for key in keys])
        missing = [k for k, item in zip(keys, items, strict=True) if item is None]
        if missing:
            raise KeyError(f"ledger has no attempts {missing} in {'/'.join(self.namespace)}")
        return {
            k: from_store(item.value["result"]["output"])
            for k, item in zip(keys, items, strict=True)
            if isinstance(item, Item)  # a GetOp answers an Item (None: refused above)
        }

    async def output(self, key: str) -> Any:
        item = await self.store.aget(self.namespace, key)
        if item is None:
            raise KeyError(f"ledger has no attempt {key!r} in {'/'.join(self.namespace)}")
        return from_store(item.value["result"]["output"])


async def publish_status(store: BaseStore, snapshot: StatusSnapshot) -> None:
    """The live snapshot, where the CLI and SDK clients (``client.store.get_item``) read it
    while the dispatcher's step is still running."""
    await store.aput(STATUS, snapshot.run_id, snapshot.model_dump(mode="json"))


async def read_status(store: BaseStore, run_id: str) -> StatusSnapshot | None:
    item = await store.aget(STATUS, run_id)
    return StatusSnapshot.model_validate(item.value) if item else None


async def save_schedule(store: BaseStore, run_id: str, schedule: Schedule) -> None:
    await store.aput(
        SCHEDULES, run_id, schedule.model_dump(mode="json", exclude_none=True), index=False
    )


async def load_schedule(store: BaseStore, run_id: str) -> Schedule | None:
    item = await store.aget(SCHEDULES, run_id)
    return Schedule.model_validate(item.value) if item else None


async def save_spent(store: BaseStore, run_id: str, by_role: Mapping[str, Sequence[Tally]]) -> None:
    """A node that fails (provider, unusable answers, budget) writes no state: its calls, billed
    all the same, are kept here so the run's accounting still has them."""
    usage = usage_update(by_role)["usage"]
    if run_id and any(usage.values()):
        key = f"{time.time():.6f}-{uuid.uuid4().hex[:6]}"
        await store.aput((*SPENT, run_id), key, usage, index=False)


async def load_spent(store: BaseStore, run_id: str) -> dict[str, dict[str, Any]]:
    spent: dict[str, dict[str, Any]] = {}
    for item in await store.asearch((*SPENT, run_id), limit=10_000):
        spent = merge_usage(spent, item.value)
    return spent


@asynccontextmanager
async def spent_kept(
    store: BaseStore, run_id: str, by_role: Mapping[str, Sequence[Tally]]
) -> AsyncIterator[None]:
    """Around a node's model calls: if the node fails (or pauses), what they counted so far is
    kept (``save_spent``), since the provider billed it."""
    try:
        yield
    except BaseException:
        await save_spent(store, run_id, by_role)
        raise
