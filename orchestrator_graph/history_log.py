"""Worker history that many processes can add to at once without losing updates.

Each dispatch (a ``HistoryWriter``) keeps its own entry per worker in the store: what it added
to that worker's stats since the history was loaded, rewritten as it grows. No two writers
share an entry, so no update overwrites another's; ``add_logged`` sums the entries into the
history when it is loaded. The log grows by one entry per worker per dispatch."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from langgraph.store.base import BaseStore

from orchestrator_graph.ledger import ROOT

if TYPE_CHECKING:
    from orchestrator_graph.registry import History, SkillStats

LOG = (ROOT, "performance_log")
SCAN_LIMIT = 1_000_000  # one query, one consistent read of every entry


def _added(now: SkillStats, before: SkillStats | None) -> dict[str, float]:
    was = before.model_dump() if before is not None else {}
    return {k: v - was.get(k, 0) for k, v in now.model_dump().items() if v != was.get(k, 0)}


class HistoryWriter:
    """Saves what one dispatch added to the history it loaded (``save`` is the dispatcher's
    ``save_history``)."""

    def __init__(self, store: BaseStore, loaded: History) -> None:
        self.store = store
        self.loaded = {w: {s: st.model_copy() for s, st in by.items()} for w, by in loaded.items()}
        self.key = uuid.uuid4().hex

    async def save(self, history: History, names: Iterable[str]) -> None:
        for name in names:
            before = self.loaded.get(name, {})
            added = {s: _added(st, before.get(s)) for s, st in history.get(name, {}).items()}
            added = {s: fields for s, fields in added.items() if fields}
            if added:
                value = {"worker": name, "skills": added}
                await self.store.aput(LOG, f"{self.key}/{name}", value, index=False)


async def add_logged(store: BaseStore, history: History) -> None:
    """Add every writer's entries to ``history`` (the workers it holds)."""
    from orchestrator_graph.registry import SkillStats

    for item in await store.asearch(LOG, limit=SCAN_LIMIT):
        by_skill = history.get(item.value.get("worker", ""))
        if by_skill is None:
            continue
        for skill, fields in item.value.get("skills", {}).items():
            stats = by_skill.setdefault(skill, SkillStats())
            for field, amount in fields.items():
                setattr(stats, field, getattr(stats, field) + amount)
