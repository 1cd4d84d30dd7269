"""Size limits at the boundary, and reading structured files within them.

Everything a person or a model hands in (a request, a plan file, a roster file) is bounded before
it is parsed or planned: a file is read at most ``MAX_FILE_BYTES`` (``/dev/zero`` does not grow
memory), parsing depth is bounded (100k nested brackets are refused, not a ``RecursionError``),
and a plan has at most ``MAX_TASKS`` tasks. Each refusal is one line naming the input and the
limit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator_graph.errors import InputError, LimitError

MAX_REQUEST_CHARS = 20_000
MAX_FILE_BYTES = 4_000_000
MAX_DEPTH = 40
MAX_TASKS = 5_000
MAX_CAPACITY = 10_000
RECENT_RUNS = 50  # runs the operations views gather unless told otherwise


def check_request(request: Any) -> str:
    """The request as a non-empty string within ``MAX_REQUEST_CHARS``."""
    if not isinstance(request, str) or not request.strip():
        raise InputError(
            "the input needs a non-empty 'request' string or a human message in 'messages'"
        )
    if len(request) > MAX_REQUEST_CHARS:
        raise LimitError(
            f"the request is {len(request):,} characters; the limit is {MAX_REQUEST_CHARS:,}: "
            "put the data in files and name them in the request"
        )
    return request


def read_bounded(path: Path, what: str) -> str:
    """A text file of at most ``MAX_FILE_BYTES``, read without trusting its reported size."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise InputError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise LimitError(f"{what} {path} is larger than {MAX_FILE_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {error.start})") from None


def parse_structured(text: str, path: Path, what: str) -> Any:
    """YAML (``.yaml``/``.yml``) or JSON, nested at most ``MAX_DEPTH`` deep."""
    import yaml

    if "\x00" in text:
        raise InputError(f"{what} {path}: binary data (NUL bytes), not YAML or JSON")
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except RecursionError:
        raise LimitError(f"{what} {path} is nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, yaml.YAMLError) as error:
        raise InputError(f"{what} {path}: {' '.join(str(error).split())}") from None
    if depth(data) > MAX_DEPTH:
        raise LimitError(f"{what} {path} is nested deeper than {MAX_DEPTH} levels")
    return data


def depth(value: Any) -> int:
    """How deeply lists and mappings nest in ``value`` (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        stack.extend((child, level + 1) for child in children)
    return deepest


def load_plan_file(path: Path) -> dict[str, Any]:
    """A plan file, bounded, parsed, validated against ``Plan`` and ``MAX_TASKS``; as JSON."""
    from pydantic import ValidationError

    from orchestrator_graph.models import Plan
    from orchestrator_graph.registry import field_errors

    data = parse_structured(read_bounded(path, "plan file"), path, "plan file")
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if isinstance(tasks, list) and len(tasks) > MAX_TASKS:
        raise LimitError(f"plan file {path} has {len(tasks):,} tasks; the limit is {MAX_TASKS:,}")
    try:
        return Plan.model_validate(data).model_dump(mode="json")
    except ValidationError as error:
        raise InputError(f"plan file {path}: {field_errors(error)}") from None
