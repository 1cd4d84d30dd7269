"""Where the default team may read and write: input roots and one output root.

A path is resolved (symlinks followed) before it is checked, so a link inside a root that
points outside it is refused; ``..`` is refused outright; file names made from ids are
sanitised. The deployment sets the roots (environment), not the run: a server client's
``output_dir`` must fall inside the output root."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from orchestrator_graph.errors import SandboxError

INPUT_ROOTS_ENV = "ORCHESTRATOR_GRAPH_INPUT_ROOTS"  # os.pathsep-separated folders
OUTPUT_ROOT_ENV = "ORCHESTRATOR_GRAPH_OUTPUT_ROOT"
DEFAULT_OUTPUT_ROOT = "orchestrator-output"
SAMPLES = Path(__file__).resolve().parent / "samples"
_UNSAFE = re.compile(r"(?:[^A-Za-z0-9._-]|\.{2,})+")


def input_roots() -> list[Path]:
    """The folders tools may read from: ``ORCHESTRATOR_GRAPH_INPUT_ROOTS`` (default: the
    working directory), and always the bundled samples."""
    given = os.environ.get(INPUT_ROOTS_ENV)
    roots = [Path(p) for p in given.split(os.pathsep) if p] if given else [Path.cwd()]
    return [*(r.expanduser().resolve() for r in roots), SAMPLES]


def output_root() -> Path:
    return Path(os.environ.get(OUTPUT_ROOT_ENV) or DEFAULT_OUTPUT_ROOT).expanduser().resolve()


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _no_dotdot(path: str, what: str) -> None:
    if ".." in Path(path).parts:
        raise SandboxError(f"{what} {path!r}: '..' is not allowed in paths")


def resolve_input(path: str) -> Path:
    """The file ``path`` names, inside an input root (a relative path is looked up in each root,
    then by name in the bundled samples); refused if it or its link target is outside them."""
    _no_dotdot(path, "input path")
    roots = input_roots()
    given = Path(path).expanduser()
    candidates = [given] if given.is_absolute() else [r / given for r in roots]
    candidates.append(SAMPLES / given.name)
    for candidate in candidates:
        if not candidate.is_file():
            continue
        real = candidate.resolve()
        if not any(_inside(real, r) for r in roots):
            shown = f"{path!r}" + (f" (a link to {real})" if real != candidate.absolute() else "")
            raise SandboxError(
                f"input path {shown} is outside the input roots "
                f"{', '.join(map(str, roots))}; set {INPUT_ROOTS_ENV} to allow a folder"
            )
        return real
    raise FileNotFoundError(
        f"no such data file: {path!r} (looked in the input roots "
        f"{', '.join(map(str, roots))} and in the bundled samples)"
    )


def output_dir(requested: str = "") -> Path:
    """The folder a run writes to: the output root, or ``requested`` if it is inside it."""
    root = output_root()
    if not requested:
        return root
    _no_dotdot(requested, "output_dir")
    folder = Path(requested).expanduser()
    folder = (folder if folder.is_absolute() else root / folder).resolve()
    if not _inside(folder, root):
        raise SandboxError(
            f"output_dir {requested!r} is outside the output root {root}; "
            f"the deployment sets the root with {OUTPUT_ROOT_ENV}"
        )
    return folder


def safe_name(*parts: str, suffix: str = "") -> str:
    """A file name made from ids: only letters, digits, '.', '_' and '-', no leading dot, at
    most 120 characters (a hash keeps names distinct when they had to be changed)."""
    raw = "-".join(parts)
    name = _UNSAFE.sub("_", raw).lstrip(".") or "file"
    if name != raw or len(name) > 120:
        name = f"{name[:100]}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"
    return name + suffix


def output_file(folder: str, *parts: str, suffix: str = "") -> Path:
    """A path for a new file in ``folder`` (itself inside the output root), named from ids."""
    base = output_dir(folder)
    path = base / safe_name(*parts, suffix=suffix)
    if path.is_symlink():
        raise SandboxError(f"output file {path} is a symbolic link; refusing to write through it")
    return path


def trust_output_dir(folder: str) -> None:
    """The CLI's user is the deployment: ``--output-dir`` becomes this process's output root
    (unless the environment already sets one, which it must then fall inside)."""
    if folder and not os.environ.get(OUTPUT_ROOT_ENV):
        os.environ[OUTPUT_ROOT_ENV] = str(Path(folder).expanduser().resolve())
