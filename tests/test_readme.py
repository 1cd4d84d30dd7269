"""The README's Python examples marked ``# example:`` run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
EXAMPLES = {
    m.group(1): m.group(0) for m in re.finditer(r"# example: (\w+)\n.*?(?=```)", README, re.S)
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_readme_example_runs(name, tmp_path):
    script = tmp_path / f"{name}.py"
    script.write_text(EXAMPLES[name])
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip(), "an example shows its result"
    if name == "registry":  # the worker registered mid-run took some of the tasks
        assert out.stdout.startswith("done") and "'helper'" in out.stdout, out.stdout
