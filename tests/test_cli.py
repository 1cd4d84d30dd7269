import json
import os
import subprocess
import sys

import pytest


def cli(*args: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "ORCHESTRATOR_GRAPH_HOME": str(home)}
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
    status = json.loads(cli("status", "t1", "--json", home=tmp_path).stdout)
    assert status["status"] == "done" and status["next"] == []

    (tmp_path / "bad.yaml").write_text(
        "tasks:\n- {id: a, title: A, skills: [analysis], depends_on: [b]}\n"
        "- {id: b, title: B, skills: [analysis], depends_on: [a]}\n"
    )
    bad = cli("plan", "--plan", "bad.yaml", home=tmp_path)
    assert bad.returncode == 2 and "dependency cycle" in bad.stderr and bad.stdout == ""
    missing = cli("status", "ghost", home=tmp_path)
    assert missing.returncode == 2 and "no thread 'ghost'" in missing.stderr
