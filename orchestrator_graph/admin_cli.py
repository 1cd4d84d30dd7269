"""Admin commands: ``backup --out FILE``, ``restore FILE`` and ``purge THREAD`` (admin role)."""

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from orchestrator_graph.identity import local_identity


def register(app: typer.Typer, guard: Any, home_opt: Any, postgres_opt: Any) -> None:
    @app.command("backup")
    def backup_command(
        out: Annotated[Path, typer.Option("--out", help="the archive to write (.tar.gz)")],
        home: home_opt = None,
        postgres: postgres_opt = None,
    ) -> None:
        """A consistent snapshot of checkpoints, store and plan memory, with checksums."""

        async def go() -> int:
            from orchestrator_graph.backup import backup
            from orchestrator_graph.cli import memory_location
            from orchestrator_graph.persistence import data_dir

            local_identity().require("backup", "the data")
            manifest = backup(out, data_dir(home), postgres, Path(memory_location(home)))
            Console(stderr=True).print(f"backed up {len(manifest.files)} files to {out}")
            return 0

        guard(go())

    @app.command("restore")
    def restore_command(
        archive: Path, home: home_opt = None, postgres: postgres_opt = None
    ) -> None:
        """Restore a backup into a fresh data folder (and an empty database with --postgres)."""

        async def go() -> int:
            from orchestrator_graph.backup import restore
            from orchestrator_graph.cli import memory_location
            from orchestrator_graph.persistence import data_dir

            local_identity().require("backup", "the data")
            manifest = restore(archive, data_dir(home), postgres, Path(memory_location(home)))
            Console(stderr=True).print(f"restored {len(manifest.files)} files from {archive}")
            return 0

        guard(go())
