"""The Markdown report the default team's reporter writes: a document for a person, built from
the upstream results (an analysis, a validation), with tables and formatted numbers.

Numbers: whole numbers with thousands separators (``1,234``), others with two decimals
(``97,500.88``). Headings are fixed words (``Summary``, ``Revenue by region``, ``Statistics``,
``Validation findings``, ``Data``, ``Notes``) so acceptance criteria can name them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator_graph.textsafe import md_cell, md_line

MAX_FINDINGS = 50  # rows of the findings table; the rest are counted


def number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def table(header: list[str], rows: list[list[Any]], numeric: set[int]) -> list[str]:
    """A Markdown table; the columns in ``numeric`` are right-aligned and formatted."""
    align = ["---:" if i in numeric else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(map(md_cell, header)) + " |", "| " + " | ".join(align) + " |"]
    for row in rows:
        cells = [md_cell(number(v)) if i in numeric else md_cell(v) for i, v in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report_markdown(title: str, upstream: dict[str, Any]) -> str:
    """Title, summary, the grouped measures, statistics, validation findings, where the data
    came from, the workers' notes, and the tasks it drew on."""
    analysis = next((o for o in upstream.values() if _has(o, "statistics")), None)
    validation = next((o for o in upstream.values() if _has(o, "issues")), None)
    lines = [f"# {md_line(title)}", "", "## Summary", "", md_line(_summary(analysis, validation))]
    lines.append("")
    if analysis and analysis.get("groups"):
        lines += _groups(analysis)
    if analysis and analysis.get("statistics"):
        lines += ["## Statistics", ""]
        rows = [
            [m, s["count"], s["sum"], s["mean"], s["min"], s["max"]]
            for m, s in analysis["statistics"].items()
        ]
        lines += table(["measure", "count", "sum", "mean", "min", "max"], rows, {1, 2, 3, 4, 5})
        lines.append("")
    if validation is not None:
        lines += _findings(validation)
    lines += _data(analysis, validation)
    notes = [(t, o.get("summary")) for t, o in upstream.items() if isinstance(o, dict)]
    if any(note for _t, note in notes):
        lines += ["## Notes", ""]
        lines += [f"- **{md_line(t)}**: {md_line(note)}" for t, note in notes if note] + [""]
    lines.append(f"Drawn from the approved results of: {md_line(', '.join(upstream))}.")
    return "\n".join(lines).rstrip() + "\n"


def _has(output: Any, key: str) -> bool:
    return isinstance(output, dict) and key in output


def _summary(analysis: dict[str, Any] | None, validation: dict[str, Any] | None) -> str:
    parts = []
    if analysis:
        parts.append(f"{number(analysis['rows'])} rows analysed")
        stats = analysis.get("statistics", {})
        parts += [f"total {m} {number(s['sum'])}" for m, s in list(stats.items())[:2]]
    if validation:
        parts.append(
            f"{number(validation['checked_rows'])} rows validated, "
            f"{number(len(validation['issues']))} findings, "
            f"{number(validation.get('held_back', 0))} rows held back from the analysis"
        )
    return ("; ".join(parts) + ".") if parts else "No analysis or validation results."


def _groups(analysis: dict[str, Any]) -> list[str]:
    group, groups = analysis.get("group_by") or "group", analysis["groups"]
    measures = list(analysis.get("statistics", {}))
    lead = "revenue" if "revenue" in measures else (measures[0] if measures else "rows")
    others = [m for m in measures if m != lead]
    header = [group, lead, *others, "rows"]
    rows = [[g, v.get(lead), *(v.get(m) for m in others), v.get("rows")] for g, v in groups.items()]
    totals = ["**total**", *(sum(r[i] or 0 for r in rows) for i in range(1, len(header)))]
    lines = [f"## {md_line(lead.capitalize())} by {md_line(group)}", ""]
    lines += table(header, [*rows, totals], set(range(1, len(header))))
    return [*lines, ""]


def _findings(validation: dict[str, Any]) -> list[str]:
    issues = validation["issues"]
    lines = ["## Validation findings", ""]
    if not issues:
        return [*lines, f"No findings in {number(validation['checked_rows'])} rows.", ""]
    rows = [[i["row"], i.get("id"), i["column"], i["problem"]] for i in issues[:MAX_FINDINGS]]
    lines += table(["row", "id", "column", "problem"], rows, {0})
    if len(issues) > MAX_FINDINGS:
        lines += ["", f"… and {number(len(issues) - MAX_FINDINGS)} more."]
    return [*lines, ""]


def _data(analysis: dict[str, Any] | None, validation: dict[str, Any] | None) -> list[str]:
    source = (validation or analysis or {}).get("source", "")
    names = [Path(p.strip()).name for p in source.split(",") if p.strip()]
    items = [f"- Sources: {md_line(', '.join(names))}"] if names else []
    if validation:
        dropped = validation.get("dropped", 0)
        items.append(f"- Cleaning dropped {_rows(dropped)} (empty or duplicate)")
        kept = validation["checked_rows"] - validation.get("held_back", 0)
        items.append(
            f"- Validation passed {number(kept)} of {_rows(validation['checked_rows'])}; "
            f"{_rows(validation.get('held_back', 0))} held back"
        )
    if analysis and analysis.get("measures"):
        items.append(f"- Measures analysed: {md_line(', '.join(analysis['measures']))}")
    return ["## Data", "", *items, ""] if items else []


def _rows(n: int) -> str:
    return f"{number(n)} row{'' if n == 1 else 's'}"
