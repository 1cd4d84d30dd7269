"""A small stdio MCP server for the tests: its tools echo what they received."""

from mcp.server.fastmcp import FastMCP

server = FastMCP("units")


@server.tool()
def scale(values: list[float], factor: float) -> dict:
    """Multiply every value by factor."""
    return {
        "received": {"values": values, "factor": factor},
        "scaled": [v * factor for v in values],
    }


if __name__ == "__main__":
    server.run("stdio")
