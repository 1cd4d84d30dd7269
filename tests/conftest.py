from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

# Subprocesses (the CLI, README examples) import this checkout's package, not an installed copy.
_ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_ROOT, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
)
os.environ.setdefault("LANGSMITH_TRACING", "false")
os.environ.setdefault("LANGSMITH_TEST_TRACKING", "false")
PG_ADMIN = os.environ.get("OG_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(autouse=True)
def own_plan_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test remembers runs in its own Chroma folder."""
    folder = tmp_path / "chroma"
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_CHROMA", str(folder))
    return folder


@pytest.fixture(autouse=True)
def own_sandbox_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test may read from the working directory and its own temp folder, and write only
    inside its temp folder (the deployment's roots: ``orchestrator_graph.sandbox``)."""
    monkeypatch.setenv(
        "ORCHESTRATOR_GRAPH_INPUT_ROOTS", os.pathsep.join([os.getcwd(), str(tmp_path)])
    )
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_OUTPUT_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test session's own, dropped at the end."""
    psycopg = pytest.importorskip("psycopg")
    name = f"og_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}: {err}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def make_database() -> Iterator[Callable[[], str]]:
    """Makes PostgreSQL databases of this test's own (a fresh team history, a restore target),
    dropped after the test."""
    psycopg = pytest.importorskip("psycopg")
    names: list[str] = []

    def make() -> str:
        names.append(f"og_test_{os.getpid()}_{uuid.uuid4().hex[:8]}")
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{names[-1]}"')
        return PG_ADMIN.rsplit("/", 1)[0] + f"/{names[-1]}"

    yield make
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def persistence(kind: str, tmp: Path, postgres_url: str | None) -> AsyncIterator[tuple]:
    if kind == "memory":
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.store.memory import InMemoryStore

        yield InMemorySaver(), InMemoryStore()
        return
    from orchestrator_graph.persistence import open_persistence

    async with open_persistence(tmp, postgres_url if kind == "postgres" else None) as pair:
        yield pair


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def saver_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_persistence(saver_kind: str, tmp_path: Path, request: pytest.FixtureRequest):
    url = request.getfixturevalue("postgres_url") if saver_kind == "postgres" else None
    return lambda: persistence(saver_kind, tmp_path, url)
