"""The documentation builds strictly and covers every command and setting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_mkdocs_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "guide" / "index.html").is_file()


def test_every_setting_read_by_the_code_is_documented() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "plugin" / "oso_dagster").rglob("*.py"))
    settings = set(re.findall(r"\b(OSO_[A-Z_]+)\b", code))
    documented = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(s for s in settings if s not in documented)
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


@pytest.mark.parametrize("command", ["oso-sources", "oso-new-source"])
def test_commands_have_help_and_are_documented(command: str) -> None:
    result = subprocess.run([str(BIN / command), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "Usage:" in result.stdout
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    assert command in docs
