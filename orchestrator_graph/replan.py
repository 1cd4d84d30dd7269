"""Re-planning the sub-graph a failed task leaves behind: the failed task and everything that
depends on it are replaced by new tasks from the planner model; what finished stays. Bounded by
the run's re-plan budget, and by a loop guard that refuses a re-plan identical to an earlier one
for the same failure."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from langchain_core.language_models import BaseChatModel

from orchestrator_graph.dag import dependencies, downstream, validate_plan
from orchestrator_graph.llm import ask_structured
from orchestrator_graph.models import Plan, Replan, Task, TaskRecord
from orchestrator_graph.prompts import messages
from orchestrator_graph.schemas import ReplanDraft, to_tasks

_ROUND = re.compile(r"~r\d+$")


def sub_graph(plan: Plan, failed: str) -> list[str]:
    deps = dependencies(plan)
    dependents = {t.id: [c for c, ds in deps.items() if t.id in ds] for t in plan.tasks}
    return [failed, *downstream(dependents, failed)]


def signature(tasks: list[Task], removed: list[str]) -> str:
    """What a re-plan does, ids aside (each round names its tasks anew): the same signature for
    the same failure means the re-plan would only repeat itself."""
    names = {t.id: t.title for t in tasks}
    base = lambda tid: _ROUND.sub("", names.get(tid) or tid)  # noqa: E731
    return json.dumps(
        {
            "removed": sorted(_ROUND.sub("", r) for r in removed),
            "tasks": sorted(
                json.dumps(
                    {
                        "title": t.title,
                        "skills": sorted(t.skills),
                        "inputs": t.inputs,
                        "effort": t.effort,
                        "after": sorted(base(d) for d in t.depends_on),
                    },
                    sort_keys=True,
                    default=str,
                )
                for t in tasks
            ),
        }
    )


async def replan(
    plan: Plan,
    records: Mapping[str, TaskRecord],
    failed: str,
    reason: str,
    model: BaseChatModel,
    skills: Mapping[str, float],
    round_: int,
) -> tuple[Plan, Replan]:
    """The plan with the failed sub-graph replaced, and the record of the re-plan."""
    removed = sub_graph(plan, failed)
    gone = set(removed)
    kept = [t for t in plan.tasks if t.id not in gone]
    done = [t.id for t in kept if records.get(t.id, TaskRecord()).status == "approved"]

    def fits(draft: ReplanDraft) -> None:
        clash = sorted({t.id for t in draft.tasks} & ({t.id for t in kept} | gone))
        if clash:
            raise ValueError(f"new tasks must have new ids; these are taken: {', '.join(clash)}")
        validate_plan(plan.model_copy(update={"tasks": [*kept, *to_tasks(draft.tasks)]}), skills)

    draft = await ask_structured(
        model,
        ReplanDraft,
        messages(
            "replanner",
            goal=plan.goal or "(none given)",
            failed=failed,
            reason=reason,
            remaining=json.dumps(
                [
                    t.model_dump(mode="json", exclude_defaults=True)
                    for t in plan.tasks
                    if t.id in gone
                ],
                default=str,
            ),
            done=", ".join(done) or "none",
            skills=", ".join(sorted(skills)),
            round=round_,
        ),
        check=fits,
    )
    origin = next((t.replaces for t in plan.tasks if t.id == failed and t.replaces), failed)
    added = [t.model_copy(update={"replaces": t.replaces or origin}) for t in to_tasks(draft.tasks)]
    record = Replan(
        failed=failed,
        removed=removed,
        added=[t.id for t in added],
        reason=draft.reason,
        signature=signature(added, removed),
    )
    return plan.model_copy(update={"tasks": [*kept, *added]}), record
