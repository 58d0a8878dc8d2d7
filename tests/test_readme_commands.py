"""The README's set-up and test commands are the ones CI runs.

CI (``.ci/run``) must run exactly what the README tells a user to type, so
each command, one line in a fenced block under "## Install" and "## Test",
has to appear word for word as a line of ``.ci/run``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CI_RUN = REPO / ".ci" / "run"


def readme_command(section: str) -> str:
    """The one-line command in the first shell block of a README section."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {section}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {section}' section"
    block = re.search(r"^```(?:sh|bash|console)?\n(.*?)^```", match.group(1), re.M | re.S)
    assert block, f"README.md's '## {section}' section has no code block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, f"the {section} command should be one line, got {lines}"
    return lines[0].strip()


@pytest.mark.parametrize("section", ["Install", "Test"])
def test_ci_runs_the_readme_command(section):
    command = readme_command(section)
    ci_lines = [line.strip() for line in CI_RUN.read_text(encoding="utf-8").splitlines()]
    assert command in ci_lines, (
        f"README's {section} command is not a line of .ci/run:\n  {command}\nchange both together"
    )


def test_commands_use_the_venv_and_headless_qt():
    assert readme_command("Install").startswith("python3 -m venv .venv && . .venv/bin/activate")
    test = readme_command("Test")
    assert test.startswith(". .venv/bin/activate && ")
    assert "QT_QPA_PLATFORM=offscreen" in test


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_ci_script_parses():
    result = subprocess.run(["bash", "-n", str(CI_RUN)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
