"""The deployment files, checked without a container: the Dockerfile serves exactly the graphs
and HTTP app of langgraph.json and stays in step with what `langgraph dockerfile` generates;
the compose file wires the server to PostgreSQL and Redis with health checks on /readyz; every
entry point they name imports. (The endpoints themselves run in test_operations_server.)"""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
DEPS = "/deps/orchestrator-graph"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    out, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    assert not pending, "a continuation line ends the file"
    return out


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for word, rest in steps:
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_dockerfile_serves_langgraph_json():
    config = json.loads((ROOT / "langgraph.json").read_text())
    steps = instructions(DOCKERFILE.read_text())
    assert steps[0] == ("FROM", "langchain/langgraph-api:3.11")
    assert ("ADD", f". {DEPS}") in steps
    env = env_of(steps)
    graphs = {n: p.replace("./", f"{DEPS}/", 1) for n, p in config["graphs"].items()}
    assert json.loads(env["LANGSERVE_GRAPHS"]) == graphs
    app = config["http"]["app"].replace("./", f"{DEPS}/", 1)
    assert json.loads(env["LANGGRAPH_HTTP"]) == {"app": app, "enable_custom_route_auth": True}
    saver = config["checkpointer"]["path"].replace("./", f"{DEPS}/", 1)
    assert json.loads(env["LANGGRAPH_CHECKPOINTER"]) == {"path": saver}
    assert env["ORCHESTRATOR_GRAPH_HOME"] == "/data"
    health = next(rest for word, rest in steps if word == "HEALTHCHECK")
    assert "127.0.0.1:8000/readyz" in health
    assert ("EXPOSE", "8000") in steps


def test_every_entry_point_imports():
    """The modules the Dockerfile and langgraph.json name exist and hold what they say."""
    from starlette.applications import Starlette

    config = json.loads((ROOT / "langgraph.json").read_text())
    for spec in [*config["graphs"].values(), config["http"]["app"]]:
        path, _, attr = spec.partition(":")
        module = ROOT / path
        assert module.is_file(), spec
        name = "orchestrator_graph." + module.stem
        loaded = sys.modules.get(name) or importlib.import_module(name)
        value = getattr(loaded, attr)
        expected = Starlette if attr == "app" else object
        assert isinstance(value, expected) and (attr == "app" or hasattr(value, "ainvoke")), spec


def test_dockerfile_is_in_step_with_langgraph_dockerfile(tmp_path):
    cli = Path(sys.executable).with_name("langgraph")
    if not cli.exists():
        pytest.fail("langgraph-cli is missing: it comes with the server extra")
    out = tmp_path / "Dockerfile"
    subprocess.run(
        [str(cli), "dockerfile", "-c", str(ROOT / "langgraph.json"), str(out)],
        check=True,
        capture_output=True,
        timeout=60,
        env={"LANGGRAPH_CLI_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin"},
    )
    ours = instructions(DOCKERFILE.read_text())
    generated = instructions(out.read_text().replace(f"/deps/{ROOT.name}", DEPS))
    missing = [step for step in generated if step not in ours]
    assert missing == [], "regenerate deploy/Dockerfile: `langgraph dockerfile` now writes these"


def test_compose_runs_the_server_on_postgres_and_redis():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"langgraph-api", "langgraph-postgres", "langgraph-redis"}
    api = services["langgraph-api"]
    assert (COMPOSE.parent / api["build"]["context"] / api["build"]["dockerfile"]).resolve() == (
        DOCKERFILE
    )
    assert {k: v["condition"] for k, v in api["depends_on"].items()} == {
        "langgraph-postgres": "service_healthy",
        "langgraph-redis": "service_healthy",
    }
    env = api["environment"]
    assert "@langgraph-postgres:5432/" in env["DATABASE_URI"]
    assert env["REDIS_URI"] == "redis://langgraph-redis:6379"
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    for name in ("langgraph-postgres", "langgraph-redis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    assert api["ports"] == ["8123:8000"] and "orchestrator-data:/data" in api["volumes"]


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed")
def test_hadolint_finds_no_error():
    found = subprocess.run(
        ["hadolint", "--failure-threshold", "error", str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stdout
