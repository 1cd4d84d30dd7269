"""Data protection: detection, the policy file, redaction at the persistence choke points,
classification checks and the compliance report, with the real savers, store and Chroma."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from orchestrator_graph import Worker, create_orchestrator
from orchestrator_graph.errors import DataPolicyError, InputError
from orchestrator_graph.models import Plan, Task
from orchestrator_graph.protection.classification import barred, check_assignment, check_plan
from orchestrator_graph.protection.policy import load_policy
from orchestrator_graph.protection.redact import Redactor

FOUND = [
    ("email", "write to jane.doe@example.co.uk today"),
    ("phone", "call +1 415 555 0132 or later"),
    ("phone", "office (415) 555-0132"),
    ("ssn", "ssn 536-22-1234"),
    ("card", "card 4111 1111 1111 1111 exp"),
    ("iban", "pay DE89 3704 0044 0532 0130 00 now"),
    ("secret", "aws AKIAIOSFODNN7EXAMPLE"),
    ("secret", "token ghp_" + "a1B2" * 9),
    ("api_key", "Incorrect API key provided: sk-proj-abcdefghijklmnopqrstuvwx"),
    ("private_key", "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"),
]
NOT_FOUND = [
    "total revenue 1234567.89 on 2026-12-01 at 1764590000.123",
    "id 4111111111111112 fails Luhn; 000-12-3456 is no SSN; DE00 3704 0044 0532 0130 00",
    "checkpoint 1f0a9c2e-77d4-6b1e-8003-5b0c0a9e1d2f run 6dba1e41397d",
    "a bare 4155550132 is a number",
    # checkpoint ids whose hex groups hold a Luhn-valid run with a card's prefix: masking one
    # broke the server's state reads (langgraph unhexlifies the id)
    "1f1edaf8-b278-6471-8511-64daafebb385 1f1edaf8-bdca-6fe0-a3e2-516882826731",
]


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(load_policy(), b"test-key")


@pytest.mark.parametrize(("kind", "text"), FOUND)
def test_each_kind_is_found(redactor, kind, text):
    assert [f.kind for f in redactor.detector.find(text)] == [kind]


@pytest.mark.parametrize("text", NOT_FOUND)
def test_ordinary_numbers_and_ids_are_not_personal_data(redactor, text):
    assert redactor.detector.find(text) == []


def test_redact_mask_and_walk_keep_clean_objects(redactor):
    message = HumanMessage("mail jane.doe@example.co.uk, card 4111 1111 1111 1111")
    clean = {"rows": [{"region": "north", "revenue": 12.5}], "n": 3}
    value = {"messages": [message], "clean": clean, "tuple": ("536-22-1234",)}
    found: list = []
    out = redactor.value(value, found)
    assert out["messages"][0].content == "mail [REDACTED:email], card [MASKED:card:…1111]"
    assert out["tuple"] == ("[REDACTED:ssn]",) and out["clean"] is clean  # nothing copied
    assert message.content.startswith("mail jane")  # the original is not changed
    assert sorted(f.kind for f in found) == ["card", "email", "ssn"]
    assert redactor.value(clean) is clean


def test_policy_file_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("actions: {card: shred}\n")
    with pytest.raises(InputError, match=r"p\.yaml: actions\.card: Input should be 'redact'"):
        load_policy(bad)
    bad.write_text("detectors: {secrets: [NoSuchDetector]}\n")
    with pytest.raises(InputError, match="unknown detect-secrets plugins NoSuchDetector; known:"):
        load_policy(bad)
    bad.write_text("detectors: {patterns: {x: '('}}\n")
    with pytest.raises(InputError, match="pattern 'x' is not a regular expression"):
        load_policy(bad)
    with pytest.raises(InputError, match="gone.yaml: No such file"):
        load_policy(tmp_path / "gone.yaml")


async def test_a_refused_kind_in_the_request_stops_the_run_before_any_work():
    store = InMemoryStore()
    graph = create_orchestrator().compile(checkpointer=InMemorySaver(), store=store)
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"
    request = f"Analyse sales.csv with {pem}"
    with pytest.raises(DataPolicyError, match="the request: holds private_key, which the data"):
        await graph.ainvoke({"request": request}, {"configurable": {"thread_id": "k"}})
    assert await store.asearch(("orchestrator_graph",), limit=5) == []


def _team(**regions: str) -> list[Worker]:
    return [
        Worker(name=n, skills={"analysis": 0.9}, region=r, run=lambda p: {"value": p.task.id})
        for n, r in regions.items()
    ]


def test_classification_constrains_models_and_regions(tmp_path, monkeypatch):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "classification:\n  default: internal\n  levels:\n"
        "    confidential: {models: ['*'], regions: [eu-*]}\n"
        "    restricted: {models: ['offline'], regions: [eu-west]}\n"
    )
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_POLICY", str(policy))
    rules = load_policy()
    plan = Plan(
        classification="confidential",
        tasks=[
            Task(id="a", title="a", skills=["analysis"]),
            Task(id="b", title="b", skills=["analysis"], classification="restricted"),
        ],
    )
    team = _team(us=("us-east"), eu=("eu-central"))
    with pytest.raises(DataPolicyError) as caught:
        check_plan(plan, team, {"worker": "openai:gpt-4o", "reviewer": "offline"}, rules)
    assert str(caught.value) == (
        "data classification: task 'b' is restricted: the worker model 'openai:gpt-4o' may not "
        "handle it (allowed models: offline); task 'b' is restricted: no capable worker is in an "
        "allowed region (workers' regions: eu-central, us-east; allowed: eu-west)"
    )
    check_plan(
        plan.model_copy(update={"tasks": plan.tasks[:1]}), team, {"worker": "offline"}, rules
    )
    task = plan.tasks[0].model_copy(update={"classification": "confidential"})
    assert barred(task, team, rules) == {"us"}
    with pytest.raises(
        DataPolicyError,
        match="task 'a' is confidential: worker 'us' in region 'us-east' may not handle it",
    ):
        check_assignment(task, team[0], rules)


async def test_confidential_tasks_go_only_to_allowed_regions(tmp_path, monkeypatch):
    """The cheaper worker is outside the allowed regions: matching never picks it."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("classification:\n  levels:\n    confidential: {regions: [eu-*]}\n")
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_POLICY", str(policy))
    team = [  # (name, level, region, capacity, cost)
        Worker(
            name=n, skills={"analysis": lv}, region=r, capacity=c, cost=cost, run=lambda p: {"v": 1}
        )
        for n, lv, r, c, cost in [("us", 1.0, "us-east", 4, 0.0), ("eu", 0.5, "eu-west", 1, 5.0)]
    ]
    tasks = [Task(id=f"t{i}", title="t", skills=["analysis"]) for i in range(4)]
    plan = Plan(classification="confidential", tasks=tasks)
    store = InMemoryStore()
    graph = create_orchestrator(workers=team).compile(checkpointer=InMemorySaver(), store=store)
    out = await graph.ainvoke(
        {"request": "x", "plan": plan.model_dump()},
        {"configurable": {"thread_id": "c"}},
        context={"use_memory": False, "objective": "cost"},
    )
    report = out["report"]
    assert report["status"] == "done"
    assert {r["worker"] for r in report["tasks"].values()} == {"eu"}
    compliance = report["compliance"]
    assert compliance["classifications"] == dict.fromkeys(["t0", "t1", "t2", "t3"], "confidential")
    assert compliance["checks"][0]["outcome"] == "pass" and compliance["outcome"] == "pass"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_leaks_bench_lean(tmp_path, monkeypatch, backend, request):
    """The leak bench's run (50 items in request, inputs, input file and a worker's output) on
    SQLite or Postgres, and Chroma: no value in clear in any file left or in the database, and
    each value counted once. (Postgres keeps a checkpoint's plain values inline, unserialised:
    wrapping only the serializer left planted values there in clear.)"""
    import asyncio

    from bench_leaks import grep, pg_dump, plant, run_planted, secret

    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None

    home, out, inputs = tmp_path / "home", tmp_path / "out", tmp_path / "inputs"
    for folder in (home, out, inputs):
        folder.mkdir()
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_OUTPUT_ROOT", str(out))
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_INPUT_ROOTS", str(inputs))
    done = asyncio.run(run_planted(home, out, inputs, url))
    values = [secret(v) for _k, v in done["items"]]
    assert len(set(values)) == 50 and done["report"]["status"] == "done"
    files = {p.name for p in home.rglob("*")}
    kept = {"state.db", "store.db"} if backend == "sqlite" else set()
    assert kept | {"chroma.sqlite3", "events.log", "report.json"} <= files
    dump = pg_dump(url) if url else b""
    assert grep([home, out], values, dump) == {}
    assert not url or dump.count(b"[REDACTED:") >= 50
    assert sum(done["report"]["compliance"]["redactions"].values()) == 50
    # the inputs folder is the user's own file: the planted values are really there
    assert len(grep([inputs], values)) == len(plant()["file"]) == 12


@pytest.mark.slow
def test_compliance_command(tmp_path):
    from test_cli import cli

    (tmp_path / "sales.csv").write_text(
        "id,region,price,quantity,contact\n1,north,10,2,jane.doe@example.org\n"
        "2,south,5,3,536-22-1234\n"
    )
    ran = cli(
        "run",
        "Analyse revenue by region in sales.csv, key sk-proj-abcdefghijklmnop12345",
        "--thread",
        "c1",
        "--json",
        home=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    assert "sk-proj-abcdefghijklmnop12345" not in ran.stdout + ran.stderr
    shown = cli("compliance", "c1", "--json", home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["redactions"] == {"api_key": 1, "email": 1, "ssn": 1}
    assert {i["where"].split("/")[0] for i in report["items"]} == {"request", "attempts"}
    assert report["outcome"] == "pass" and set(report["classifications"].values()) == {"internal"}
    assert json.loads(ran.stdout)["compliance"]["redactions"] == report["redactions"]
    assert not Path(tmp_path, "state.db").read_bytes().count(b"536-22-1234")


def test_the_readme_policy_file_is_valid(tmp_path):
    from test_readme import file_block

    path = tmp_path / "policy.yaml"
    path.write_text(file_block("policy.yaml"))
    policy = load_policy(path)
    assert policy.action("card") == "mask" and policy.action("api_key") == "refuse"
    assert policy.classification.handlers("restricted").allows_model("offline")


async def test_the_protected_store_keeps_the_sqlite_stores_batching(tmp_path):
    """Puts cancelled mid-flight (the dispatcher cancels the writers of attempts it hedged or
    stopped): sent straight to the SQLite store's ``abatch``, a cancel between its ``BEGIN``
    and ``COMMIT`` left the connection inside a transaction, and every later write failed with
    "cannot start a transaction within a transaction" (the crash-resume job did). Through the
    store's own queue, as without the wrapper, a cancelled caller cancels nothing there."""
    import asyncio

    from orchestrator_graph.persistence import open_persistence

    namespace = ("orchestrator_graph", "runs", "r1", "attempts")
    async with open_persistence(tmp_path) as (_saver, store):
        for round_ in range(20):
            writes = [
                asyncio.create_task(store.aput(namespace, f"t{i}#{round_}", {"n": f"u{i}@x.org"}))
                for i in range(10)
            ]
            await asyncio.sleep(0.0005 * (round_ % 5))
            for write in writes[::2]:
                write.cancel()
            await asyncio.gather(*writes, return_exceptions=True)
        await store.aput(namespace, "after", {"note": "mail z@example.org"})
        after = await store.aget(namespace, "after")
    assert after is not None and after.value == {"note": "mail [REDACTED:email]"}


def test_the_redaction_key_is_kept_so_processes_agree(tmp_path):
    """With no key and no data folder configured, two processes started together make one key
    (mode 0600, in the default data folder beside the audit key) and fingerprint a secret
    alike, so a value is counted once across the processes of a deployment."""
    import os
    import subprocess
    import sys

    code = (
        "from orchestrator_graph.protection.redact import default_redactor\n"
        "r, found = default_redactor(), []\n"
        "r.text('key sk-proj-abcdefghijklmnopqrstuvwx', found)\n"
        "print(r.fingerprint(found[0]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_GRAPH_")}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    prints = {run.communicate(timeout=60)[0].strip() for run in runs}
    assert all(run.returncode == 0 for run in runs)
    assert len(prints) == 1 and len(prints.pop()) == 20
    key = tmp_path / ".orchestrator-graph" / "redaction.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text()) == 64
    assert [p.name for p in key.parent.iterdir()] == ["redaction.key"]  # no drafts left behind
