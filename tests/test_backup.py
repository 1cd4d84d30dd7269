"""Backup and restore through the command line, on SQLite and PostgreSQL: a thread backed up
mid-run (paused for a human, or still running) and restored into a fresh folder and database
resumes and completes as an uninterrupted run does, without re-running finished work."""

from __future__ import annotations

import json
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
from conftest import PG_ADMIN
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


@pytest.fixture
def fresh_database():
    psycopg = pytest.importorskip("psycopg")
    names = []

    def make() -> str:
        names.append(f"og_backup_{uuid.uuid4().hex[:8]}")
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{names[-1]}"')
        return PG_ADMIN.rsplit("/", 1)[0] + f"/{names[-1]}"

    yield make
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict:
    """The same run, paused and answered with no backup in between (the engine is not part of
    the result: both engines are compared with this one)."""
    straight = tmp_path_factory.mktemp("straight")
    paused(straight)
    return answered(straight)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_backed_up_while_paused_restored_and_resumed(engine, expected, tmp_path, fresh_database):
    dbs = [("--postgres", fresh_database()) for _ in range(2)] if engine == "postgres" else None
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
    tmp_path, fresh_database, monkeypatch
):
    """pg_dump and pg_restore run with neither URL nor password in their argv (which ``ps``
    shows every user): libpq's PG* variables carry the connection."""
    import psycopg

    from orchestrator_graph import backup as backup_module

    source, target = fresh_database(), fresh_database()
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
