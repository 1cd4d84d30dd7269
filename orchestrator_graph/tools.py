"""Table tools the default team uses: real work on local CSV/JSON files, no network."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from orchestrator_graph.sandbox import SAMPLES, resolve_input

__all__ = ["SAMPLES"]

Table = dict[str, Any]  # {"source": str, "columns": [str], "rows": [dict]}


def resolve_path(path: str) -> Path:
    """The file inside the input roots (``sandbox.resolve_input``), else a bundled sample."""
    return resolve_input(path)


def load_table(path: str) -> Table:
    file = resolve_path(path)
    if file.suffix == ".csv":
        with file.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [dict(r) for r in reader]
            columns = list(reader.fieldnames or [])
    elif file.suffix == ".json":
        data = json.loads(file.read_text(encoding="utf-8"))
        rows = data["rows"] if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{file}: expected a list of objects or {{'rows': [...]}}")
        columns = list(dict.fromkeys(k for r in rows for k in r))
    else:
        raise ValueError(f"{file}: only .csv and .json tables are supported")
    return {"source": str(file), "columns": columns, "rows": rows}


def _number(value: Any) -> Any:
    """A cell as a number where it is one, exactly: integers of any size stay integers, other
    numbers become floats; blanks become None; words (also "inf" and "nan") stay text."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def combine(tables: list[Table]) -> Table:
    rows = [r for t in tables for r in t["rows"]]
    columns = list(dict.fromkeys(c for t in tables for c in t["columns"]))
    return {"source": ", ".join(t["source"] for t in tables), "columns": columns, "rows": rows}


def clean_table(table: Table) -> Table:
    """Coerce numbers, blanks to null, drop empty and duplicate rows; revenue = price * qty."""
    seen: set[str] = set()
    rows, dropped = [], 0
    for raw in table["rows"]:
        row = {c: _number(raw.get(c)) for c in table["columns"]}
        key = json.dumps(row, sort_keys=True, default=str)
        if all(v is None for v in row.values()) or key in seen:
            dropped += 1
            continue
        seen.add(key)
        if (
            {"price", "quantity"} <= row.keys()
            and _numeric(row["price"])
            and _numeric(row["quantity"])
        ):
            revenue = row["price"] * row["quantity"]  # None when it overflows: not a number
            row["revenue"] = round(revenue, 2) if _numeric(float(revenue)) else None
        rows.append(row)
    columns = list(
        dict.fromkeys([*table["columns"], *(["revenue"] if rows and "revenue" in rows[0] else [])])
    )
    return {"source": table["source"], "columns": columns, "rows": rows, "dropped": dropped}


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Columns that identify rows (ids, keys, codes) or price something per unit: summing them means
# nothing, so they are not analysed as measures unless a task names them.
_NOT_MEASURES = re.compile(
    r"^(id|key|code|no|number)$|_(id|key|code|no)$|^unit_|(^|_)(price|rate|ratio|pct|percent)$",
    re.I,
)


def measures(table: Table, wanted: list[str] | None = None) -> list[str]:
    """The columns to analyse: those named (each must be a numeric column), else every numeric
    column that is not an id or a per-unit figure."""
    numeric = [
        col
        for col in table["columns"]
        if (values := [r.get(col) for r in table["rows"]])
        and sum(map(_numeric, values)) >= len(values) / 2
    ]
    if wanted:
        unknown = [c for c in wanted if c not in numeric]
        if unknown:
            raise ValueError(
                f"cannot analyse {', '.join(map(repr, unknown))}: numeric columns are "
                f"{', '.join(numeric) or 'none'}"
            )
        return list(wanted)
    return [c for c in numeric if not _NOT_MEASURES.search(c)]


def describe(
    table: Table, group_by: str | None = None, wanted: list[str] | None = None
) -> dict[str, Any]:
    """Count, sum, mean, spread and range of each measure; with ``group_by``, each measure's
    sum and the row count per group. Cells that are numbers written as text (a table straight
    from a CSV file) count as numbers."""
    table = {**table, "rows": [{c: _number(v) for c, v in r.items()} for r in table["rows"]]}
    stats: dict[str, dict[str, float]] = {}
    for col in measures(table, wanted):
        values = [r[col] for r in table["rows"] if _numeric(r.get(col))]
        stats[col] = {
            "count": len(values),
            "sum": round(sum(values), 4),
            "mean": round(statistics.fmean(values), 4),
            "stdev": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
        }
    out: dict[str, Any] = {
        "source": table.get("source", ""),
        "rows": len(table["rows"]),
        "measures": list(stats),
        "statistics": stats,
    }
    if group_by:
        if group_by not in table["columns"]:
            raise ValueError(
                f"cannot group by {group_by!r}: columns are {', '.join(table['columns'])}"
            )
        # int, not float: counts and whole-number measures stay whole
        groups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(int))
        for row in table["rows"]:
            group = groups[str(row.get(group_by))]
            group["rows"] += 1
            for col in stats:
                if _numeric(row.get(col)):
                    group[col] += row[col]
        out["group_by"] = group_by
        out["groups"] = {
            g: {c: round(v, 4) for c, v in cols.items()} for g, cols in sorted(groups.items())
        }
    return out


def validate_rows(table: Table) -> dict[str, Any]:
    """Missing values, negative amounts and duplicate ids, each with its row number and id.
    The rows with no finding pass on as the table (``rows``) that analysis may use; the others
    are held back and counted."""
    issues: list[dict[str, Any]] = []
    ids: dict[Any, int] = {}
    flagged: set[int] = set()
    for i, row in enumerate(table["rows"], start=1):
        found = [
            (col, "missing value" if value is None else f"negative value {value}")
            for col, value in row.items()
            if value is None or (_numeric(value) and value < 0)
        ]
        if row.get("id") is not None:
            if row["id"] in ids:
                found.append(("id", f"duplicate of row {ids[row['id']]}"))
            ids.setdefault(row["id"], i)
        issues += [{"row": i, "id": row.get("id"), "column": c, "problem": p} for c, p in found]
        flagged.update([i] if found else [])
    kept = [r for i, r in enumerate(table["rows"], start=1) if i not in flagged]
    return {
        "source": table.get("source", ""),
        "columns": table["columns"],
        "rows": kept,
        "checked_rows": len(table["rows"]),
        "held_back": len(flagged),
        "dropped": table.get("dropped", 0),
        "issues": issues,
        "passed": not issues,
    }


def write_text(path: Path, text: str) -> Path:
    """Write a new file or replace a regular one (making its folder), never through a symbolic
    link; returns the absolute path. Blocking: call in a thread."""
    path = path.absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path
