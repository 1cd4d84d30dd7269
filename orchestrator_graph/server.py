"""The graph ``langgraph.json`` serves as ``orchestrator``: the default team on the offline
model, compiled at import (the server gives it its checkpointer and store). Importing the
package does not import this module."""

from __future__ import annotations

from orchestrator_graph.graph import create_orchestrator

graph = create_orchestrator().compile(name="orchestrator")
