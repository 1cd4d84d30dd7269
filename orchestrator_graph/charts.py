"""Charts for the dashboard, the CLI and the evals, drawn with plotly (imported when a chart is
made, never with the package): the planned-vs-actual Gantt chart, the learning curve, and the
portfolio and team charts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from orchestrator_graph.models import Slot

COLORS = {
    "planned": "#9ecae1",
    "approve": "#2b8a3e",
    "reject": "#e8590c",
    "error": "#868e96",
    "running": "#1c7ed6",
    "critical": "#212529",
}
FONT = dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=13, color="#212529")
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def _layout(fig: Any, title: str, height: int) -> Any:
    fig.update_layout(
        title=dict(text=title, x=0, xanchor="left", font=dict(size=16)),
        font=FONT,
        height=height,
        margin=dict(l=10, r=20, t=80, b=40),
        plot_bgcolor="white",
        paper_bgcolor="white",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
        hoverlabel=dict(font_size=12),
    )
    return fig


def lanes(slots: Iterable[Slot]) -> list[tuple[Slot, str]]:
    """Each bar with the row it is drawn on: its worker's name, and ``worker #2`` … for bars that
    would overlap an earlier bar of the same worker (a worker with capacity above one)."""
    out: list[tuple[Slot, str]] = []
    ends: dict[str, list[float]] = defaultdict(list)
    for slot in sorted(slots, key=lambda s: (s.worker, s.start, s.finish)):
        rows = ends[slot.worker]
        free = next((i for i, end in enumerate(rows) if end <= slot.start + 1e-9), None)
        if free is None:
            rows.append(slot.finish)
            free = len(rows) - 1
        rows[free] = slot.finish
        out.append((slot, slot.worker if free == 0 else f"{slot.worker} #{free + 1}"))
    return out


GAP_SHARE = 0.25  # an idle stretch longer than this share of the busy time is drawn short
GAP_KEEP = 0.05  # as this share of the busy time


class TimeAxis:
    """Piecewise-linear time for the Gantt chart: stretches where no bar runs (a human
    deciding, a paused budget) that last longer than a quarter of the busy time are drawn short
    and marked with how long they lasted, so one long wait does not flatten every other bar."""

    def __init__(self, slots: Iterable[Slot]) -> None:
        segments: list[list[float]] = []
        for start, finish in sorted((s.start, s.finish) for s in slots):
            if segments and start <= segments[-1][1]:
                segments[-1][1] = max(segments[-1][1], finish)
            else:
                segments.append([start, finish])
        busy = sum(b - a for a, b in segments) or 1.0
        self.keep = GAP_KEEP * busy
        self.cuts = [
            (a[1], b[0])
            for a, b in zip(segments, segments[1:], strict=False)
            if b[0] - a[1] > GAP_SHARE * busy
        ]
        self.end = segments[-1][1] if segments else 1.0

    def __call__(self, t: float) -> float:
        shift = 0.0
        for a, b in self.cuts:
            if t >= b:
                shift += (b - a) - self.keep
            elif t > a:
                return t - shift - (t - a) + (t - a) * self.keep / (b - a)
        return t - shift

    def ticks(self, n: int = 8) -> tuple[list[float], list[str]]:
        """Tick positions (drawn time) and labels (real seconds): round values inside the busy
        stretches, and where each cut stretch ends."""
        import math

        raw = max(self(self.end), 1e-9) / n
        step = 10 ** math.floor(math.log10(raw))
        step *= next(m for m in (1, 2, 5, 10) if raw <= m * step)
        bounds = [0.0, *(x for cut in self.cuts for x in cut), self.end]
        real: list[float] = []
        for lo, hi in zip(bounds[::2], bounds[1::2], strict=True):
            real += [lo] if lo > 0 else []
            real += [k * step for k in range(math.ceil(lo / step), int(hi / step) + 1)]
        kept: list[float] = []
        for t in sorted(set(real)):
            if not kept or self(t) - self(kept[-1]) >= step / 2:
                kept.append(t)
        return [self(t) for t in kept], [f"{round(t, 3):g} s" for t in kept]


def _label(slot: Slot) -> str:
    return (
        slot.task_id if not slot.attempt or slot.attempt == 1 else f"{slot.task_id} #{slot.attempt}"
    )


def _bar_trace(
    rows: list[tuple[Slot, str]], name: str, color: str, critical: set[str], axis: TimeAxis
) -> Any:
    go = _go()
    return go.Bar(
        name=name,
        orientation="h",
        base=[axis(s.start) for s, _ in rows],
        x=[max(axis(s.finish) - axis(s.start), 1e-3) for s, _ in rows],
        y=[lane for _, lane in rows],
        text=[_label(s) for s, _ in rows],
        textposition="inside",
        insidetextanchor="middle",
        textangle=0,
        textfont=dict(color="white", size=12),
        marker=dict(
            color=color,
            line=dict(
                color=[COLORS["critical"] if s.task_id in critical else "white" for s, _ in rows],
                width=[2.5 if s.task_id in critical else 1 for s, _ in rows],
            ),
        ),
        customdata=[
            [s.task_id, s.attempt or 1, s.verdict or "", s.start, s.finish] for s, _ in rows
        ],
        hovertemplate="<b>%{customdata[0]}</b> attempt %{customdata[1]} %{customdata[2]}"
        "<br>%{customdata[3]:.2f}s – %{customdata[4]:.2f}s<extra>%{fullData.name}</extra>",
    )


def gantt_figure(
    planned: Sequence[Slot],
    actual: Sequence[Slot],
    *,
    critical: Iterable[str] = (),
    title: str = "Planned vs actual",
) -> Any:
    """Two panels on one time axis: the plan above, every attempt as it ran below (one labelled
    bar per attempt, coloured by QA verdict). Critical-path tasks have a dark outline."""
    from plotly.subplots import make_subplots

    crit = set(critical)
    axis = TimeAxis([*planned, *actual])
    plan_rows, act_rows = lanes(planned), lanes(actual)
    n_plan = len({lane for _, lane in plan_rows}) or 1
    n_act = len({lane for _, lane in act_rows}) or 1
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        row_heights=[n_plan, n_act],
        subplot_titles=("Planned schedule", "Actual: one bar per attempt"),
    )
    if plan_rows:
        planned_bars = _bar_trace(plan_rows, "planned", COLORS["planned"], crit, axis)
        fig.add_trace(planned_bars, row=1, col=1)
    for verdict, name in (("approve", "approved"), ("reject", "rejected"), (None, "running")):
        rows = [(s, lane) for s, lane in act_rows if s.verdict == verdict]
        if rows:
            color = COLORS["running" if verdict is None else verdict]
            fig.add_trace(_bar_trace(rows, name, color, crit, axis), row=2, col=1)
    for row in (1, 2):
        fig.update_yaxes(autorange="reversed", showgrid=False, row=row, col=1, title_text="")
    tickvals, ticktext = axis.ticks()
    fig.update_xaxes(
        showgrid=True, gridcolor="#eee", zeroline=False, tickvals=tickvals, ticktext=ticktext
    )
    for a, b in axis.cuts:
        fig.add_vline(
            x=axis(a) + axis.keep / 2,
            line=dict(color="#868e96", width=1, dash="dot"),
            annotation_text=f"idle {_duration(b - a)}",
            annotation_position="top",
            annotation_font=dict(size=11, color="#495057"),
        )
    fig.update_xaxes(title_text="seconds from the start of execution", row=2, col=1)
    fig.update_layout(barmode="overlay", bargap=0.25)
    return _layout(fig, title, height=160 + 38 * (n_plan + n_act))


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.1f} s"


def learning_curve_figure(series: Mapping[str, Sequence[Mapping[str, float]]]) -> Any:
    """Per run, in order, for each series (e.g. memory on / off): planning calls, QA failures and
    makespan, each in its own panel with labelled axes."""
    from plotly.subplots import make_subplots

    panels = (
        ("planner_calls", "Planning model calls"),
        ("qa_failures", "QA failures"),
        ("makespan", "Makespan (s)"),
    )
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in panels])
    go = _go()
    palette = ["#1c7ed6", "#adb5bd", "#2b8a3e", "#e8590c"]
    for i, (label, rows) in enumerate(series.items()):
        for col, (key, _) in enumerate(panels, start=1):
            fig.add_trace(
                go.Scatter(
                    x=list(range(1, len(rows) + 1)),
                    y=[r.get(key, 0) for r in rows],
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    showlegend=col == 1,
                    line=dict(color=palette[i % len(palette)], width=2),
                    marker=dict(size=5),
                ),
                row=1,
                col=col,
            )
            step = max(1, len(rows) // 10)
            fig.update_xaxes(
                title_text="run", tick0=1, dtick=step, row=1, col=col, gridcolor="#eee"
            )
            fig.update_yaxes(rangemode="tozero", gridcolor="#eee", row=1, col=col)
    return _layout(fig, "Learning curve: each run against the ones before it", height=360)


def runs_trend_figure(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Makespan against plan for each recent run (oldest left)."""
    go = _go()
    labels = [r["label"] for r in rows]
    fig = go.Figure(
        [
            go.Bar(
                name="actual", x=labels, y=[r["makespan"] for r in rows], marker_color="#1c7ed6"
            ),
            go.Scatter(
                name="planned",
                x=labels,
                y=[r["planned"] for r in rows],
                mode="markers",
                marker=dict(symbol="line-ew-open", size=26, line=dict(width=3, color="#212529")),
            ),
        ]
    )
    fig.update_yaxes(title_text="seconds", gridcolor="#eee", rangemode="tozero")
    return _layout(fig, "Makespan against plan, per run", height=340)


def stacked_figure(
    title: str, labels: Sequence[str], stacks: Mapping[str, Sequence[float]], unit: str
) -> Any:
    """One bar per label, stacked by series (tokens by role, cost by worker …)."""
    go = _go()
    shown = {name: ys for name, ys in stacks.items() if any(ys)}
    fig = go.Figure(
        [go.Bar(name=n, x=list(labels), y=list(ys), showlegend=True) for n, ys in shown.items()]
    )
    fig.update_layout(
        barmode="stack", colorway=["#1c7ed6", "#2b8a3e", "#e8590c", "#7048e8", "#f59f00", "#868e96"]
    )
    fig.update_yaxes(title_text=unit, gridcolor="#eee", rangemode="tozero")
    return _layout(fig, title, height=340)


def bars_figure(
    title: str, labels: Sequence[str], values: Sequence[float], unit: str, *, percent: bool = False
) -> Any:
    go = _go()
    fig = go.Figure(
        go.Bar(
            x=list(values),
            y=list(labels),
            orientation="h",
            marker_color="#1c7ed6",
            text=[f"{v:.0%}" if percent else f"{v:,.2f}" for v in values],
            textposition="outside",
            cliponaxis=False,
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(
        title_text=unit,
        gridcolor="#eee",
        tickformat=".0%" if percent else None,
        range=[0, 1.15] if percent else None,
    )
    return _layout(fig, title, height=120 + 34 * max(1, len(labels)))


def to_div(fig: Any, div_id: str) -> str:
    """The figure as an HTML fragment; plotly.js is included once by the page."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG)


def to_html(fig: Any) -> str:
    """A standalone HTML file with plotly.js inlined (opens offline)."""
    return fig.to_html(full_html=True, include_plotlyjs=True, config=PLOT_CONFIG)
