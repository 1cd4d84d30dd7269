"""The orchestrator's nodes, one module each, all written the same way: an ``async def
step(services, state, env)`` that ``Services.node`` turns into a LangGraph node. ``graph.py``
wires them."""
