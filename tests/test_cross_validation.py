"""Redundant execution, conflicts between answers, and how they are settled."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import OfflineChatModel, Plan, Task, Worker, create_orchestrator


def answering(value: Any):
    def work(payload):
        seen = {k: v.get("value") for k, v in payload.upstream.items()}
        return {"value": value, "seen": seen, "summary": f"says {value}"}

    return work


def team(*members: tuple[str, float, Any]) -> list[Worker]:
    return [Worker(name=n, skills={"q": level}, run=answering(v)) for n, level, v in members]


PLAN = Plan(
    tasks=[
        Task(
            id="ask",
            title="ask",
            skills=["q"],
            redundancy=3,
            consensus_field="value",
            acceptance=[{"kind": "has_keys", "keys": ["value"]}],
        ),
        Task(id="use", title="use", skills=["q"], depends_on=["ask"]),
    ]
)


async def run(workers, plan=PLAN, model=None, **context) -> tuple[dict, list[dict]]:
    graph = create_orchestrator(workers=workers, **({"model": model} if model else {})).compile(
        checkpointer=InMemorySaver(), store=(store := InMemoryStore())
    )
    events = []
    config = {"configurable": {"thread_id": "x"}}
    async for _ns, ev in graph.astream(
        {"request": "r", "plan": plan.model_dump()},
        config,
        stream_mode="custom",
        subgraphs=True,
        context={"use_memory": False, **context},
    ):
        events.append(ev)
    values = (await graph.aget_state(config)).values
    report = values["report"]
    report["_store"], report["_plan"] = store, values["plan"]
    return report, events


EXPERT_VS_NOVICES = (("expert", 0.95, 42), ("novice-a", 0.55, 7), ("novice-b", 0.55, 7))


@pytest.mark.parametrize(
    ("resolution", "winner", "value"),
    [("weighted", "expert", 42), ("majority", "novice-a", 7), ("arbitration", "expert", 42)],
)
async def test_disagreeing_replicas_are_settled_by_the_configured_mechanism(
    resolution, winner, value
):
    report, events = await run(team(*EXPERT_VS_NOVICES), resolution=resolution)
    (conflict,) = report["conflicts"]
    assert conflict["kind"] == "redundant_disagree" and conflict["mechanism"] == resolution
    assert sorted(conflict["parties"]) == ["expert", "novice-a", "novice-b"]
    assert conflict["winner"] == winner and conflict["resolution"]
    assert set(conflict["weights"]) == {"expert", "novice-a", "novice-b"}
    ask = report["tasks"]["ask"]
    assert ask["status"] == "approved" and ask["worker"] == winner
    # only the winning answer reaches the dependent task
    store = report["_store"]
    used = await store.aget(
        ("orchestrator_graph", "runs", report["run_id"], "attempts"),
        report["tasks"]["use"]["result_key"],
    )
    assert used.value["result"]["output"]["seen"] == {"ask": value}
    assert any(e["kind"] == "conflict" for e in events)
    started = [e["worker"] for e in events if e["kind"] == "task_started" and e["task_id"] == "ask"]
    assert sorted(started) == ["expert", "novice-a", "novice-b"]  # three different workers


async def test_agreeing_replicas_make_no_conflict():
    report, _ = await run(team(("a", 0.9, 5), ("b", 0.9, 5), ("c", 0.9, 5)))
    assert report["conflicts"] == [] and report["status"] == "done"
    assert report["tasks"]["ask"]["attempts"] == 3


async def test_a_tied_vote_is_escalated_not_guessed():
    report, _ = await run(
        team(("a", 0.8, 1), ("b", 0.8, 2)),
        plan=PLAN.model_copy(
            update={"tasks": [PLAN.tasks[0].model_copy(update={"redundancy": 2}), PLAN.tasks[1]]}
        ),
        resolution="majority",
    )
    assert report["conflicts"][0]["winner"] is None
    assert report["tasks"]["ask"]["status"] == "failed"  # policy: a tie is not guessed
    assert report["tasks"]["use"]["status"] == "skipped"


async def test_critical_tasks_are_cross_validated_on_request():
    plan = Plan(
        tasks=[
            Task(id="long", title="l", skills=["q"], effort=5),
            Task(id="short", title="s", skills=["q"], effort=1),
        ]
    )
    report, _ = await run(team(("a", 0.9, 1), ("b", 0.9, 1)), plan=plan, cross_validate="critical")
    assert report["tasks"]["long"]["attempts"] == 2  # on the critical path: run twice
    assert report["tasks"]["short"]["attempts"] == 1


class Rejecting(OfflineChatModel):
    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        name = kwargs["tools"][0]["function"]["name"]
        args = (
            {"score": 0.9, "verdict": "reject", "reasons": ["units are wrong"]}
            if name == "RubricReview"
            else self.responders[name]("", {})
        )
        call = {"name": name, "args": args, "id": "c"}
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(content="", tool_calls=[call]))]
        )


async def test_worker_vs_reviewer_is_a_recorded_conflict():
    plan = Plan(
        tasks=[
            Task(
                id="t",
                title="t",
                skills=["q"],
                acceptance=[{"kind": "has_keys", "keys": ["value"]}],
            )
        ]
    )
    report, _ = await run(
        team(("a", 0.9, 1)), plan=plan, model=Rejecting(), review_mode="always", max_attempts=2
    )
    kinds = [c["kind"] for c in report["conflicts"]]
    assert kinds == ["worker_vs_reviewer", "worker_vs_reviewer"]
    assert report["conflicts"][0]["resolution"] == "retried with the reviewer's feedback"
    assert report["conflicts"][1]["resolution"] == "escalated"
    assert report["tasks"]["t"]["status"] == "failed"


def claiming(rows: int):
    def work(payload):
        return {"value": rows, "facts": {"rows": rows, "source": "sales"}, "summary": "counted"}

    return work


async def test_contradicting_facts_are_settled_before_synthesis():
    workers = [
        Worker(name="expert", skills={"a": 0.95}, run=claiming(160)),
        Worker(name="novice-1", skills={"b": 0.55}, run=claiming(163)),
        Worker(name="novice-2", skills={"c": 0.55}, run=claiming(163)),
    ]
    plan = Plan(
        tasks=[
            Task(id=t, title=t, skills=[s])
            for t, s in (("count", "a"), ("recount", "b"), ("tally", "c"))
        ]
    )
    weighted, events = await run(workers, plan=plan)
    (conflict,) = weighted["conflicts"]
    assert conflict["kind"] == "contradicting_facts" and "fact 'rows'" in conflict["detail"]
    assert weighted["deliverable"]["facts"] == {"rows": 160, "source": "sales"}
    majority, _ = await run(workers, plan=plan, resolution="majority")
    assert majority["deliverable"]["facts"]["rows"] == 163
    assert any(e["kind"] == "conflict" and e["node"] == "synthesizer" for e in events)


async def test_a_disputed_fact_is_named_not_guessed():
    workers = [
        Worker(name="a", skills={"a": 0.8}, run=claiming(1)),
        Worker(name="b", skills={"b": 0.8}, run=claiming(2)),
    ]
    plan = Plan(
        tasks=[Task(id="x", title="x", skills=["a"]), Task(id="y", title="y", skills=["b"])]
    )
    report, _ = await run(workers, plan=plan, resolution="majority")
    assert report["deliverable"]["disputed"] == ["rows"]
    assert "rows" not in report["deliverable"]["facts"]
    gate = {c["name"]: c["passed"] for c in report["final_review"]["checks"]}
    assert gate["no_disputed_facts"] is False


async def test_two_tasks_wanting_one_scarce_worker():
    plan = Plan(
        tasks=[
            Task(id="urgent", title="u", skills=["q"], priority=5),
            Task(id="later", title="l", skills=["q"], priority=1),
        ]
    )
    report, _ = await run(team(("only", 0.9, 1)), plan=plan)
    (conflict,) = report["conflicts"]
    assert conflict["kind"] == "scarce_worker" and conflict["task_id"] == "later"
    assert conflict["winner"] == "urgent" and "need only at the same time" in conflict["detail"]
    assert report["status"] == "done"


async def test_stakeholders_priority_dispute_is_settled_by_weighted_vote():
    plan = Plan(
        stakeholders={"cfo": 3.0, "ops": 1.0, "sales": 1.0},
        tasks=[
            Task(
                id="audit", title="a", skills=["q"], priority_votes={"cfo": 5, "ops": 2, "sales": 2}
            ),
            Task(id="agreed", title="b", skills=["q"], priority_votes={"cfo": 4, "ops": 4}),
        ],
    )
    report, _ = await run(team(("w", 0.9, 1)), plan=plan)
    (dispute,) = [c for c in report["conflicts"] if c["kind"] == "priority_dispute"]
    assert dispute["task_id"] == "audit" and dispute["winner"] == "5"
    assert dispute["votes"] == {"5": 3.0, "2": 2.0}
    state_plan = {t["id"]: t["priority"] for t in report["_plan"]["tasks"]}
    assert state_plan == {"audit": 5, "agreed": 4}


async def test_a_judge_model_picks_among_disagreeing_answers():
    report, _ = await run(
        team(*EXPERT_VS_NOVICES), resolution_by_conflict={"redundant_disagree": "judge"}
    )
    (conflict,) = report["conflicts"]
    assert conflict["mechanism"] == "judge" and "handed to the mediator" in conflict["resolution"]
    (decision,) = report["decisions"]
    assert decision["by"] == "judge" and "most qualified" in decision["reason"]
    assert report["tasks"]["ask"]["status"] == "approved"
    assert report["tasks"]["ask"]["result_key"] == f"ask#{decision['attempt']}"
    used = await report["_store"].aget(
        ("orchestrator_graph", "runs", report["run_id"], "attempts"),
        report["tasks"]["use"]["result_key"],
    )
    assert used.value["result"]["output"]["seen"] == {"ask": 42}


async def test_a_mediator_models_merged_answer_must_pass_qa():
    report, _ = await run(
        team(*EXPERT_VS_NOVICES), resolution_by_conflict={"redundant_disagree": "mediate"}
    )
    (decision,) = report["decisions"]
    assert decision["by"] == "mediator" and decision["attempt"] == 4  # a new attempt
    merged = await report["_store"].aget(
        ("orchestrator_graph", "runs", report["run_id"], "attempts"), "ask#4"
    )
    assert merged.value["result"]["worker"] == "mediator"
    assert merged.value["review"]["verdict"] == "approve"  # gated like any result
    assert report["tasks"]["ask"]["result_key"] == "ask#4" and report["status"] == "done"


async def test_a_human_picks_one_of_the_disagreeing_answers():
    from langgraph.types import Command

    graph = create_orchestrator(workers=team(*EXPERT_VS_NOVICES)).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    config = {"configurable": {"thread_id": "h"}}
    context = {"use_memory": False, "resolution_by_conflict": {"redundant_disagree": "human"}}
    await graph.ainvoke({"request": "r", "plan": PLAN.model_dump()}, config, context=context)
    (question,) = [i.value for t in (await graph.aget_state(config)).tasks for i in t.interrupts]
    novice = next(c for c in question["candidates"] if c["worker"] == "novice-a")
    await graph.ainvoke(
        Command(resume={"action": "accept", "attempt": 99}), config, context=context
    )
    (again,) = [i.value for t in (await graph.aget_state(config)).tasks for i in t.interrupts]
    assert "attempt 99 is not one of the candidates" in again["error"]
    await graph.ainvoke(
        Command(resume={"action": "accept", "attempt": novice["attempt"]}), config, context=context
    )
    report = (await graph.aget_state(config)).values["report"]
    assert report["tasks"]["ask"]["result_key"] == f"ask#{novice['attempt']}"
    assert report["decisions"][0]["by"] == "human"


def test_mechanisms_per_conflict_kind_are_checked():
    from orchestrator_graph import Context

    with pytest.raises(
        ValueError, match=r"\['contradicting_facts'\]: 'judge' is not allowed; one of"
    ):
        Context(resolution_by_conflict={"contradicting_facts": "judge"})
    with pytest.raises(
        ValueError, match="resolution_by_conflict: 'gossip' is not allowed; conflict"
    ):
        Context(resolution_by_conflict={"gossip": "weighted"})
    assert (
        Context(resolution_by_conflict={"redundant_disagree": "borda"}).mechanism(
            "redundant_disagree"
        )
        == "borda"
    )


async def test_a_merged_answers_review_is_counted_for_the_reviewer_not_the_mediator():
    """The merge is the mediator's call; the QA review of the merged answer is the reviewer's."""
    report, _ = await run(
        team(*EXPERT_VS_NOVICES),
        resolution_by_conflict={"redundant_disagree": "mediate"},
        review_mode="always",
    )
    usage = report["usage"]
    (mediator,) = usage["mediator"].values()
    assert mediator["calls"] == 1  # the merge only
    (reviewer,) = usage["reviewer"].values()
    attempts = sum(r["attempts"] for r in report["tasks"].values())
    assert reviewer["calls"] == attempts + 1  # every attempt's rubric, and the merged answer's
