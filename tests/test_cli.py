import json
import os
import subprocess
import sys

import pytest


def cli(*args: str, home, **env_vars: str) -> subprocess.CompletedProcess:
    """The command line in a subprocess, with its own data folder and no API key unless given."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env |= {"ORCHESTRATOR_GRAPH_HOME": str(home), **env_vars}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator_graph.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
    )


@pytest.mark.slow
def test_run_status_and_bad_input(tmp_path):
    done = cli("run", "--example", "--thread", "t1", "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "done" and len(report["tasks"]) == 6
    status = json.loads(cli("status", "t1", "--json", "--gantt", "g.html", home=tmp_path).stdout)
    assert status["status"] == "done" and status["next"] == []
    assert status["snapshot"]["counts"] == {"approved": 6} and status["snapshot"]["eta"] == 0
    gantt = (tmp_path / "g.html").read_text()
    assert "<html>" in gantt[:50] and "Plotly.newPlot" in gantt  # plotly.js inlined
    assert all(gantt.count(f'"{t}"') >= 2 for t in report["tasks"])  # planned and actual bars
    text = cli("status", "t1", home=tmp_path).stdout
    assert "critical-path slip" in text and "utilisation: collector" in text
    found = json.loads(cli("insights", "--json", "--target", "60", home=tmp_path).stdout)
    assert found["runs"] == 1 and found["statuses"] == {"done": 1}
    assert found["capacity"]["reached"] and {c["skill"] for c in found["skills"]} >= {"analysis"}

    (tmp_path / "bad.yaml").write_text(
        "tasks:\n- {id: a, title: A, skills: [analysis], depends_on: [b]}\n"
        "- {id: b, title: B, skills: [analysis], depends_on: [a]}\n"
    )
    bad = cli("plan", "--plan", "bad.yaml", home=tmp_path)
    assert bad.returncode == 2 and "dependency cycle" in bad.stderr and bad.stdout == ""
    (tmp_path / "shape.json").write_text('{"tasks": [{"id": "a", "skills": ["x"], "effort": -1}]}')
    shape = cli("plan", "--plan", "shape.json", home=tmp_path)
    assert shape.returncode == 2
    assert "tasks.0.title: Field required; tasks.0.effort: Input should be greater than 0" in (
        shape.stderr
    )
    missing = cli("status", "ghost", home=tmp_path)
    assert missing.returncode == 2 and "no thread 'ghost'" in missing.stderr


def test_model_flags_are_checked(tmp_path):
    bad_role = cli("plan", "--example", "--model", "boss=offline", home=tmp_path)
    assert bad_role.returncode == 2 and "unknown role 'boss'" in bad_role.stderr
    per_role = cli("plan", "--example", "--model", "planner=offline", "--json", home=tmp_path)
    assert per_role.returncode == 0, per_role.stderr
    assert len(json.loads(per_role.stdout)["plan"]["tasks"]) == 6
    no_provider = cli("plan", "--example", "--model", "nosuchprovider:m1", home=tmp_path)
    assert no_provider.returncode == 2 and "nosuchprovider" in no_provider.stderr
    no_key = cli("run", "--example", "--model", "openai:gpt-4.1", home=tmp_path)
    assert no_key.returncode == 2
    assert "model 'openai:gpt-4.1' cannot be created: Missing credentials" in no_key.stderr
    assert not list(tmp_path.glob("*.db"))  # refused before any run or state was created


@pytest.mark.slow
def test_waiting_for_a_human_then_resumed_from_the_cli(tmp_path):
    (tmp_path / "plan.json").write_text(
        json.dumps(
            {
                "tasks": [
                    {
                        "id": "load",
                        "title": "load",
                        "skills": ["data_collection"],
                        "inputs": {"path": "gone.csv"},
                    },
                    {
                        "id": "stats",
                        "title": "stats",
                        "skills": ["analysis"],
                        "depends_on": ["load"],
                    },
                ]
            }
        )
    )
    waiting = cli(
        "run",
        "x",
        "--plan",
        "plan.json",
        "--thread",
        "h1",
        "--escalation",
        "human",
        "--json",
        home=tmp_path,
    )
    assert waiting.returncode == 3, waiting.stderr
    (question,) = json.loads(waiting.stdout)["interrupts"]
    assert question["task_id"] == "load" and "gone.csv" in question["reason"]

    refused = cli("resume", "h1", home=tmp_path)
    assert refused.returncode == 3 and "--answer accept|retry|skip" in refused.stderr
    done = cli("resume", "h1", "--answer", "skip", "--json", home=tmp_path)
    assert done.returncode == 1  # finished, but not everything was approved
    report = json.loads(done.stdout)
    assert report["decisions"][0]["action"] == "skip" and report["decisions"][0]["by"] == "human"
    assert "run failed: no task was approved" in done.stderr
    trail = json.loads(cli("audit", "h1", "--json", home=tmp_path).stdout)
    actions = [(e["actor"], e["action"], e["task_id"]) for e in trail]
    assert actions[0] == ("gates", "plan approve", "plan")
    assert ("collector", "attempt started", "load") in actions
    assert any(a == "reject (0.00)" and t == "load" for _, a, t in actions)
    assert ("human", "decision skip", "load") in actions
    assert [e["at"] for e in trail] == sorted(e["at"] for e in trail)


@pytest.mark.slow
def test_roster_objective_and_workers_listing(tmp_path):
    team = "orchestrator_graph.team"
    (tmp_path / "team.yaml").write_text(
        "workers:\n"
        f"  - {{name: loader, skills: {{data_collection: 0.9}}, run: {team}:collect}}\n"
        f"  - {{name: pricey, skills: {{analysis: 0.9}}, cost: 5, run: {team}:analyse}}\n"
        f"  - {{name: thrifty, skills: {{analysis: 0.7}}, cost: 1, run: {team}:analyse}}\n"
    )
    done = cli(
        "run",
        "Collect sales.csv and analyse it by region",
        "--roster",
        "team.yaml",
        "--objective",
        "cost",
        "--thread",
        "r1",
        "--json",
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    tasks = json.loads(done.stdout)["tasks"]
    assert tasks["analyse"]["worker"] == "thrifty"
    assert tasks["analyse"]["assignment"]["runner_up"] == "pricey"
    listing = json.loads(cli("workers", "--roster", "team.yaml", "--json", home=tmp_path).stdout)
    history = {w["name"]: w["history"] for w in listing}
    assert history["thrifty"]["analysis"]["attempts"] == 1 and history["pricey"] == {}


@pytest.mark.slow
def test_a_budget_pauses_and_a_raised_budget_resumes(tmp_path):
    paused = cli(
        "run", "--example", "--thread", "b1", "--budget", "attempts=3", "--json", home=tmp_path
    )
    assert paused.returncode == 3, paused.stderr
    (pause,) = json.loads(paused.stdout)["interrupts"]
    assert pause["type"] == "budget" and pause["reason"].startswith("attempts budget spent: 3 of 3")
    done = cli("resume", "b1", "--budget", "attempts=20", "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "done" and report["tokens"]["workers"] > 0
    bad = cli("run", "--example", "--budget", "speed=3", home=tmp_path)
    assert bad.returncode == 2 and "NAME one of seconds, cost, attempts, tokens" in bad.stderr
