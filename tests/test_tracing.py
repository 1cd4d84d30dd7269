"""OpenTelemetry spans of a run: one for the run, one per node step, one per attempt under the
dispatcher step it ran in, with the run, thread, task, worker and attempt attributes."""

from __future__ import annotations

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator_graph import create_orchestrator
from orchestrator_graph.observe import LocalSource
from orchestrator_graph.simulation import random_plan, simulated_workers
from orchestrator_graph.tracing import export_run, local_steps, node_steps


def test_node_steps_last_until_the_next_checkpoint():
    steps = node_steps(
        [(1, 2.0, ["b", "c"]), (-1, 0.0, ["__start__"]), (0, 1.0, ["a"]), (2, 5.0, [])]
    )
    assert [(s.node, s.start, s.end) for s in steps] == [
        ("a", 1.0, 2.0),
        ("b", 2.0, 5.0),
        ("c", 2.0, 5.0),
    ]


async def test_a_run_as_spans():
    saver, store = InMemorySaver(), InMemoryStore()
    graph = create_orchestrator(workers=simulated_workers()).compile(
        checkpointer=saver, store=store
    )
    plan = random_plan(6, seed=2, mean_effort=0.03, skills=("sim",))
    out = await graph.ainvoke(
        {"request": "traced", "plan": plan.model_dump()},
        {"configurable": {"thread_id": "traced"}},
        context={"use_memory": False},
    )
    report = out["report"]
    (view,) = await LocalSource(saver, store).runs()
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    steps = await local_steps(graph, "traced")
    count = export_run(view, steps, provider)
    spans = exporter.get_finished_spans()
    assert count == len(spans) == 1 + len(steps) + len(report["actual"])
    by_name = {s.name: s for s in spans}
    run = by_name["orchestrator.run"]
    assert run.parent is None and run.attributes["orchestrator.run_id"] == report["run_id"]
    nodes = [s for s in spans if s.name.startswith("node ")]
    assert [s.name for s in sorted(nodes, key=lambda s: s.start_time)] == [
        "node recall",
        "node planner",
        "node dispatcher",
        "node synthesizer",
        "node final_review",
        "node learn",
    ]
    assert all(s.parent.span_id == run.context.span_id for s in nodes)
    dispatcher = by_name["node dispatcher"]
    attempts = [s for s in spans if s.name.startswith("attempt ")]
    assert sorted(
        (s.attributes["orchestrator.task_id"], s.attributes["orchestrator.attempt"])
        for s in attempts
    ) == sorted((a["task_id"], a["attempt"]) for a in report["actual"])
    for span in attempts:
        assert span.parent.span_id == dispatcher.context.span_id
        assert dispatcher.start_time <= span.start_time <= span.end_time <= dispatcher.end_time
        assert span.attributes["orchestrator.thread_id"] == "traced"
        assert span.attributes["orchestrator.worker"].startswith("sim-")
    assert run.start_time <= min(s.start_time for s in nodes)
