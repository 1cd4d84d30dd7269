"""The deployment's own auth (langgraph.json's ``auth``) on a real `langgraph dev`, driven by the
real SDK: a matrix of identities x operations, each allowed or denied as its role says, and not
one read of another tenant's threads, runs or store items."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest
from langgraph_server import langgraph_dev

from orchestrator_graph.identity import key_digest

pytestmark = pytest.mark.slow

SECRET = "test-secret-for-this-module-only-0123456789"
KEYS = {r: f"key-a-{r}" for r in ("viewer", "operator", "approver", "admin")}
FAILING = {  # a run that ends in seconds: the file is missing and the policy gives up
    "tasks": [
        {"id": "load", "title": "load", "skills": ["data_collection"], "inputs": {"path": "x.csv"}}
    ]
}


def token(sub: str, tenant: str, roles: list[str], ttl: float = 600, secret: str = SECRET) -> str:
    claims = {"sub": sub, "tenant": tenant, "roles": roles, "exp": int(time.time() + ttl)}
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("auth-server")
    identities = {
        "api_keys": {
            key_digest(key): {"name": f"a-{role}", "tenant": "acme", "roles": [role]}
            for role, key in KEYS.items()
        },
        "jwt": {"secret_env": "OG_TEST_JWT_SECRET", "algorithms": ["HS256"]},
    }
    (folder / "identities.json").write_text(json.dumps(identities))
    env = {
        "ORCHESTRATOR_GRAPH_IDENTITIES": str(folder / "identities.json"),
        "OG_TEST_JWT_SECRET": SECRET,
        "ORCHESTRATOR_GRAPH_AUDIT_KEY": "k" * 32,
    }
    with langgraph_dev(folder, env=env, config="langgraph.json") as url:
        yield url


def client(url: str, who: str):
    from langgraph_sdk import get_client

    if who in KEYS:
        return get_client(url=url, api_key=KEYS[who])
    headers = {
        "anonymous": {},
        "studio bypass": {"x-auth-scheme": "langsmith"},
        "tenant B": {"Authorization": f"Bearer {token('b-op', 'globex', ['operator'])}"},
        "expired token": {"Authorization": f"Bearer {token('a', 'acme', ['admin'], ttl=-60)}"},
        "wrong signature": {
            "Authorization": f"Bearer {token('a', 'acme', ['admin'], secret='not-the-key-' * 4)}"
        },
    }[who]
    return get_client(url=url, api_key=None, headers=headers)


async def start(c, *, human: bool = False) -> tuple[str, dict]:
    thread = await c.threads.create()
    context = {"escalation": "human" if human else "policy", "max_attempts": 1}
    run = await c.runs.wait(
        thread["thread_id"],
        "orchestrator",
        input={"request": "load", "plan": FAILING},
        context=context,
    )
    return thread["thread_id"], run


@pytest.fixture(scope="module")
def world(server):
    import asyncio

    return asyncio.run(_world(server))


async def _world(server):
    """Tenant A's threads (a finished one, escalated ones) and tenant B's own thread."""
    a = client(server, "operator")
    done, values = await start(a)
    runs = await a.runs.list(done)
    escalated = {who: (await start(a, human=True))[0] for who in (*KEYS, "tenant B", "anonymous")}
    b_thread, _ = await start(client(server, "tenant B"))
    return {
        "done": done,
        "run_id": runs[0]["run_id"],
        "a_run": values["report"]["run_id"],
        "escalated": escalated,
        "b_thread": b_thread,
    }


async def scratch_run(c, w):
    """A thread of tenant A's, made by A's operator, for an identity to run on."""
    thread = await client(w["url"], "operator").threads.create()
    return thread["thread_id"]


OPS = {
    "threads.search": lambda c, w: c.threads.search(limit=100),
    "threads.get": lambda c, w: c.threads.get(w["done"]),
    "threads.state": lambda c, w: c.threads.get_state(w["done"]),
    "threads.history": lambda c, w: c.threads.get_history(w["done"], limit=5),
    "runs.join": lambda c, w: c.runs.join(w["done"], w["run_id"]),
    "store.get": lambda c, w: c.store.get_item(["orchestrator_graph", "status"], w["a_run"]),
    "store.search": lambda c, w: c.store.search_items(["orchestrator_graph"], limit=100),
    "store.put": lambda c, w: c.store.put_item(["notes"], "n1", {"text": "hello"}),
}


async def run_create(c, w):
    run = await c.runs.create(
        w["scratch"],
        "orchestrator",
        input={"request": "load", "plan": FAILING},
        context={"max_attempts": 1},
    )
    return await c.runs.join(w["scratch"], run["run_id"])


async def run_stream(c, w):
    return [
        part
        async for part in c.runs.stream(
            w["scratch"],
            "orchestrator",
            input={"request": "load", "plan": FAILING},
            context={"max_attempts": 1},
            stream_mode="updates",
        )
    ]


async def run_cancel(c, w):
    a = client(w["url"], "operator")
    run = await a.runs.create(
        w["scratch"],
        "orchestrator",
        input={"request": "load", "plan": FAILING},
        context={"max_attempts": 1},
        multitask_strategy="enqueue",
    )
    try:
        return await c.runs.cancel(w["scratch"], run["run_id"])
    finally:
        await a.runs.join(w["scratch"], run["run_id"])


async def resume(c, w):
    return await c.runs.wait(
        w["escalated"].get(w["who"], w["escalated"]["anonymous"]),
        "orchestrator",
        context={"escalation": "human"},
        command={"resume": {"action": "skip", "reason": "checked"}},
    )


WRITES = {
    "runs.create": run_create,
    "runs.stream": run_stream,
    "runs.cancel": run_cancel,
    "threads.resume": resume,
}
READS = {
    "threads.search",
    "threads.get",
    "threads.state",
    "threads.history",
    "runs.join",
    "store.get",
    "store.search",
}
ALLOWED = {
    "viewer": READS,
    "operator": READS | {"runs.create", "runs.stream", "runs.cancel", "store.put"},
    "approver": READS | {"threads.resume"},
    "admin": READS | set(WRITES) | {"store.put"},
    # tenant B may search and use its own store, and is refused everything of A's
    "tenant B": {"threads.search", "store.get", "store.search", "store.put"},
}


def leaks(result, w) -> list[str]:
    """Tenant A's ids or values in what tenant B got back."""
    text = json.dumps(result, default=str)
    marks = [w["done"], w["run_id"], w["a_run"], *w["escalated"].values()]
    return [m for m in marks if m in text]


@pytest.mark.parametrize(
    "who", [*KEYS, "tenant B", "anonymous", "studio bypass", "expired token", "wrong signature"]
)
async def test_identity_by_operation_matrix(server, world, who):
    w = {**world, "url": server, "who": who}
    c = client(server, who)
    got, found_leaks = {}, []
    for name, op in {**OPS, **WRITES}.items():
        if name in WRITES:
            w["scratch"] = await scratch_run(c, w)
        try:
            result = await op(c, w)
        except httpx.HTTPStatusError as error:
            assert error.response.status_code in (401, 403, 404), (name, error)
            got[name] = f"deny {error.response.status_code}"
            continue
        got[name] = "allow"
        if who == "tenant B":
            found_leaks += [f"{name}: {m}" for m in leaks(result, w)]
    expected = ALLOWED.get(who, set())
    assert {n for n, v in got.items() if v == "allow"} == expected, got
    assert found_leaks == []
    if who not in KEYS and who != "tenant B":
        assert {v for v in got.values()} <= {"deny 401", "deny 403"}, got


async def test_tenant_b_sees_only_its_own(server, world):
    b = client(server, "tenant B")
    threads = await b.threads.search(limit=100)
    assert world["b_thread"] in [t["thread_id"] for t in threads]
    assert {t["metadata"]["tenant"] for t in threads} == {"globex"}, threads
    assert leaks(threads, world) == []
    assert await b.store.get_item(["orchestrator_graph", "status"], world["a_run"]) is None
    a = client(server, "viewer")
    status = await a.store.get_item(["orchestrator_graph", "status"], world["a_run"])
    assert status["value"]["run_id"] == world["a_run"]


async def test_an_escalation_answer_records_who_answered(server, world):
    a = client(server, "approver")
    thread = world["escalated"]["approver"]
    state = await a.threads.get_state(thread)
    decisions = state["values"]["report"]["decisions"]
    assert [(d["by"], d.get("actor")) for d in decisions] == [("human", "a-approver")]
