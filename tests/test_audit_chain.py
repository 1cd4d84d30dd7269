"""The tamper-evident audit log: a run's chain verifies untouched; changing, deleting, inserting,
reordering or re-chaining entries in the database without the key is caught at the first bad
entry by `orchestrator-graph audit THREAD --verify` (exit 1) and by ``AuditLog.verify``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from test_cli import cli

from orchestrator_graph.auditlog import GENESIS, AuditRecord, canonical

pytestmark = pytest.mark.slow
KEY = "k" * 40


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("audited")
    done = cli("run", "--example", "--thread", "t1", "--json", home=home, **env())
    assert done.returncode == 0, done.stderr
    return home, json.loads(done.stdout)["run_id"]


def env() -> dict[str, str]:
    return {"ORCHESTRATOR_GRAPH_AUDIT_KEY": KEY}


def chain(db: sqlite3.Connection, run_id: str) -> list[dict]:
    rows = db.execute(
        "SELECT value FROM store WHERE prefix = ? ORDER BY key",
        (f"orchestrator_graph.audit.{run_id}",),
    ).fetchall()
    return [json.loads(v) for (v,) in rows]


def rewrite(db: sqlite3.Connection, run_id: str, records: list[dict]) -> None:
    prefix = f"orchestrator_graph.audit.{run_id}"
    (created,) = db.execute("SELECT created_at FROM store WHERE prefix = ?", (prefix,)).fetchone()
    db.execute("DELETE FROM store WHERE prefix = ?", (prefix,))
    for r in records:
        db.execute(
            "INSERT INTO store (prefix, key, value, created_at, updated_at) VALUES (?,?,?,?,?)",
            (prefix, f"{r['seq']:09d}", json.dumps(r), created, created),
        )
    db.commit()


def forged_mac(key: bytes, r: dict, prev: str) -> str:
    header = canonical([r["seq"], r["event"], r["actor"], r["action"], r["digest"], prev])
    return hmac.new(key, header, hashlib.sha256).hexdigest()


def change(records):
    records[2]["payload"]["worker"] = "mallory"
    return records, 3, "payload does not match"


def change_with_digest(records):
    r = records[2]
    r["actor"], r["payload"]["worker"] = "mallory", "mallory"
    r["digest"] = hashlib.sha256(canonical(r["payload"])).hexdigest()
    return records, 3, "MAC does not match"


def delete(records):
    del records[2]
    return records, 3, "missing (deleted)"


def insert(records):
    forged = {
        **records[2],
        "event": "attempt:extra#1",
        "actor": "mallory",
        "prev": records[2]["mac"],
    }
    forged["mac"] = "f" * 64
    shifted = [{**r, "seq": r["seq"] + 1} for r in records[3:]]
    return [*records[:3], {**forged, "seq": 4}, *shifted], 4, "MAC does not match"


def reorder(records):
    a, b = records[2], records[3]
    records[2], records[3] = {**b, "seq": 3}, {**a, "seq": 4}
    return records, 3, "does not follow"


def rechain(records):
    """Every entry re-signed, consistently, with a key that is not the deployment's."""
    records[1]["payload"]["verdict"], prev = "reject", GENESIS
    for r in records:
        r["digest"] = hashlib.sha256(canonical(r["payload"])).hexdigest()
        r["prev"], r["mac"] = prev, forged_mac(b"attacker-key-000000000", r, prev)
        prev = r["mac"]
    return records, 1, "MAC does not match"


@pytest.mark.parametrize("tamper", [change, change_with_digest, delete, insert, reorder, rechain])
def test_tampering_is_found_at_the_first_bad_entry(finished, tmp_path, tamper):
    home, run_id = finished
    shutil.copytree(home, tmp_path / "copy")
    with sqlite3.connect(tmp_path / "copy" / "store.db") as db:
        records, first_bad, reason = tamper(chain(db, run_id))
        rewrite(db, run_id, records)
    checked = cli("audit", "t1", "--verify", "--json", home=tmp_path / "copy", **env())
    assert checked.returncode == 1, checked.stderr
    result = json.loads(checked.stdout)
    assert result["ok"] is False and result["broken"]["seq"] == first_bad
    assert reason in result["broken"]["reason"]
    text = cli("audit", "t1", "--verify", home=tmp_path / "copy", **env())
    assert text.returncode == 1 and f"entry {first_bad} is broken" in text.stderr


@pytest.mark.parametrize("dropped", [1, 3])
def test_deleting_the_newest_entries_is_found_against_the_head(finished, tmp_path, dropped):
    """The chain alone cannot tell a deleted end from an end; the head kept outside the
    database (beside the key) can, and appends afterwards leave the gap in sight."""
    home, run_id = finished
    shutil.copytree(home, tmp_path / "copy")
    with sqlite3.connect(tmp_path / "copy" / "store.db") as db:
        records = chain(db, run_id)
        rewrite(db, run_id, records[:-dropped])
    first = len(records) - dropped + 1
    checked = cli("audit", "t1", "--verify", "--json", home=tmp_path / "copy", **env())
    assert checked.returncode == 1, checked.stderr
    result = json.loads(checked.stdout)
    assert result["broken"]["seq"] == first and result["head"] == len(records)
    which = f"entry {first} is" if dropped == 1 else f"entries {first}-{len(records)} are"
    assert f"{which} missing (deleted from the end)" in result["broken"]["reason"]

    async def append_and_verify():
        from orchestrator_graph.auditlog import AuditLog
        from orchestrator_graph.persistence import open_persistence

        async with open_persistence(tmp_path / "copy") as (_saver, store):
            log = AuditLog(store, run_id, KEY.encode(), tmp_path / "copy" / "audit-heads")
            (added,) = await log.append([("later", "someone", "note", {})])
            return added, await log.verify()

    added, again = asyncio.run(append_and_verify())
    assert added.seq == len(records) + 1  # numbered after the head, not after what is left
    assert again.broken is not None and again.broken.seq == first
    assert "missing (deleted)" in again.broken.reason


def test_an_untouched_run_verifies_and_exports(finished, tmp_path):
    home, run_id = finished
    out = tmp_path / "audit.jsonl"
    checked = cli("audit", "t1", "--verify", "--export", str(out), "--json", home=home, **env())
    assert checked.returncode == 0, checked.stderr
    result = json.loads(checked.stdout)
    records = [AuditRecord.model_validate_json(line) for line in out.read_text().splitlines()]
    assert result == {
        "run_id": run_id,
        "entries": len(records),
        "ok": True,
        "broken": None,
        "purged": 0,
        "head": len(records),  # the head kept beside the key agrees
    }
    actions = [r.action for r in records]
    assert actions.count("attempt approve") == 6 and actions.count("assignment") == 6
    assert {"plan approve", "deliverable approve", "run done", "started"} <= set(actions)
    assignment = next(r for r in records if r.action == "assignment")
    assert assignment.payload["reasons"], "each assignment says why its worker was chosen"
    started = next(r for r in records if r.action == "started")
    assert started.actor.startswith("local:")


def test_the_wrong_key_fails_from_the_first_entry(finished):
    home, _ = finished
    checked = cli(
        "audit",
        "t1",
        "--verify",
        "--json",
        home=home,
        ORCHESTRATOR_GRAPH_AUDIT_KEY="another-key-0123456789",
    )
    assert checked.returncode == 1 and json.loads(checked.stdout)["broken"]["seq"] == 1


def test_a_crash_and_the_resume_are_chained_with_who_resumed(tmp_path):
    """A thread whose driving process died (its owner record names a pid that is gone) is
    resumed: the chain records the crash found, the resume with the answer and who gave it."""
    import socket
    import subprocess
    import sys

    plan = {
        "tasks": [
            {
                "id": "load",
                "title": "load",
                "skills": ["data_collection"],
                "inputs": {"path": "gone.csv"},
            }
        ]
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    args = ("run", "x", "--plan", "plan.json", "--thread", "c1", "--escalation", "human")
    assert cli(*args, home=tmp_path, **env()).returncode == 3
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = {"pid": int(gone.stdout), "host": socket.gethostname(), "since": 1.0}
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.execute(
            "INSERT INTO store (prefix, key, value, created_at, updated_at) VALUES "
            "('orchestrator_graph.cli_owners', 'c1', ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            (json.dumps(dead),),
        )
    done = cli("resume", "c1", "--answer", "skip", home=tmp_path, **env())
    assert done.returncode == 1, done.stderr
    out = tmp_path / "audit.jsonl"
    checked = cli("audit", "c1", "--verify", "--export", str(out), home=tmp_path, **env())
    assert checked.returncode == 0, checked.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    by_action = {r["action"]: r for r in records}
    assert by_action["crash found"]["payload"]["pid"] == dead["pid"]
    assert by_action["resumed"]["payload"]["answer"] == "skip"
    assert by_action["resumed"]["actor"].startswith("local:")
    decision = by_action["decision skip"]
    assert decision["actor"] == by_action["resumed"]["actor"]
