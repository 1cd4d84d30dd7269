"""Backup and restore of everything a deployment keeps: checkpoints, store (ledger, status,
history, audit chain) and plan memory, as one archive with a manifest of SHA-256 checksums.

Each engine makes its own consistent copy while runs go on: SQLite's online backup API for
``state.db``, ``store.db`` and Chroma's ``chroma.sqlite3``, ``pg_dump`` (one MVCC snapshot) for
PostgreSQL. The audit key is not in the archive: it stays where it is held, outside the data."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from contextlib import closing
from pathlib import Path

from pydantic import BaseModel

from orchestrator_graph.errors import ConnectionFailed, InputError
from orchestrator_graph.ledger import THREAD_OWNERS
from orchestrator_graph.worker_leases import TABLE as SLOTS

FORMAT = 1
DATABASES = ("state.db", "store.db")


class Manifest(BaseModel):
    format: int = FORMAT
    created_at: float
    engine: str  # "sqlite" or "postgres"
    files: dict[str, str]  # archive member -> SHA-256


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (the online backup API)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        closing(sqlite3.connect(source, timeout=30)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _chroma_copy(source: Path, target: Path) -> None:
    """Chroma's folder: its SQLite catalogue through the backup API, its index files as they
    are (Chroma writes them from the catalogue's log, which the copy holds)."""
    for path in sorted(source.rglob("*")):
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".sqlite3":
            _sqlite_copy(path, dest)
        elif path.is_file() and not path.name.endswith(("-wal", "-shm", "-journal")):
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)


# libpq's environment variables: a connection given this way is not on the command line,
# where every user of the machine can read it (``ps``), password included.
_PG_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


def pg_environment(postgres_url: str) -> dict[str, str]:
    """The connection ``postgres_url`` names, as libpq environment variables."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(postgres_url)
    except Exception as error:  # psycopg's ProgrammingError; its text may hold the URL
        raise InputError(f"--postgres: not a PostgreSQL URL ({type(error).__name__})") from None
    unknown = sorted(set(params) - set(_PG_ENV))
    if unknown:
        raise InputError(
            f"--postgres: {', '.join(unknown)} cannot be passed to the PostgreSQL tools; "
            f"use only {', '.join(_PG_ENV)}"
        )
    return {_PG_ENV[k]: str(v) for k, v in params.items() if v is not None}


def _engine_tool(name: str, postgres_url: str, *args: str) -> None:
    """A PostgreSQL client tool connected through its environment; its failure in one line."""
    found = shutil.which(name)
    if not found:
        raise InputError(f"{name} is not on PATH: install the PostgreSQL client tools")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env |= pg_environment(postgres_url)
    done = subprocess.run([found, *args], capture_output=True, text=True, timeout=600, env=env)
    if done.returncode:
        reason = " ".join(done.stderr.split())[:300]
        raise ConnectionFailed(f"{name} failed (exit {done.returncode}): {reason}")


def backup(out: Path, home: Path, postgres_url: str | None, chroma: Path | None) -> Manifest:
    """Write the archive ``out``; the manifest it holds."""
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        if postgres_url:
            dump = stage / "postgres.dump"
            _engine_tool(
                "pg_dump",
                postgres_url,
                "--format=custom",
                "--no-owner",
                f"--exclude-table-data={SLOTS}",  # leases of attempts running now: not data
                "-f",
                str(dump),
            )
        else:
            for name in DATABASES:
                if (home / name).is_file():
                    _sqlite_copy(home / name, stage / name)
        if chroma is not None and chroma.is_dir():
            _chroma_copy(chroma, stage / "chroma")
        files = {
            str(p.relative_to(stage)): _sha256(p) for p in sorted(stage.rglob("*")) if p.is_file()
        }
        if not files:
            raise InputError(f"nothing to back up: no databases in {home}")
        manifest = Manifest(
            created_at=time.time(), engine="postgres" if postgres_url else "sqlite", files=files
        )
        (stage / "manifest.json").write_text(manifest.model_dump_json(indent=2))
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(out, "w:gz") as tar:
            for p in sorted(stage.iterdir()):
                tar.add(p, arcname=p.name)
    return manifest


def _unpack(archive: Path, stage: Path) -> Manifest:
    """The archive checked member by member against its manifest."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(stage, filter="data")
        manifest = Manifest.model_validate_json((stage / "manifest.json").read_text())
    except (OSError, tarfile.TarError, ValueError) as error:
        raise InputError(f"backup {archive}: not a readable backup ({error})") from None
    for name, digest in manifest.files.items():
        member = stage / name
        if not member.is_file() or _sha256(member) != digest:
            raise InputError(f"backup {archive}: {name} does not match its checksum")
    return manifest


def restore(archive: Path, home: Path, postgres_url: str | None, chroma: Path | None) -> Manifest:
    """Restore into a fresh data folder (or an empty PostgreSQL database); refuses to overwrite."""
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        manifest = _unpack(archive, stage)
        if (manifest.engine == "postgres") != bool(postgres_url):
            raise InputError(
                f"backup {archive} holds a {manifest.engine} snapshot: restore it "
                + ("with --postgres URL" if manifest.engine == "postgres" else "without --postgres")
            )
        busy = [n for n in DATABASES if (home / n).exists() and not postgres_url]
        if postgres_url and _holds_runs(postgres_url):
            busy.append("the database's checkpoints")
        if chroma is not None and chroma.exists() and any(chroma.iterdir()):
            busy.append(str(chroma))
        if busy:
            where = "the database" if postgres_url else str(home)
            raise InputError(
                f"restore into {where}: {', '.join(busy)} exist; use a fresh folder and database"
            )
        if postgres_url:
            database = pg_environment(postgres_url).get("PGDATABASE")
            if not database:
                raise InputError("--postgres: name the database to restore into (…/NAME)")
            _engine_tool(
                "pg_restore",
                postgres_url,
                "--no-owner",
                "--exit-on-error",
                "-d",
                database,  # a name: the rest of the connection comes from the environment
                str(stage / "postgres.dump"),
            )
        home.mkdir(parents=True, exist_ok=True)
        for name in DATABASES:
            if (stage / name).is_file():
                shutil.copy2(stage / name, home / name)
        if chroma is not None and (stage / "chroma").is_dir():
            shutil.copytree(stage / "chroma", chroma, dirs_exist_ok=True)
    _forget_owners(home, postgres_url)
    return manifest


OWNERS = ".".join(THREAD_OWNERS)  # the store's prefix column joins a namespace with dots


def _holds_runs(postgres_url: str) -> bool:
    import psycopg

    with psycopg.connect(postgres_url) as db:
        found = db.execute("SELECT to_regclass('public.checkpoints')").fetchone()
    return bool(found and found[0])


def _forget_owners(home: Path, postgres_url: str | None) -> None:
    """A restored thread is driven by no process: the snapshot's owner records (pids of the
    machine it came from, possibly alive here) would make ``resume`` refuse it, and worker
    leases taken by attempts running at backup time would hold their slots until they expire."""
    if postgres_url:
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute("DELETE FROM store WHERE prefix = %s", (OWNERS,))
            if db.execute("SELECT to_regclass(%s)", (SLOTS,)).fetchone() != (None,):
                # an older archive's worker leases: the restored run would wait for them
                db.execute(f"UPDATE {SLOTS} SET holder = NULL, expires_at = NULL")  # noqa: S608
        return
    if (home / "store.db").is_file():
        with closing(sqlite3.connect(home / "store.db")) as lite, lite:
            lite.execute("DELETE FROM store WHERE prefix = ?", (OWNERS,))
