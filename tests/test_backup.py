"""Backup and restore through the command line, on SQLite and PostgreSQL: a thread backed up
mid-run (paused for a human, or still running) and restored into a fresh folder and database
resumes and completes as an uninterrupted run does, without re-running finished work."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from test_cli import cli

from orchestrator_graph import tools
from orchestrator_graph.backup import restore
from orchestrator_graph.errors import InputError

pytestmark = pytest.mark.slow
PLAN = {
    "tasks": [
        {
            "id": "a",
            "title": "load sales",
            "skills": ["data_collection"],
            "inputs": {"path": str(tools.SAMPLES / "sales.csv")},
        },
        {
            "id": "b",
            "title": "load a lost file",
            "skills": ["data_collection"],
            "inputs": {"path": "gone.csv"},
        },
        {
            "id": "c",
            "title": "revenue by region",
            "skills": ["analysis"],
            "depends_on": ["a"],
            "inputs": {"group_by": "region"},
        },
    ]
}
ENV = {"ORCHESTRATOR_GRAPH_AUDIT_KEY": "backup-test-key-0123456789"}


def og(home, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The CLI with its own data folder and plan memory for ``home`` (a machine of its own)."""
    return cli(*args, home=home, **ENV, ORCHESTRATOR_GRAPH_CHROMA=str(home / "chroma"), **env)


def essentials(report: dict) -> dict:
    """What must not depend on being backed up and restored (ids and times aside)."""
    return {
        "status": report["status"],
        "tasks": {t: (r["status"], r["worker"], r["score"]) for t, r in report["tasks"].items()},
        "decisions": [(d["task_id"], d["action"], d["by"]) for d in report["decisions"]],
        "deliverable": report["deliverable"],
    }


def paused(home, *db: str) -> subprocess.CompletedProcess:
    (home / "plan.json").write_text(json.dumps(PLAN))
    args = ("run", "x", "--plan", "plan.json", "--thread", "t", "--escalation", "human")
    waiting = og(home, *args, "--json", *db)
    assert waiting.returncode == 3, waiting.stderr
    return waiting


def answered(home, *db: str) -> dict:
    done = og(home, "resume", "t", "--answer", "skip", "--json", *db)
    assert done.returncode == 1, done.stderr  # finished; b was skipped, so not all approved
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict:
    """The same run, paused and answered with no backup in between (the engine is not part of
    the result: both engines are compared with this one)."""
    straight = tmp_path_factory.mktemp("straight")
    paused(straight)
    return answered(straight)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_backed_up_while_paused_restored_and_resumed(engine, expected, tmp_path, make_database):
    dbs = [("--postgres", make_database()) for _ in range(2)] if engine == "postgres" else None
    at = lambda i: dbs[i] if dbs else ()  # noqa: E731
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir(), target.mkdir()
    paused(source, *at(0))
    archive = tmp_path / "b.tar.gz"
    made = og(source, "backup", "--out", str(archive), *at(0))
    assert made.returncode == 0, made.stderr
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest["engine"] == engine and all(len(d) == 64 for d in manifest["files"].values())
    assert any(f.startswith("chroma/") for f in manifest["files"])

    restored = og(target, "restore", str(archive), *at(1))
    assert restored.returncode == 0, restored.stderr
    report = answered(target, *at(1))
    assert essentials(report) == essentials(expected)
    assert report["tasks"]["a"]["attempts"] == 1  # finished before the backup: not run again
    verified = og(target, "audit", "t", "--verify", "--json", *at(1))
    assert json.loads(verified.stdout)["ok"], verified.stdout

    with pytest.raises(InputError, match="use a fresh folder"):  # never over live data
        restore(archive, target, dbs[1][1] if dbs else None, None)
    damaged = bytearray(archive.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    archive.write_bytes(bytes(damaged))
    with pytest.raises(InputError, match="backup .*(not a readable backup|checksum)"):
        restore(archive, tmp_path / "elsewhere", None, None)
    assert not (tmp_path / "elsewhere" / "state.db").exists()


def test_the_postgres_tools_get_the_connection_from_their_environment(
    tmp_path, make_database, monkeypatch
):
    """pg_dump and pg_restore run with neither URL nor password in their argv (which ``ps``
    shows every user): libpq's PG* variables carry the connection."""
    import psycopg

    from orchestrator_graph import backup as backup_module

    source, target = make_database(), make_database()
    with psycopg.connect(source, autocommit=True) as db:
        db.execute("CREATE TABLE store (prefix text, key text, value text)")
        db.execute("INSERT INTO store VALUES ('kept', 'k', 'v')")
    with_password = lambda url: url.replace("postgres@", "postgres:pw-in-url-77@")  # noqa: E731
    seen: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def spy(argv, **kwargs):
        seen.append((list(argv), kwargs["env"]))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(backup_module.subprocess, "run", spy)
    archive = tmp_path / "pg.tar.gz"
    backup_module.backup(archive, tmp_path, with_password(source), None)
    backup_module.restore(archive, tmp_path / "fresh", with_password(target), None)
    assert [Path(argv[0]).name for argv, _ in seen] == ["pg_dump", "pg_restore"]
    for argv, env in seen:
        assert not any("pw-in-url" in a or "postgresql://" in a or "@" in a for a in argv), argv
        assert env["PGPASSWORD"] == "pw-in-url-77" and env["PGHOST"] == "127.0.0.1"
    assert seen[1][0][seen[1][0].index("-d") + 1] == target.rsplit("/", 1)[1]
    with psycopg.connect(target) as db:
        assert db.execute("SELECT prefix, key, value FROM store").fetchall() == [("kept", "k", "v")]


def chained_plan() -> dict:
    """Six short simulated tasks in two chains of three: enough to back up mid-way."""
    tasks = [
        {
            "id": f"t{i}",
            "title": f"t{i}",
            "skills": ["sim"],
            "effort": 0.3,
            "depends_on": [f"t{i - 2}"] if i >= 2 else [],
            "acceptance": [{"kind": "has_keys", "keys": ["value"]}],
        }
        for i in range(6)
    ]
    return {"tasks": tasks}


def sim_graph(saver, store, side_effects):
    from orchestrator_graph import create_orchestrator
    from orchestrator_graph.simulation import simulated_team

    team = simulated_team(2, skills=("sim",), seed=3, side_effects=side_effects)
    return create_orchestrator(workers=team).compile(checkpointer=saver, store=store)


async def outcome(graph, config) -> dict:
    """What the run produced: its status and each task's approved value."""
    from orchestrator_graph.ledger import Ledger

    values = (await graph.aget_state(config)).values
    attempts = await Ledger(graph.store, values["run_id"]).attempts()
    approved = {r.task_id: r.output["value"] for r, v in attempts if v.verdict == "approve"}
    return {"status": values["report"]["status"], "values": approved}


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_backed_up_while_running_restored_and_resumed(
    engine, tmp_path, make_database, monkeypatch
):
    """The backup is taken while the run is executing (its dispatcher writing the ledger on
    the same database); the source run goes on to the end and is the uninterrupted result."""
    import asyncio
    import time

    from orchestrator_graph.auditlog import AuditLog
    from orchestrator_graph.backup import backup
    from orchestrator_graph.ledger import Ledger
    from orchestrator_graph.persistence import open_persistence

    urls = [make_database(), make_database()] if engine == "postgres" else [None, None]
    source, target, archive = tmp_path / "source", tmp_path / "target", tmp_path / "b.tar.gz"
    ran, resumed = tmp_path / "ran.log", tmp_path / "resumed.log"
    ran.touch()
    config = {"configurable": {"thread_id": "live"}}
    request = {"request": "six tasks", "plan": chained_plan()}
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_AUDIT_KEY", ENV["ORCHESTRATOR_GRAPH_AUDIT_KEY"])
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_HOME", str(source))  # each machine its own folder
    async with open_persistence(source, urls[0]) as (saver, store):
        graph = sim_graph(saver, store, ran)
        running = asyncio.create_task(graph.ainvoke(request, config))
        while len(ran.read_text().splitlines()) < 2:  # some work finished, some still to do
            assert not running.done(), "the run ended before it could be backed up"
            await asyncio.sleep(0.02)
        await asyncio.to_thread(backup, archive, source, urls[0], None)
        assert not running.done(), "the backup was not taken while the run was executing"
        await running
        expected = await outcome(graph, config)
    assert expected["status"] == "done" and len(expected["values"]) == 6

    restore(archive, target, urls[1], None)
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_HOME", str(target))
    async with open_persistence(target, urls[1]) as (saver, store):
        graph = sim_graph(saver, store, resumed)
        run_id = (await graph.aget_state(config)).values["run_id"]
        kept = {r.task_id for r, _v in await Ledger(store, run_id).attempts()}
        assert 1 <= len(kept) < 6  # the backup holds finished work and not all of it
        began = time.monotonic()
        await graph.ainvoke(None, config)  # resumed from the backup's last checkpoint
        assert time.monotonic() - began < 10  # no worker lease of the backup's time held it
        assert await outcome(graph, config) == expected
        key = ENV["ORCHESTRATOR_GRAPH_AUDIT_KEY"].encode()
        assert (await AuditLog(store, run_id, key, target / "audit-heads").verify()).ok
    again = {line.split()[1] for line in resumed.read_text().splitlines()}
    assert again == {f"t{i}" for i in range(6)} - kept  # nothing in the backup ran again
