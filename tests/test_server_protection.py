"""Data protection and the dashboard on a real `langgraph dev` serving the deployment's own
``langgraph.json`` (auth, the redacting checkpointer, auth on the custom routes): an API key and
an SSN sent in a run's input are in clear neither in the thread's state nor in any file the
server keeps; the dashboard, metrics and alerts refuse anonymous requests and show a tenant's
viewer only that tenant's runs."""

from __future__ import annotations

import json
import secrets
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from langgraph_server import ROOT, langgraph_dev

from orchestrator_graph.identity import key_digest

pytestmark = pytest.mark.slow
KEYS = {
    "a-operator": ("acme", "operator"),
    "a-viewer": ("acme", "viewer"),
    "b-operator": ("globex", "operator"),
    "b-viewer": ("globex", "viewer"),
}


def plan(value: str) -> dict:
    """One task that ends in seconds (its file is missing), with ``value`` in its inputs."""
    inputs = {"path": "missing.csv", "note": value}
    return {
        "tasks": [{"id": "load", "title": "load", "skills": ["data_collection"], "inputs": inputs}]
    }


def grep(folder: Path, values: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if hits := [v for v in values if v.encode() in data]:
                found[str(path)] = hits
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The server's URL and folder, the secrets sent and tenant A's and B's threads; the
    server is stopped (its files written out) when the module's tests are done."""
    folder = tmp_path_factory.mktemp("protected-server")
    ids = {
        key_digest(k): {"name": k, "tenant": tenant, "roles": [role]}
        for k, (tenant, role) in KEYS.items()
    }
    (folder / "identities.json").write_text(json.dumps({"api_keys": ids}))
    env = {
        "ORCHESTRATOR_GRAPH_IDENTITIES": str(folder / "identities.json"),
        "ORCHESTRATOR_GRAPH_AUDIT_KEY": "p" * 32,
    }
    key = "sk-proj-" + secrets.token_hex(12)
    ssn = f"536-22-{secrets.randbelow(9000) + 1000}"
    with ExitStack() as server:
        url = server.enter_context(langgraph_dev(folder, env=env, config="langgraph.json"))
        yield {"url": url, "folder": folder, "secrets": [key, ssn], "threads": {}, "stop": server}


def client(url: str, key: str | None):
    from langgraph_sdk import get_client

    return get_client(url=url, api_key=key) if key else get_client(url=url, api_key=None)


async def test_secrets_in_a_runs_input_are_kept_nowhere_in_clear(served):
    url, (key, ssn) = served["url"], served["secrets"]
    a, b = client(url, "a-operator"), client(url, "b-operator")
    request = f"load the file; my API key is {key} and my SSN is {ssn}"
    for who, c in (("a", a), ("b", b)):
        thread = (await c.threads.create())["thread_id"]
        await c.runs.wait(thread, "orchestrator", input={"request": request, "plan": plan(ssn)})
        served["threads"][who] = thread
    thread = served["threads"]["a"]
    state = json.dumps(await a.threads.get_state(thread))
    history = json.dumps(await a.threads.get_history(thread, limit=50))
    runs = json.dumps(await a.runs.list(thread))
    for seen in (state, history, runs):
        assert key not in seen and ssn not in seen
    assert "[REDACTED:api_key]" in state and "[REDACTED:ssn]" in state
    refused = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"
    with pytest.raises(httpx.HTTPStatusError) as error:
        await a.runs.create(thread, "orchestrator", input={"request": refused, "plan": plan("x")})
    assert error.value.response.status_code == 422
    assert "private_key, which the data policy" in error.value.response.text


@pytest.mark.parametrize("path", ["/dashboard", "/orchestrator/metrics", "/alerts"])
def test_the_dashboard_and_metrics_need_an_identity(served, path):
    for headers in ({}, {"x-auth-scheme": "langsmith"}, {"x-api-key": "not-a-key"}):
        got = httpx.get(served["url"] + path, headers=headers, timeout=30)
        assert got.status_code in (401, 403), (path, headers, got.status_code)


def test_health_probes_answer_without_credentials_and_reach_nothing_else(served):
    """A container's health check has no key: ``/healthz`` and ``/readyz`` answer it; the
    same anonymous caller is refused everywhere else, API included."""
    for path in ("/healthz", "/readyz"):
        assert httpx.get(served["url"] + path, timeout=30).status_code == 200, path
    thread = served["threads"]["a"]
    for path in (f"/threads/{thread}", f"/dashboard/runs/{thread}"):
        assert httpx.get(served["url"] + path, timeout=30).status_code in (401, 403), path


def test_a_viewer_sees_only_its_tenants_runs_on_the_dashboard(served):
    a, b = served["threads"]["a"], served["threads"]["b"]

    def get(path: str, key: str) -> httpx.Response:
        return httpx.get(served["url"] + path, headers={"x-api-key": key}, timeout=60)

    page = get("/dashboard", "a-viewer")
    assert page.status_code == 200 and a in page.text and b not in page.text
    page = get("/dashboard", "b-viewer")
    assert page.status_code == 200 and b in page.text and a not in page.text
    assert get(f"/dashboard/runs/{a}", "a-viewer").status_code == 200
    assert get(f"/dashboard/runs/{a}", "b-viewer").status_code == 404
    assert get(f"/dashboard/runs/{a}/live", "b-viewer").status_code == 404
    for path in ("/orchestrator/metrics", "/alerts"):
        assert get(path, "b-viewer").status_code == 200 and a not in get(path, "b-viewer").text


def test_the_servers_files_hold_no_secret_in_clear(served):
    """Last in the module: the server is stopped here, so that it writes its files out; then
    its folder (log, data) and the checkpoints, runs and store it kept in ``.langgraph_api``."""
    served["stop"].close()
    log = (served["folder"] / "server.log").read_text()
    assert "Using custom checkpointer: InMemorySaver" in log  # the server's own, redacting
    kept = ROOT / ".langgraph_api"
    assert any(p.name.startswith(".langgraph_checkpoint") for p in kept.iterdir())
    assert grep(kept, served["secrets"]) == {}
    assert grep(served["folder"], served["secrets"]) == {}
