"""The grounding check: numbers and names a worker's model wrote must come from somewhere.

Deterministic: every number (digits or a number word from "two" up) and every name (a
capitalised word or phrase inside a sentence) in the worker's text must appear in its task
(title, description, inputs), its tool results (the rest of its output) or the approved upstream
outputs it was given. A number matches when it equals one there up to the rounding it is written
with, or as a percentage of one; list lengths and table sizes count as given. The text is every
string in ``TEXT_FIELDS`` of a dict output (a written report's body as well as its summary), or
the whole output when it is a string; Markdown headings, list items and table cells start a
sentence, so a single capitalised word there is not taken for a name."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from orchestrator_graph.models import Check, Task

TEXT_FIELDS = ("summary", "markdown", "text", "answer", "content")
"""The fields of a dict output a model writes (the rest is taken as tool results)."""

_NUMBER = re.compile(r"(?<!\w)\d[\d,]*(?:\.\d+)?")
_WORDS = {
    w: n
    for n, w in enumerate(
        [
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ],
        start=2,
    )
}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_WORDS) + r")\b", re.I)
_NAME = re.compile(r"\b[A-Z][a-zA-Z]+(?:[ -][A-Z][a-zA-Z]+)*\b")
_SENTENCE_START = re.compile(  # Markdown headings, list items and table cells start one too
    r"(^|[.!?:;\n]\s*|\]\s*|\"\s*|\(\s*|\|\s*|(?:^|\n)[ \t]*(?:#{1,6}|[-*+>]|\d+[.)])[ \t]+)$"
)
_GENERIC = {
    "i", "a", "an", "the", "this", "that", "these", "those", "it", "its", "we", "our", "they",
    "and", "or", "but", "of", "in", "on", "for", "with", "by", "to", "as", "at", "no", "not",
    "total", "average", "mean", "median", "overall", "report", "data", "table", "summary",
    "analysis", "markdown", "csv", "json", "id", "ids", "ok", "na", "n", "none", "null",
}  # fmt: skip


def _numbers(text: str) -> Iterator[tuple[float, int]]:
    """(value, decimals written) of each number in ``text``."""
    for match in _NUMBER.finditer(text):
        raw = match.group().rstrip(",").replace(",", "")
        if not raw or raw == ".":
            continue
        decimals = len(raw.partition(".")[2])
        yield float(raw), decimals
    for match in _NUMBER_WORD.finditer(text):
        yield float(_WORDS[match.group().lower()]), 0


def _sizes(value: Any) -> Iterator[float]:
    """The lengths of every list and dict inside a value."""
    if isinstance(value, dict):
        yield float(len(value))
        for item in value.values():
            yield from _sizes(item)
    elif isinstance(value, list):
        yield float(len(value))
        for item in value:
            yield from _sizes(item)


def _grounded_number(value: float, decimals: int, known: list[float]) -> bool:
    if value in (0.0, 1.0):
        return True
    slack = 0.5 * 10**-decimals + 1e-9
    return any(abs(value - k) <= slack or abs(value / 100 - k) <= slack / 100 for k in known)


def _names(text: str) -> Iterator[str]:
    for match in _NAME.finditer(text):
        before = text[: match.start()]
        if _SENTENCE_START.search(before):
            words = match.group().split()
            if len(words) == 1:
                continue  # a capital at the start of a sentence says nothing
            yield " ".join(words[1:])
            continue
        yield match.group()


def grounding_check(
    task: Task, output: Any, upstream: Mapping[str, Any] | None = None
) -> Check | None:
    """``None`` when the output has no model-written text; else whether it is grounded."""
    if isinstance(output, str):
        texts, tools = [output], None
    elif isinstance(output, dict) and any(isinstance(output.get(f), str) for f in TEXT_FIELDS):
        texts = [output[f] for f in TEXT_FIELDS if isinstance(output.get(f), str)]
        tools = {k: v for k, v in output.items() if k not in TEXT_FIELDS}
    else:
        return None
    numbers = {(v, d) for text in texts for v, d in _numbers(text) if v not in (0.0, 1.0)}
    names = {n for text in texts for n in _names(text) if n.lower() not in _GENERIC}
    # Cheapest source first: most figures come from the output's own tool results.
    sources = (
        lambda: tools,
        lambda: task.model_dump(include={"title", "description", "inputs"}),
        lambda: dict(upstream or {}),
    )
    for given in sources:
        if not numbers and not names:
            break
        value = given()
        source = json.dumps(value, default=str)[:2_000_000]
        known = [v for v, _ in _numbers(source)] + list(_sizes(value))
        numbers = {(v, d) for v, d in numbers if not _grounded_number(v, d, known)}
        lowered = source.lower()
        names = {n for n in names if n.lower() not in lowered}
    shown = sorted({_shown(v, d) for v, d in numbers})
    missing = [*(f"number {n}" for n in shown), *(f"name {n!r}" for n in sorted(names))]
    return Check(
        name="grounded",
        passed=not missing,
        detail=""
        if not missing
        else "not in the task, its tool results or approved upstream outputs: "
        + ", ".join(missing[:10]),
    )


def _shown(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"
