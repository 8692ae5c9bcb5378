"""Every command that oso-new-source prints, the generated README shows and the docs tell a user to run, run.

The commands are taken from the text itself, so a wrong flag or an asset selection that selects nothing
fails here. Each is run as printed against a scaffolded package, except where running it would need
what a test cannot have; then a form that checks the same thing is run (named in ``_plan``).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from code_location.helpers import BIN, env_with, install, scope_to
from conftest import run_sql

ROOT = Path(__file__).resolve().parents[2]
# Files whose shell blocks walk a user from scaffold to a materialized source.
DOCS = [ROOT / "README.md", ROOT / "docs" / "guide.md", ROOT / "docs" / "scaffolding.md"]
# Commands these docs show that are run elsewhere, with where.
ELSEWHERE = {
    "nox": "README's two commands: .ci/run runs the test command, tests/demo the demo",
    "python3": "README's two commands (a venv for nox): .ci/run runs the test command",
    "cookiecutter": "tests/template/test_bake.py::test_plain_cookiecutter_run renders the template directly",
}


def shell_blocks(markdown: str) -> list[str]:
    """Command lines of the ```sh/```bash blocks, continuation lines joined."""
    lines = []
    for block in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", markdown, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.strip())
    return lines


def printed_commands(output: str) -> list[str]:
    """The indented lines after ``Next:`` in oso-new-source's output."""
    _, _, tail = output.partition("\nNext:\n")
    return [line.strip() for line in tail.splitlines() if line.startswith("  ")]


def commands_of(line: str) -> list[list[str]]:
    """``a && b # note`` -> [argv of a, argv of b]."""
    words = shlex.split(line, comments=True)
    commands, current = [], []
    for word in words:
        if word == "&&":
            commands.append(current)
            current = []
        else:
            current.append(word)
    return [c for c in [*commands, current] if c]


class Runner:
    """Runs commands against one scaffolded ``mydb`` package, as a user in ``cwd`` would."""

    def __init__(self, cwd: Path, site: Path, url: str) -> None:
        self.cwd, self.site, self.url = cwd, site, url
        self.env = env_with(site)
        self.materialized: set[tuple[str, ...]] = set()
        self.lists: dict[tuple[str, ...], list[str]] = {}  # asset lists, until the installed packages change

    def asset_list(self, args: list[str], what: str) -> list[str]:
        """``dagster asset list ARGS``: the keys it prints (each Dagster start costs seconds: asked once)."""
        if tuple(args) not in self.lists:
            self.lists[tuple(args)] = self.run(["dagster", "asset", "list", *args], what).stdout.split()
        return self.lists[tuple(args)]

    def run(self, argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
        exe = argv[0] if "/" in argv[0] else str(BIN / argv[0])
        result = subprocess.run([exe, *argv[1:]], cwd=self.cwd, env=self.env, capture_output=True, text=True,
                                check=False, timeout=600)
        assert result.returncode == 0, f"{what}: {shlex.join(argv)}\n{(result.stdout + result.stderr)[-4000:]}"
        return result

    def __call__(self, argv: list[str], where: str) -> None:
        what = f"{where}: {shlex.join(argv)}"
        name = argv[0]
        if name in ELSEWHERE:
            return
        if name == "export":
            var, _, _ = argv[1].partition("=")
            assert var == "DAGSTER__MYDB__DB_CONNECTION_STRING", what
            self.env[var] = self.url  # the value shown is an example URL
        elif name == "pip" and argv[1] == "install":
            targets = [a for a in argv[2:] if not a.startswith("-")]
            if targets in (["oso-dagster"], ["."]):
                return  # oso-dagster itself: the test runs inside it
            assert targets and all(t.startswith(("./", "/")) for t in targets), f"{what}: not a path"
            for target in targets:
                assert (self.cwd / target / "pyproject.toml").is_file(), f"{what}: no package there"
                install(self.cwd / target, self.site)
                scope_to(self.env, self.site)
                self.lists.clear()
        elif argv[:3] == ["pip", "uninstall", "-y"]:
            assert argv[3:] == ["oso-source-mydb"], what
            uninstall = ["uv", "pip", "uninstall", "--python", sys.executable, "--target", str(self.site), *argv[3:]]
            subprocess.run(uninstall, check=True, capture_output=True)
            scope_to(self.env, self.site)
            self.lists.clear()
            listed = self.asset_list(["-m", "oso_dagster.definitions"], what)
            assert not [key for key in listed if "mydb" in key], f"{what}: still listed {listed}"
        elif name == "oso-new-source":
            from oso_dagster.cli.new_source import new_source

            # the options must parse; the URLs in docs point at hosts a test cannot reach
            new_source.make_context("oso-new-source", argv[1:], resilient_parsing=False)
        elif name == "oso-sources":
            self.run(argv, what)
        elif argv[:3] == ["dagster", "asset", "materialize"]:
            listed = self.asset_list(argv[3:], what)
            assert "mydb/events" in listed, f"{what} selects {listed}"
            if tuple(argv) not in self.materialized:
                self.materialized.add(tuple(argv))
                self.run(argv, what)
        elif argv[:2] == ["dagster", "dev"]:
            # the UI never returns; the same -m must load and list this source's assets
            listed = self.asset_list(argv[2:], what)
            assert "mydb/events" in listed, what
        else:
            pytest.fail(f"{what}: a documented command this test does not know how to run; teach it")


@pytest.mark.slow
def test_printed_and_documented_commands_run(tmp_path: Path, sqlite_url: str) -> None:
    run_sql(sqlite_url, "CREATE TABLE events (id integer PRIMARY KEY, updated_at timestamp NOT NULL)",
            "INSERT INTO events VALUES (1, '2024-01-01 00:00:00')")
    cwd = tmp_path / "work"
    cwd.mkdir()
    site = tmp_path / "site"
    runner = Runner(cwd, site, sqlite_url)
    scaffolded = subprocess.run([str(BIN / "oso-new-source"), "mydb", "--database-url", sqlite_url, "--no-input"],
                                cwd=cwd, env=runner.env, capture_output=True, text=True, check=False)
    assert scaffolded.returncode == 0, scaffolded.stderr
    printed = printed_commands(scaffolded.stdout)
    assert printed[0] == "pip install ./oso-source-mydb" and "group:mydb" in printed[-1], printed
    sources: list[tuple[str, list[str]]] = [("oso-new-source output", printed)]
    readme = (cwd / "oso-source-mydb" / "README.md").read_text(encoding="utf-8")
    # the generated README's paths are relative to the folder holding the package
    sources.append(("generated README", shell_blocks(readme)))
    sources += [(str(doc.relative_to(ROOT)), shell_blocks(doc.read_text(encoding="utf-8"))) for doc in DOCS]
    ran = 0
    for where, lines in sources:
        assert lines, f"no commands found in {where}"
        for line in lines:
            if commands_of(line)[0][0] in ELSEWHERE:
                continue  # the whole line, e.g. python3 -m venv .venv && .venv/bin/nox ...
            for argv in commands_of(line):
                runner(argv, where)
                ran += 1
    assert runner.materialized and ran > 10


def test_readme_two_commands_use_a_venv_and_ci_runs_the_test_command(tmp_path: Path) -> None:
    """PEP 668 systems refuse a bare ``pip install``; README's commands install nox into ``.venv`` instead."""
    commands = shell_blocks((ROOT / "README.md").read_text(encoding="utf-8"))[:2]
    venv = 'python3 -m venv .venv && .venv/bin/pip install "nox[uv]" && .venv/bin/nox -s '
    assert commands == [venv + "demo", venv + "lint template tests"]
    assert commands[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    # the first step as written, in a scratch folder: a venv whose pip can install nox
    made = subprocess.run(["python3", "-m", "venv", ".venv"], cwd=tmp_path, capture_output=True, text=True,
                          check=False)
    assert made.returncode == 0, made.stderr
    pip = subprocess.run([str(tmp_path / ".venv/bin/pip"), "--version"], capture_output=True, text=True, check=False)
    assert pip.returncode == 0 and str(tmp_path / ".venv") in pip.stdout, pip.stdout + pip.stderr
