"""Terminal output for people: the deliverable as Markdown, event lines safe for rich, and
progress lines printed only when they change (for logs and pipes).

Every string a user or a model wrote (requests, titles, task ids, reasons, results) reaches rich
through ``escape`` or as a ``Text``/``Markdown`` object, never as markup: ``[offline]`` and
``[recall]`` show as written and ``[/b]`` in a request cannot crash the display."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from orchestrator_graph.textsafe import fence, md_line

__all__ = ["ChangeFilter", "deliverable_markdown", "escape", "event_line"]


def deliverable_markdown(deliverable: dict[str, Any]) -> str:
    """The synthesizer's deliverable as one Markdown document: title, summary, sections. A
    section body that is already Markdown (a report) keeps its own headings, one level down."""
    lines = [f"# {md_line(deliverable.get('title') or 'Result')}", ""]
    if summary := (deliverable.get("summary") or "").strip():
        lines += [fence(summary), ""]
    for section in deliverable.get("sections") or []:
        body = fence(_demote(section["body"]))  # Markdown stays Markdown; HTML tags become text
        lines += [f"## {md_line(section.get('heading', ''))}", "", body, ""]
    if disputed := deliverable.get("disputed"):
        lines += ["## Disputed", "", md_line(", ".join(map(str, disputed))), ""]
    return "\n".join(lines).rstrip() + "\n"


def _demote(body: str) -> str:
    """Headings inside a section move two levels down so they nest under it."""
    out = []
    for line in str(body).splitlines():
        heading = line.startswith("#") and line.lstrip("#").startswith(" ")
        out.append("##" + line if heading else line)
    return "\n".join(out).strip()


def event_line(event: dict[str, Any]) -> str:
    """One progress event as a plain line (not markup)."""
    parts = [f"[{event['node']}]", event["kind"], event.get("task_id"), event.get("worker")]
    return " ".join(p for p in [*parts, str(event.get("message", ""))] if p)[:160]


class ChangeFilter:
    """Lines keyed by what they describe; a line is let through only when it differs from the
    last one with the same key (``progress 0/1`` printed once, not 92 times)."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, ...], str] = {}

    def changed(self, key: tuple[str, ...], line: str) -> bool:
        if self.last.get(key) == line:
            return False
        self.last[key] = line
        return True
