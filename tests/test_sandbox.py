"""The default team's files: reads only inside the input roots, writes only inside the output
root, whatever paths, links and ids a request or plan carries."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import create_orchestrator
from orchestrator_graph.errors import SandboxError
from orchestrator_graph.sandbox import output_dir, resolve_input, safe_name
from orchestrator_graph.tools import load_table


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """An input root, an output root, and a folder outside both holding a 'secret' file."""
    inputs, outputs, outside = tmp_path / "in", tmp_path / "out", tmp_path / "outside"
    for folder in (inputs, outputs, outside):
        folder.mkdir()
    (outside / "secret.csv").write_text("id,password\n1,hunter2\n")
    (outside / "victim").mkdir()
    (outside / "victim" / "README.md").write_text("original\n")
    (inputs / "ok.csv").write_text("id,region,price,quantity\n1,north,2,3\n")
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_INPUT_ROOTS", str(inputs))
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_OUTPUT_ROOT", str(outputs))
    monkeypatch.chdir(inputs)
    return inputs, outputs, outside


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_reads_are_confined_to_the_input_roots(roots):
    inputs, _outputs, outside = roots
    (inputs / "innocent.csv").symlink_to(outside / "secret.csv")
    (inputs / "passwd.csv").symlink_to("/etc/passwd")
    assert load_table("ok.csv")["rows"] == [
        {"id": "1", "region": "north", "price": "2", "quantity": "3"}
    ]
    assert resolve_input(str(inputs / "ok.csv")) == inputs / "ok.csv"
    assert resolve_input("sales.csv").name == "sales.csv"  # the bundled samples stay readable
    with pytest.raises(
        SandboxError,
        match=r"input path 'innocent.csv' \(a link to .*outside/"
        r"secret.csv\) is outside the input roots",
    ):
        load_table("innocent.csv")
    with pytest.raises(SandboxError, match=r"'passwd.csv' \(a link to /etc/passwd\)"):
        load_table("passwd.csv")
    with pytest.raises(SandboxError, match="input path '../outside/secret.csv': '..' is not"):
        load_table("../outside/secret.csv")
    with pytest.raises(
        SandboxError, match=f"input path '{outside}/secret.csv' is outside the input roots {inputs}"
    ):
        load_table(str(outside / "secret.csv"))


def test_output_folders_and_file_names_stay_in_the_root(roots):
    _inputs, outputs, outside = roots
    assert output_dir("") == outputs and output_dir("team/a") == outputs / "team" / "a"
    assert output_dir(str(outputs / "x")) == outputs / "x"
    with pytest.raises(
        SandboxError,
        match=f"output_dir '{outside}' is outside the output root "
        f"{outputs}; the deployment sets the root with ORCHESTRATOR_GRAPH_OUTPUT",
    ):
        output_dir(str(outside))
    with pytest.raises(SandboxError, match="output_dir '../outside': '..' is not allowed"):
        output_dir("../outside")
    (outputs / "link").symlink_to(outside)
    with pytest.raises(SandboxError, match="output_dir 'link' is outside the output root"):
        output_dir("link")
    assert safe_name("run1", "../../../../victim/README", suffix=".md").startswith(
        "run1-_victim_README-"
    )
    assert "/" not in safe_name("a/b") and not safe_name("..hidden").startswith(".")


async def run_plan(plan: dict, **context) -> dict:
    graph = create_orchestrator().compile(checkpointer=InMemorySaver(), store=InMemoryStore())
    out = await graph.ainvoke(
        {"request": "report", "plan": plan},
        {"configurable": {"thread_id": "s"}},
        context={"use_memory": False, "max_attempts": 1, **context},
    )
    return out["report"]


def pipeline(path: str, report_id: str = "report") -> dict:
    def task(tid, skill, deps, **inputs):
        return {"id": tid, "title": tid, "skills": [skill], "depends_on": deps, "inputs": inputs}

    return {
        "tasks": [
            task("load", "data_collection", [], path=path),
            task("clean", "processing", ["load"]),
            task("check", "validation", ["clean"]),
            task("stats", "analysis", ["check"]),
            task(report_id, "reporting", ["stats", "check"]),
        ]
    }


async def test_a_task_id_with_dots_and_slashes_writes_inside_the_output_root(roots):
    """Reproduces the report of a task id '../../../../victim/README' overwriting a README
    outside the output folder."""
    inputs, outputs, outside = roots
    before = snapshot(outside)
    depth = "../" * (len(outputs.parts) - 1)  # enough '..' to climb to '/' from the root
    tid = f"{depth}{str(outside / 'victim' / 'README').lstrip('/')}"
    report = await run_plan(pipeline("ok.csv", tid))
    assert report["status"] == "done"
    written = (
        Path(report["tasks"][tid]["output"]["path"]) if "output" in report["tasks"][tid] else None
    )
    files = list(outputs.rglob("*.md"))
    assert len(files) == 1 and files[0].parent == outputs and ".." not in files[0].name
    assert written is None or written == files[0]
    assert snapshot(outside) == before


async def test_a_symlinked_input_fails_the_task_and_reads_nothing(roots):
    inputs, _outputs, outside = roots
    (inputs / "innocent.csv").symlink_to(outside / "secret.csv")
    report = await run_plan(pipeline("innocent.csv"), escalation="policy", fallback=["partial"])
    assert report["status"] != "done"
    load = report["tasks"]["load"]
    assert load["status"] == "failed" and "(a link to " in load["feedback"]
    assert "is outside the input roots" in load["feedback"]
    assert "hunter2" not in str(report)


async def test_a_run_asking_for_an_output_folder_outside_the_root_is_refused(roots):
    _inputs, outputs, outside = roots
    with pytest.raises(SandboxError, match="is outside the output root"):
        await run_plan(pipeline("ok.csv"), output_dir=str(outside))
    assert snapshot(outside)["" + str(outside / "secret.csv")] and not list(outputs.iterdir())
