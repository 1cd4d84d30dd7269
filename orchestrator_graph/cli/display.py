"""What a person sees: the live task table and progress, the status view, the report rendered as
Markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:  # the heavy modules load when a command needs them: --help stays fast
    from rich.console import Group

    from orchestrator_graph.models import StatusSnapshot


class Display:
    """Live view: task table, progress bar and the latest events; plain lines when not a TTY."""

    def __init__(self, console: Console, live: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        from orchestrator_graph.rendering import ChangeFilter

        self.console, self.live = console, live
        self.tasks: dict[str, dict[str, Any]] = {}
        self.events: list[str] = []
        self.printed = ChangeFilter()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
        )
        self.bar = self.progress.add_task("tasks", total=0)
        self.status = ""

    def render(self) -> Group:
        from rich.console import Group

        table = Table("task", "status", "worker", "attempt", "score", expand=True)
        for tid, t in self.tasks.items():
            table.add_row(
                escape(tid),
                t.get("status", ""),
                escape(t.get("worker") or ""),
                str(t.get("attempt") or ""),
                "" if t.get("score") is None else f"{t['score']:.2f}",
            )
        lines = [escape(line) for line in (self.status, *self.events[-6:])]
        return Group(table, self.progress, *lines)

    def on_event(self, ev: dict[str, Any]) -> None:
        from orchestrator_graph.models import StatusSnapshot
        from orchestrator_graph.rendering import event_line

        tid, kind = ev.get("task_id"), ev["kind"]
        if kind == "status":  # the live line, not an event to list
            self.status = _status_line(StatusSnapshot.model_validate(ev["data"]))
            return
        line = event_line(ev)
        self.events.append(line)
        if kind == "planned":
            self.progress.update(self.bar, total=ev["data"]["tasks"])
        if tid:
            task = self.tasks.setdefault(tid, {})
            status = {
                "task_started": "running",
                "task_completed": "approved",
                "task_queued": "queued",
                "task_failed": "retrying",
                "escalated": "escalated",
            }.get(kind)
            if status:
                task["status"] = status
            if ev.get("worker"):
                task["worker"] = ev["worker"]
            if ev.get("attempt"):
                task["attempt"] = ev["attempt"]
            if "score" in ev.get("data", {}):
                task["score"] = ev["data"]["score"]
        if kind == "progress":
            self.progress.update(self.bar, completed=ev["data"].get("approved", 0))
        if not self.live and self.printed.changed((ev["node"], kind, tid or ""), line):
            self.console.print(line, markup=False, highlight=False)


def _status_line(snapshot: StatusSnapshot) -> str:
    """ETA, deadline, slip and each worker's utilisation, on one line."""
    load = ", ".join(
        f"{name} {w.utilisation:.0%}" + (f" ({w.status})" if w.status == "offline" else "")
        for name, w in snapshot.workers.items()
    )
    deadline = f" of {snapshot.deadline:g}s deadline" if snapshot.deadline else ""
    return (
        f"elapsed {snapshot.elapsed:.2f}s{deadline}, ETA {snapshot.eta or 0:.2f}s more, "
        f"critical-path slip {snapshot.critical_path_slip:.2f}s; utilisation: {load}"
    )


def show_report(report: dict[str, Any]) -> None:
    """The deliverable rendered as Markdown, then how the run went, in plain lines."""
    from rich.markdown import Markdown

    from orchestrator_graph.rendering import deliverable_markdown

    out = Console()
    out.print(Markdown(deliverable_markdown(report.get("deliverable") or {})))
    lines = [
        f"\nrun {report['run_id']}: {report['status']} in {report['makespan']:.2f}s "
        f"(planned {report['planned_duration']:.2f}s) {report['reason']}"
    ]
    lines += [
        f"bottleneck {b['kind']}: {b['detail']}; {b['response']}"
        for b in report.get("bottlenecks", [])
    ]
    for r in report.get("replans", []):
        verb = "replaced" if r["applied"] else "did not replace"
        lines.append(f"re-plan: {verb} {', '.join(r['removed']) or r['failed']}: {r['reason']}")
    lines += [
        f"decision on {d['task_id']}: {d['action']} by {d['by']}: {d['reason']}"
        for d in report.get("decisions", [])
    ]
    for line in lines:
        out.print(line, markup=False, highlight=False)


def show_status(summary: dict[str, Any], live: StatusSnapshot | None) -> None:
    out = Console()
    lines = [
        f"thread {summary['thread']}: {summary['status']}; "
        f"next: {', '.join(summary['next']) or 'none'}"
    ]
    if summary["status"] == "interrupted":
        lines.append(f"its process is gone: orchestrator-graph resume {summary['thread']}")
    if live:
        lines.append(_status_line(live))
    lines += [
        f"bottleneck {b['kind']}: {b['detail']}; {b['response']}"
        for b in summary["bottlenecks"][-5:]
    ]
    for line in lines:
        out.print(line, markup=False, highlight=False)
    table = Table("task", "status", "worker", "attempts", "score")
    for tid, rec in summary["tasks"].items():
        table.add_row(
            escape(tid),
            rec["status"],
            escape(rec.get("worker") or ""),
            str(rec["attempts"]),
            "" if rec.get("score") is None else f"{rec['score']:.2f}",
        )
    out.print(table)
    from orchestrator_graph.hierarchy import tree_lines  # the package's, only when shown

    for line in tree_lines(summary.get("children", [])):
        out.print(line, markup=False, highlight=False)
