"""Checkpointer and store for runs outside the server: SQLite files by default, Postgres by URL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

HOME_ENV = "ORCHESTRATOR_GRAPH_HOME"
POSTGRES_ENV = "ORCHESTRATOR_GRAPH_POSTGRES_URL"


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    path = Path(override or os.environ.get(HOME_ENV) or ".orchestrator-graph").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


@asynccontextmanager
async def open_persistence(
    home: str | os.PathLike[str] | None = None, postgres_url: str | None = None
) -> AsyncIterator[tuple[BaseCheckpointSaver, BaseStore]]:
    """``(checkpointer, store)``: Postgres when a URL is given (or set in the environment),
    otherwise ``state.db`` and ``store.db`` in the data directory."""
    url = postgres_url or os.environ.get(POSTGRES_ENV)
    if url:
        try:
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
            from langgraph.store.postgres.aio import AsyncPostgresStore
        except ImportError as err:
            raise RuntimeError(
                "Postgres needs the extra: pip install 'orchestrator-graph[postgres]'"
            ) from err
        async with (
            AsyncPostgresSaver.from_conn_string(url) as saver,
            AsyncPostgresStore.from_conn_string(url) as store,
        ):
            await saver.setup()
            await store.setup()
            yield saver, store
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.store.sqlite.aio import AsyncSqliteStore

    folder = data_dir(home)
    async with (
        AsyncSqliteSaver.from_conn_string(str(folder / "state.db")) as saver,
        AsyncSqliteStore.from_conn_string(str(folder / "store.db")) as store,
    ):
        await store.setup()
        yield saver, store
