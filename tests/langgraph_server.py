"""A real `langgraph dev` for the server tests: on a free loopback port, with its own data
folder, logs outside the project (a log inside the watched folder makes it reload forever), and
stopped by its own process id."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@contextmanager
def langgraph_dev(
    folder: Path,
    ready: str = "/ok",
    env: dict[str, str] | None = None,
    config: str = "langgraph.noauth.json",
) -> Iterator[str]:
    """The server's URL once ``ready`` answers 200; ``folder`` holds its log and data; ``env``
    adds to (or overrides) the environment the server starts with. Served with the explicit
    no-auth config unless ``config`` names the deployment's own."""
    logs, port = folder / "server.log", free_port()
    env = {
        **os.environ,
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "1",
        "LANGSMITH_TRACING": "false",
        # its own data folder: a plan memory left by other runs (or older code) is not shared
        "ORCHESTRATOR_GRAPH_HOME": str(folder / "data"),
        "ORCHESTRATOR_GRAPH_CHROMA": str(folder / "data" / "chroma"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    }
    cli = Path(sys.executable).with_name("langgraph")
    args = ["dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port)]
    with logs.open("w") as log:
        proc = subprocess.Popen(
            [str(cli), *args, "--config", str(ROOT / config)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while not answers(f"{url}{ready}"):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"langgraph dev did not come up on {url}:\n{logs.read_text()[-4000:]}")
        time.sleep(0.5)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
