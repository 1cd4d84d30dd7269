import pytest

from orchestrator_graph import Plan, PlanValidationError, Task, analyse_plan, validate_plan


def plan(*tasks: tuple) -> Plan:
    return Plan(
        tasks=[
            Task(id=i, title=i, skills=[s], depends_on=list(d), effort=e) for i, s, d, e in tasks
        ]
    )


def problems(p: Plan, skills=("a",)) -> str:
    with pytest.raises(PlanValidationError) as info:
        validate_plan(p, skills)
    return str(info.value)


def test_each_defect_is_named_with_its_tasks():
    assert "no tasks" in problems(Plan(tasks=[]))
    assert "duplicate task ids: x" in problems(plan(("x", "a", [], 1), ("x", "a", [], 1)))
    assert "task 'y' depends on unknown tasks: ghost" in problems(plan(("y", "a", ["ghost"], 1)))
    assert "task 'z' needs skills no worker has: flying" in problems(plan(("z", "flying", [], 1)))
    cyc = problems(plan(("p", "a", ["q"], 1), ("q", "a", ["r"], 1), ("r", "a", ["p"], 1)))
    assert "dependency cycle" in cyc and all(t in cyc for t in "pqr")
    assert "depends on itself" in problems(plan(("s", "a", ["s"], 1)))


def test_all_defects_reported_together():
    message = problems(plan(("a1", "a", ["nope"], 1), ("b1", "zzz", [], 1)))
    assert "nope" in message and "zzz" in message


def test_critical_path_slack_and_levels():
    p = plan(
        ("start", "a", [], 2),
        ("long", "a", ["start"], 5),
        ("short", "a", ["start"], 1),
        ("end", "a", ["long", "short"], 1),
    )
    validate_plan(p, ["a"])
    a = analyse_plan(p)
    assert a.critical_path == ["start", "long", "end"]
    assert a.duration == 8 and a.total_work == 9
    assert a.tasks["short"].slack == pytest.approx(4)
    assert a.tasks["short"].earliest_start == 2 and a.tasks["short"].latest_start == pytest.approx(
        6
    )
    assert not a.tasks["short"].critical and a.tasks["long"].critical
    assert a.levels == [["start"], ["long", "short"], ["end"]]


def test_history_durations_override_estimates():
    p = plan(("x", "a", [], 1), ("y", "a", [], 3))
    assert analyse_plan(p).critical_path == ["y"]
    assert analyse_plan(p, {"x": 10}).critical_path == ["x"]


def test_consumed_outputs_imply_dependencies():
    from orchestrator_graph.dag import dependencies, with_implied_dependencies

    p = Plan(
        tasks=[
            Task(id="load", title="l", skills=["a"], outputs=["table"]),
            Task(id="stats", title="s", skills=["a"], consumes=["table"], outputs=["summary"]),
            Task(id="report", title="r", skills=["a"], consumes=["summary"], depends_on=["load"]),
        ]
    )
    validate_plan(p, ["a"])
    assert dependencies(p) == {"load": [], "stats": ["load"], "report": ["load", "stats"]}
    a = analyse_plan(p)
    # stats depends on load only through what it consumes: the path still starts at load
    assert a.critical_path == ["load", "stats", "report"] and a.duration == 3
    assert a.redundant_edges == [("report", "load")]  # load is reached through stats anyway
    assert with_implied_dependencies(p).tasks[2].depends_on == ["load", "stats"]


def test_consumption_defects_are_named():
    p = Plan(
        tasks=[
            Task(id="x", title="x", skills=["a"], consumes=["ghost"]),
            Task(id="y", title="y", skills=["a"], outputs=["dup"]),
            Task(id="z", title="z", skills=["a"], outputs=["dup"]),
            Task(id="w", title="w", skills=["a"], consumes=["dup"]),
        ]
    )
    message = problems(p)
    assert "task 'x' consumes 'ghost', which no task produces" in message
    assert "task 'w' consumes 'dup', which several tasks produce: y, z" in message
    loop = Plan(
        tasks=[
            Task(id="p", title="p", skills=["a"], outputs=["o1"], consumes=["o2"]),
            Task(id="q", title="q", skills=["a"], outputs=["o2"], consumes=["o1"]),
        ]
    )
    assert "dependency cycle" in problems(loop)
