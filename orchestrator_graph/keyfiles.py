"""Secrets and small records kept in files outside the databases (the audit key, the
redaction key, the audit chains' heads): created once, mode 0600, safely when several processes
race to create the same file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from orchestrator_graph.errors import InputError


def kept_secret(path: Path, *, create: bool = True, minimum: int = 16) -> bytes:
    """The secret held in ``path``; a random one written there first when it is missing and
    ``create``. Every racing process reads the same secret: each writes a draft of its own and
    links it into place, which only one link can do."""
    if not path.is_file():
        if not create:
            raise InputError(f"key file {path}: no such file")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, secrets.token_hex(32), replace=False)
    key = path.read_bytes().strip()
    if len(key) < minimum:
        raise InputError(f"key file {path}: {len(key)} bytes; it needs at least {minimum}")
    return key


def write_private(path: Path, text: str, *, replace: bool = True) -> None:
    """``text`` into ``path`` (mode 0600) whole or not at all: a reader never sees half of it.
    With ``replace=False`` an existing file is kept."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    try:
        if replace:
            os.replace(draft, path)
        else:
            os.link(draft, path)  # atomic, and fails if another process got there first
    except FileExistsError:
        pass
    finally:
        draft.unlink(missing_ok=True)
