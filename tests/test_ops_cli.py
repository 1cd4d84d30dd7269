"""The operations commands on a real data folder: metrics (printed and served), alerts and
doctor, each against what the run itself reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from langgraph_server import free_port
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from orchestrator_graph.cli import app

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def cli(*args: str, home: Path):
    """The real command line, in this process (a subprocess start costs seconds)."""
    return CliRunner().invoke(app, list(args), env={"ORCHESTRATOR_GRAPH_HOME": str(home)})


def test_metrics_alerts_and_doctor_on_a_data_folder(tmp_path):
    done = cli("run", "--example", "--thread", "t1", "--json", home=tmp_path)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    printed = cli("metrics", home=tmp_path)
    assert printed.exit_code == 0, printed.output
    got = samples(printed.stdout)
    assert got[("orchestrator_runs_total", (("status", "done"),))] == 1
    assert got[("orchestrator_tasks", (("status", "approved"),))] == 6
    assert got[("orchestrator_cost_total", ())] == pytest.approx(report["cost"])
    attempts = sum(v for (n, _), v in got.items() if n == "orchestrator_attempts_total")
    assert attempts == len(report["actual"])
    synth = ("orchestrator_tokens_total", (("model", "offline"), ("role", "synthesizer")))
    assert got[synth] == report["tokens"]["synthesizer"] > 0

    quiet = cli("alerts", "--json", home=tmp_path)
    assert (quiet.exit_code, json.loads(quiet.stdout)) == (0, [])

    doctor = cli("doctor", "--json", "--config", str(ROOT / "langgraph.json"), home=tmp_path)
    assert doctor.exit_code == 0, doctor.output
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert [checks[n]["status"] for n in ("database", "store", "chroma", "disk")] == ["ok"] * 4
    assert "1 recent runs" in checks["chroma"]["detail"]  # the example run was remembered
    assert checks["auth"]["status"] == "ok" and "server_auth.py:auth" in checks["auth"]["detail"]
    local = cli("doctor", "--json", "--config", str(ROOT / "langgraph.noauth.json"), home=tmp_path)
    auth = next(c for c in json.loads(local.stdout) if c["name"] == "auth")
    assert auth["status"] == "warn" and "not configured" in auth["detail"]
    assert checks["model:planner"]["status"] == "warn" and checks["model:planner"]["fix"]

    down = f"postgresql://og:secret@127.0.0.1:{free_port()}/og"
    broken = cli("doctor", "--json", "--postgres", down, "--model", "planner=nope:x", home=tmp_path)
    assert broken.exit_code == 1
    checks = {c["name"]: c for c in json.loads(broken.stdout)}
    assert checks["database"]["status"] == "fail" and "secret" not in checks["database"]["detail"]
    assert "start PostgreSQL" in checks["database"]["fix"]
    assert checks["model:planner"]["status"] == "fail" and checks["model:planner"]["fix"]


def test_metrics_served_for_library_users(tmp_path):
    port = free_port()
    env = {**os.environ, "ORCHESTRATOR_GRAPH_HOME": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    args = ["metrics", "--serve", str(port), "--interval", "0.5"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator_graph.cli", *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                    text = r.read().decode()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail("metrics --serve did not answer")
                time.sleep(0.3)
        assert samples(text)[("orchestrator_runs_active", (("state", "running"),))] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
