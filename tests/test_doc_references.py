"""Every test, test file and test folder that README and docs/ cite exists, so a citation cannot outlive its test;
likewise every ``oso_dagster.module[.name]`` and ``oso_dagster/path`` they name.

Forms resolved: ``tests/dir``, ``tests/x/test_y.py`` (a path), ``test_y.py`` (a file anywhere under tests/),
``test_y.py::test_z[param]`` and a following ``::test_w`` on the same line (a function in that file; a
parametrize id must appear in the file), ``test_y.py:95`` (a line that exists) and a bare ``test_z`` (a test
function somewhere under tests/).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
# The generated package's README and docs cite its own tests (tests/test_package.py) from the template.
TEMPLATE_PROJECT = ROOT / "template" / "{{cookiecutter.project_slug}}"
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), TEMPLATE_PROJECT / "README.md"])

REFERENCE = re.compile(
    r"(?P<path>\btests/[\w/]+\.py|\btest_\w+\.py)(?::(?P<line>\d+))?"
    r"(?P<funcs>(?:[`,\s]*::test_\w+(?:\[[^\]]*\])?)*)"
    r"|(?P<dir>\btests/[\w/]*)"
    r"|(?<![\w/.:])(?P<bare>test_\w+)\b(?!\.py)"
)
FUNCTION = re.compile(r"::(?P<name>test_\w+)(?:\[(?P<param>[^\]]*)\])?")


@cache
def _test_functions(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text())
    return frozenset(node.name for node in ast.walk(tree)
                     if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"))


def _all_test_functions() -> frozenset[str]:
    return frozenset().union(*(_test_functions(p) for p in TESTS.rglob("test_*.py")))


def _resolve_file(cited: str) -> list[Path]:
    if "/" in cited:
        return [p for p in (ROOT / cited, TEMPLATE_PROJECT / cited) if p.is_file()]
    return sorted(TESTS.rglob(cited))


def _problems(line: str) -> list[str]:
    problems = []
    for match in REFERENCE.finditer(line):
        if match["dir"]:
            if not (ROOT / match["dir"]).exists():
                problems.append(f"{match['dir']} does not exist")
            continue
        if match["bare"]:
            if match["bare"] not in _all_test_functions():
                problems.append(f"no test function {match['bare']} under tests/")
            continue
        files = _resolve_file(match["path"])
        if len(files) != 1:
            problems.append(f"{match['path']} matches {len(files)} files (expected exactly one)")
            continue
        (path,) = files
        if match["line"] and int(match["line"]) > len(path.read_text().splitlines()):
            problems.append(f"{match['path']}:{match['line']} is past the end of the file")
        for function in FUNCTION.finditer(match["funcs"] or ""):
            if function["name"] not in _test_functions(path):
                problems.append(f"{match['path']} has no test function {function['name']}")
            elif function["param"] and function["param"] not in path.read_text():
                problems.append(f"{match['path']}::{function['name']} has no parameter id {function['param']!r}")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_test_exists(document: Path) -> None:
    problems = [f"{document.relative_to(ROOT)}:{number}: {problem}"
                for number, line in enumerate(document.read_text().splitlines(), 1)
                for problem in _problems(line)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("line", "problem"), [
    ("`test_large_table.py::test_twenty_million_rows_with_bounded_memory_and_disk`", "has no test function"),
    ("`test_killed_runs.py::test_killed_full_refresh_then_normal_run_is_exact[nope]`", "has no parameter id"),
    ("`test_deletes.py::test_delete_options_are_validated`, `::test_not_there`", "has no test function test_not_there"),
    ("`tests/reliability/test_gone.py`", "matches 0 files"),
    ("`tests/nowhere/`", "does not exist"),
    ("`test_never_written` guards it", "no test function test_never_written"),
    ("test_large_table.py:100000", "past the end"),
])
def test_a_stale_citation_is_found(line: str, problem: str) -> None:
    assert any(problem in found for found in _problems(line)), _problems(line)


def test_citations_that_exist_pass() -> None:
    line = ("`test_deletes.py::test_delete_options_are_validated`, `::test_missing_soft_delete_column_names_table`, "
            "`test_killed_runs.py::test_killed_full_refresh_then_normal_run_is_exact[pandas]`, `tests/reliability/`")
    assert _problems(line) == []


PLUGIN = ROOT / "plugin"
CODE_REFERENCE = re.compile(r"\boso_dagster(?:\.\w+)+|\boso_dagster/[\w/.]*\w")


@cache
def _top_level_names(module: Path) -> frozenset[str]:
    names = set()
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
                names.update(ast.literal_eval(node.value))  # lazily exported names (module __getattr__)
    return frozenset(names)


@cache
def _plugin_literals() -> frozenset[str]:
    return frozenset(node.value for f in PLUGIN.rglob("*.py") for node in ast.walk(ast.parse(f.read_text()))
                     if isinstance(node, ast.Constant) and isinstance(node.value, str))


def _code_problem(reference: str) -> str | None:
    if "/" in reference:  # a file or folder of the package; the template ships as oso_dagster/template
        exists = (PLUGIN / reference).exists() or reference == "oso_dagster/template"
        return None if exists else f"{reference} does not exist"
    if reference in _plugin_literals():  # a name the plugin itself uses, e.g. the entry-point group
        return None
    parts = reference.split(".")
    if len(parts) == 2 and parts[1] in _top_level_names(PLUGIN / "oso_dagster" / "__init__.py"):
        return None  # a name the package itself exports, e.g. oso_dagster.SqlSourceComponent
    for split in range(len(parts), 1, -1):
        base = PLUGIN.joinpath(*parts[:split])
        module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if module.is_file():
            missing = [name for name in parts[split:split + 1] if name not in _top_level_names(module)]
            return f"{reference}: {module.relative_to(ROOT)} defines no {missing[0]}" if missing else None
    return f"{reference} names no module of the plugin"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_module_exists(document: Path) -> None:
    problems = [f"{document.relative_to(ROOT)}: {problem}"
                for reference in sorted(set(CODE_REFERENCE.findall(document.read_text())))
                if (problem := _code_problem(reference)) is not None]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("reference", "problem"), [
    ("oso_dagster.no_such_module", "names no module"),
    ("oso_dagster.naming.no_such_function", "defines no no_such_function"),
    ("oso_dagster/no_such_file.py", "does not exist"),
])
def test_a_stale_module_name_is_found(reference: str, problem: str) -> None:
    assert problem in (_code_problem(reference) or "")
