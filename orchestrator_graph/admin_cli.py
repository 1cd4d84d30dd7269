"""Admin commands: ``backup --out FILE``, ``restore FILE`` and ``purge THREAD`` (admin role)."""

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console


def register(app: typer.Typer, guard: Any, home_opt: Any, postgres_opt: Any) -> None:
    @app.command("backup")
    def backup_command(
        out: Annotated[Path, typer.Option("--out", help="the archive to write (.tar.gz)")],
        home: home_opt = None,
        postgres: postgres_opt = None,
    ) -> None:
        """A consistent snapshot of checkpoints, store and plan memory, with checksums."""
        guard(_archive("backed up", out, home, postgres))

    @app.command("restore")
    def restore_command(
        archive: Path, home: home_opt = None, postgres: postgres_opt = None
    ) -> None:
        """Restore a backup into a fresh data folder (and an empty database with --postgres)."""
        guard(_archive("restored", archive, home, postgres))

    @app.command("purge")
    def purge_command(
        thread: Annotated[str | None, typer.Argument(help="the thread to remove")] = None,
        older_than: Annotated[
            float | None,
            typer.Option(help="instead: every thread whose last step is older than DAYS days"),
        ] = None,
        home: home_opt = None,
        postgres: postgres_opt = None,
    ) -> None:
        """Remove runs (checkpoints, ledger, status, memory, audit payloads); admin only. The
        audit chain stays and still verifies."""

        async def go() -> int:
            import json

            from orchestrator_graph.errors import InputError

            if (thread is None) == (older_than is None):
                raise InputError("give a THREAD or --older-than DAYS (one of them)")
            if older_than is not None and not older_than >= 0:
                raise InputError(f"--older-than {older_than}: a number of days, 0 or more")
            found = await purge_threads(thread, older_than, home, postgres)
            print(json.dumps([p.model_dump() for p in found], indent=2))
            return 0

        guard(go())


async def _archive(done: str, archive: Path, home: str | None, postgres: str | None) -> int:
    """``backup`` to, or ``restore`` from, ``archive``: the data folder, database and memory."""
    from orchestrator_graph.backup import backup, restore
    from orchestrator_graph.cli.driving import memory_location
    from orchestrator_graph.identity import local_identity
    from orchestrator_graph.persistence import data_dir

    local_identity().require("backup", "the data")
    act = backup if done == "backed up" else restore
    manifest = act(archive, data_dir(home), postgres, Path(memory_location(home)))
    Console(stderr=True).print(f"{done} {len(manifest.files)} files ({archive})")
    return 0


async def purge_threads(
    thread: str | None, older_than: float | None, home: str | None, postgres: str | None
) -> list[Any]:
    from orchestrator_graph.auditlog import use_home
    from orchestrator_graph.cli.driving import memory_location
    from orchestrator_graph.graph import create_orchestrator
    from orchestrator_graph.identity import local_identity
    from orchestrator_graph.memory import MemoryHandle
    from orchestrator_graph.persistence import open_persistence
    from orchestrator_graph.purge import purge_runs

    identity = local_identity()
    identity.require("purge", "runs")
    use_home(home)
    memory = MemoryHandle(memory_location(home))
    age = None if older_than is None else older_than * 86400
    async with open_persistence(home, postgres) as (saver, store):
        graph = create_orchestrator().compile(checkpointer=saver, store=store)
        return await purge_runs(
            graph, identity=identity, thread=thread, older_than=age, memory=memory
        )
