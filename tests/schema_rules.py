"""The rules providers document for structured-output schemas, as checks over a JSON schema.

OpenAI strict mode (Structured Outputs, "Supported schemas"): the root is an object; every object
has ``additionalProperties: false`` and lists every property in ``required`` (optional values are
unions with null); only the documented keywords; no ``$ref`` beside other keywords; at most 10
levels of nesting, 5,000 properties and 1,000 enum values. Anthropic (strict tool use / structured
outputs): objects closed with ``additionalProperties: false``; no numeric bounds, no string
lengths, ``minItems`` only 0 or 1; no recursive schemas. Gemini (function declarations, an OpenAPI
subset; ``$ref`` inlined by the client): every object names its properties (a free-form object is
rejected), one type per node, string enums only."""

from __future__ import annotations

from typing import Any

OPENAI_KEYWORDS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "anyOf",
    "enum",
    "const",
    "description",
    "title",
    "$defs",
    "$ref",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
}
ANTHROPIC_FORBIDDEN = {
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
}


def _nodes(schema: dict[str, Any], path: str = "$", depth: int = 0):
    """Every sub-schema with its path and object-nesting depth."""
    yield path, schema, depth
    deeper = depth + (schema.get("type") == "object")
    for name, sub in (schema.get("properties") or {}).items():
        yield from _nodes(sub, f"{path}.{name}", deeper)
    if isinstance(schema.get("items"), dict):
        yield from _nodes(schema["items"], f"{path}[]", deeper)
    for i, sub in enumerate(schema.get("anyOf") or []):
        yield from _nodes(sub, f"{path}|{i}", depth)
    for name, sub in (schema.get("$defs") or {}).items():
        yield from _nodes(sub, f"#/$defs/{name}", 0)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{*}}", deeper)


def _is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind)


def openai_strict(schema: dict[str, Any]) -> list[str]:
    problems = []
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("$: the root must be an object, not a union")
    properties = enums = 0
    for path, node, depth in _nodes(schema):
        extra = sorted(set(node) - OPENAI_KEYWORDS)
        if extra:
            problems.append(f"{path}: keywords strict mode does not permit: {extra}")
        if "$ref" in node and len(node) > 1:
            problems.append(f"{path}: $ref beside other keywords")
        if depth > 10:
            problems.append(f"{path}: nested deeper than 10 levels")
        enums += len(node.get("enum") or [])
        if _is_object(node):
            props = node.get("properties") or {}
            properties += len(props)
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: object without additionalProperties: false")
            if not props:
                problems.append(f"{path}: free-form object (no properties)")
            if sorted(node.get("required") or []) != sorted(props):
                missing = sorted(set(props) - set(node.get("required") or []))
                problems.append(f"{path}: properties not required: {missing}")
    if properties > 5000:
        problems.append(f"$: {properties} properties, more than 5000")
    if enums > 1000:
        problems.append(f"$: {enums} enum values, more than 1000")
    return problems


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        own = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return own.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _recursive(schema: dict[str, Any]) -> list[str]:
    defs = schema.get("$defs") or {}
    graph = {f"#/$defs/{n}": _refs(d) for n, d in defs.items()}
    found = []
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            ref = todo.pop()
            if ref == start:
                found.append(start)
                break
            if ref not in seen:
                seen.add(ref)
                todo += graph.get(ref, [])
    return found


def anthropic_tool(schema: dict[str, Any]) -> list[str]:
    problems = [f"{r}: recursive schema" for r in _recursive(schema)]
    if schema.get("type") != "object":
        problems.append("$: input_schema must be an object")
    for path, node, _ in _nodes(schema):
        bad = sorted(set(node) & ANTHROPIC_FORBIDDEN)
        if bad:
            problems.append(f"{path}: unsupported constraints {bad}")
        if node.get("minItems", 0) not in (0, 1):
            problems.append(f"{path}: minItems {node['minItems']} (only 0 or 1)")
        if _is_object(node) and node.get("additionalProperties") is not False:
            problems.append(f"{path}: object without additionalProperties: false")
    return problems


def _inline(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    if depth > 20:
        raise ValueError("recursive schema")
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _inline({**target, **rest}, defs, depth + 1)
        return {k: _inline(v, defs, depth) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs, depth) for v in node]
    return node


def gemini_function(schema: dict[str, Any]) -> list[str]:
    try:
        flat = _inline(schema, schema.get("$defs") or {})
    except ValueError as err:
        return [f"$: {err}"]
    problems = []
    for path, node, _ in _nodes(flat):
        if isinstance(node.get("type"), list):
            problems.append(f"{path}: a list of types")
        if _is_object(node) and not node.get("properties"):
            problems.append(f"{path}: object without properties")
        if any(not isinstance(v, str) for v in node.get("enum") or []):
            problems.append(f"{path}: non-string enum")
    return problems


def all_rules(schema: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "openai": openai_strict(schema),
        "anthropic": anthropic_tool(schema),
        "gemini": gemini_function(schema),
    }
