"""The documentation builds strictly and covers every command and setting."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
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


SHELL_BLOCK = re.compile(r"^```(?:sh|bash|shell|console)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _invocations(command: str) -> list[tuple[str, list[str]]]:
    """``(file, argv)`` of every line of a shell code block in README.md or docs/ that runs ``command``."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in SHELL_BLOCK.findall(page.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                argv = shlex.split(line.removeprefix("$ "), comments=True)
                if argv and argv[0] == command:
                    found.append((page.name, argv))
    return found


def _parse(argv: list[str]) -> None:
    """Parse ``argv`` with the command's own click parser, as the shell would run it (nothing is executed)."""
    from oso_dagster.cli.new_source import new_source
    from oso_dagster.cli.sources import main

    try:
        if argv[0] == "oso-new-source":
            new_source.make_context(argv[0], argv[1:])
            return
        with main.make_context(argv[0], argv[1:]) as ctx:
            name, sub, rest = main.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
            assert sub is not None, f"no subcommand {name!r}"
            sub.make_context(name, rest, parent=ctx)
    except click.exceptions.Exit as done:  # --help and the like: parsed, then exited cleanly
        assert done.exit_code == 0


@pytest.mark.parametrize("command", ["oso-sources", "oso-new-source"])
def test_commands_have_help_and_are_documented(command: str) -> None:
    result = subprocess.run([str(BIN / command), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "Usage:" in result.stdout
    invocations = _invocations(command)
    assert [page for page, _ in invocations if page != "README.md"], f"no shell block in docs/ runs {command}"
    broken = []
    for page, argv in invocations:
        try:
            _parse(argv)
        except click.ClickException as exc:
            broken.append(f"{page}: {shlex.join(argv)}: {exc.format_message()}")
    assert not broken, "documented invocations that the command rejects:\n" + "\n".join(broken)
