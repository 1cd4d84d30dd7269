"""The collector and long runs: objects alive when a node starts are frozen while nodes run, and
handed back when none runs; a freeze made by someone else is left alone."""

import asyncio
import gc

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import Plan, Task, Worker, create_orchestrator


def _run_recording_freezes(seen: list[int]) -> dict:
    def work(payload) -> dict:
        seen.append(gc.get_freeze_count())
        return {"value": 1}

    plan = Plan(tasks=[Task(id=f"t{i}", title="t", skills=["s"]) for i in range(3)])
    graph = create_orchestrator(workers=[Worker(name="w", skills=["s"], run=work)]).compile(
        checkpointer=InMemorySaver(), store=InMemoryStore()
    )
    return asyncio.run(
        graph.ainvoke(
            {"request": "r", "plan": plan.model_dump()},
            {"configurable": {"thread_id": "t"}},
            context={"use_memory": False},
        )
    )


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_objects_are_frozen_while_nodes_run_and_handed_back_after(unfrozen):
    seen: list[int] = []
    out = _run_recording_freezes(seen)
    assert out["report"]["status"] == "done"
    assert len(seen) == 3 and all(count > 0 for count in seen)  # the dispatcher's objects
    assert gc.get_freeze_count() == 0  # nothing kept from the collector after the run


def test_a_freeze_made_by_the_process_itself_is_left_alone(unfrozen):
    gc.freeze()  # as a pre-fork server does
    mine = gc.get_freeze_count()
    _run_recording_freezes([])
    assert gc.get_freeze_count() > 0.9 * mine  # not unfrozen by the run (a few were freed)


def test_the_environment_switch_turns_it_off(unfrozen, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_GC_FREEZE", "0")
    seen: list[int] = []
    _run_recording_freezes(seen)
    assert seen == [0, 0, 0]


def test_a_finished_run_leaves_nothing_of_itself_behind():
    """A long-lived process must not keep each run's graph and store: found when the audit
    head's background writer held the run's context (and so its store) after the run."""
    import weakref

    stores = []
    for _ in range(3):
        plan = Plan(tasks=[Task(id=f"t{i}", title="t", skills=["s"]) for i in range(3)])
        store = InMemoryStore()
        graph = create_orchestrator(
            workers=[Worker(name="w", skills=["s"], run=lambda p: {"value": 1})]
        ).compile(checkpointer=InMemorySaver(), store=store)
        asyncio.run(
            graph.ainvoke(
                {"request": "r", "plan": plan.model_dump()},
                {"configurable": {"thread_id": "t"}},
                context={"use_memory": False},
            )
        )
        stores.append(weakref.ref(store))
        del graph, store
    gc.collect()
    assert [ref() for ref in stores] == [None, None, None]
