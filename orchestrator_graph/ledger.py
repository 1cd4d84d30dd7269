"""The durable ledger: one store item per finished (run, task, attempt).

It is written the moment an attempt finishes, inside the dispatcher's superstep, so a process that
dies mid-superstep loses only attempts still in flight; a resumed dispatcher replays the ledger and
runs nothing that already finished. Outputs live here, by key, never in the checkpointed state."""

from __future__ import annotations

from typing import Any

from langgraph.store.base import BaseStore, GetOp

from orchestrator_graph.models import Review, TaskResult

ROOT = "orchestrator_graph"
PAGE = 10_000  # attempts per store search: offset paging costs O(offset) per page


def attempt_key(task_id: str, attempt: int) -> str:
    return f"{task_id}#{attempt}"


class Ledger:
    def __init__(self, store: BaseStore, run_id: str) -> None:
        self.store = store
        self.namespace = (ROOT, "runs", run_id, "attempts")

    async def record(self, result: TaskResult, review: Review) -> str:
        key = attempt_key(result.task_id, result.attempt)
        await self.store.aput(
            self.namespace,
            key,
            {"result": result.model_dump(mode="json"), "review": review.model_dump(mode="json")},
            index=False,
        )
        return key

    async def attempts(self) -> list[tuple[TaskResult, Review]]:
        """Every finished attempt, ordered by task and attempt number."""
        out: list[tuple[TaskResult, Review]] = []
        offset = 0
        while True:
            page = await self.store.asearch(self.namespace, limit=PAGE, offset=offset)
            out.extend(
                (
                    TaskResult.model_validate(i.value["result"]),
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
        return {k: item.value["result"]["output"] for k, item in zip(keys, items, strict=True)}

    async def output(self, key: str) -> Any:
        item = await self.store.aget(self.namespace, key)
        if item is None:
            raise KeyError(f"ledger has no attempt {key!r} in {'/'.join(self.namespace)}")
        return item.value["result"]["output"]
