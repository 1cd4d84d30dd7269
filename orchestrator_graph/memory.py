"""Run memory: what finished runs did, recalled by similarity of their requests.

Kept in the LangGraph store under ``("orchestrator_graph", "memory")``; similarity is token
overlap of the requests (Jaccard)."""

from __future__ import annotations

import re
from typing import Any

from langgraph.store.base import BaseStore
from pydantic import BaseModel

from orchestrator_graph.ledger import ROOT
from orchestrator_graph.models import Plan

NAMESPACE = (ROOT, "memory")
_WORD = re.compile(r"[a-z0-9_]+")


class Memory(BaseModel):
    run_id: str
    request: str
    plan: Plan
    status: str
    makespan: float
    mean_score: float
    qa_rejections: int


class Recalled(BaseModel):
    similarity: float
    memory: Memory


def tokens(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def similarity(a: str, b: str) -> float:
    ta, tb = tokens(a), tokens(b)
    return len(ta & tb) / len(ta | tb) if ta | tb else 0.0


async def remember(store: BaseStore, memory: Memory) -> None:
    await store.aput(NAMESPACE, memory.run_id, memory.model_dump(mode="json"), index=False)


async def recall(
    store: BaseStore, request: str, *, k: int = 3, limit: int = 1000
) -> list[Recalled]:
    items = await store.asearch(NAMESPACE, limit=limit)
    scored = [
        Recalled(
            similarity=round(similarity(request, i.value["request"]), 4),
            memory=Memory.model_validate(i.value),
        )
        for i in items
    ]
    scored = [r for r in scored if r.similarity > 0]
    return sorted(scored, key=lambda r: (-r.similarity, -r.memory.mean_score, r.memory.run_id))[:k]


def reusable(recalled: list[dict[str, Any]], threshold: float) -> Plan | None:
    """The best recalled plan, when it is similar enough and its run succeeded."""
    for entry in recalled:
        r = Recalled.model_validate(entry)
        if r.similarity >= threshold and r.memory.status == "done":
            return r.memory.plan.model_copy(update={"source": "recalled"})
    return None
