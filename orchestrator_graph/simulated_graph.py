"""A graph with a seeded simulated team, served next to the orchestrator (``langgraph.json``:
``simulated``) to try monitoring, alerts and the dashboard without real workers: give it a
declared plan whose tasks need the skill ``sim``; each task sleeps its ``effort`` in seconds on
the worker it gets, and about one attempt in eight comes back defective (QA rejects it)."""

from __future__ import annotations

from orchestrator_graph.graph import create_orchestrator
from orchestrator_graph.simulation import simulated_workers

graph = create_orchestrator(workers=simulated_workers()).compile(name="simulated")
