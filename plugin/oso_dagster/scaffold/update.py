"""``oso-new-source --update``: re-render a package for today's database and keep every hand edit.

As cruft and copier do, each generated file is merged three ways: the render the package was last made from
(kept in ``.oso-source/base/``, so a newer template can update a package an older one made), the user's
file, and the new render. The merge is ``merge3`` (breezy's). A conflict anywhere stops the update before
anything is written, naming the files and lines.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oso_dagster.errors import TemplateError
from oso_dagster.scaffold.answers import ANSWERS_FILE, BASE_DIR, SourceSpec
from oso_dagster.scaffold.render import edited_since_render, generate, staging_dir


def render_files(spec: SourceSpec) -> dict[str, str]:
    """Every file the template writes for ``spec``, by path relative to the package folder."""
    with tempfile.TemporaryDirectory(prefix="oso-render-") as scratch:
        project = generate(spec, Path(scratch))
        return {str(p.relative_to(project)): p.read_text(encoding="utf-8")
                for p in sorted(project.rglob("*")) if p.is_file()}


def write_base(project: Path, files: dict[str, str]) -> None:
    """Keep the pristine render next to the package: the common ancestor of the next update's merge."""
    base = project / BASE_DIR
    shutil.rmtree(base, ignore_errors=True)
    for relative, text in files.items():
        path = base / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (base.parent / "README").write_text(
        "base/ is the package as oso-new-source last rendered it; `oso-new-source --update` merges from it.\n"
        "Keep it under version control with the package and do not edit it.\n", encoding="utf-8")


def read_base(project: Path) -> dict[str, str]:
    base = project / BASE_DIR
    if not base.is_dir():
        raise TemplateError(
            f"{project} has no {BASE_DIR}/ (the render it was made from), so hand edits could not be told apart "
            "from the template's. Commit the package, run `oso-new-source NAME --force` with the same options "
            "once, restore your edits from version control, then use --update from then on."
        )
    return {str(p.relative_to(base)): p.read_text(encoding="utf-8") for p in sorted(base.rglob("*")) if p.is_file()}


def read_answers(project: Path) -> dict[str, Any]:
    path = project / ANSWERS_FILE
    if not path.is_file():
        raise TemplateError(f"{path} does not exist: --update needs a folder made by oso-new-source "
                            "(oso-source-NAME, holding .oso-source.json).")
    try:
        answers = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TemplateError(f"{path} is not valid JSON ({exc}); restore it from version control.") from None
    _check_answers(path, answers)
    return answers


def _check_answers(path: Path, answers: Any) -> None:
    """Refuse answers --update cannot use, naming the key, rather than failing later on a missing one."""
    fix = "restore it from version control (or rerun oso-new-source NAME --force with the original options)"
    if not isinstance(answers, dict):
        raise TemplateError(f"{path} holds no answers (expected a JSON object); {fix}.")
    for key in ("source_name", "secret_group", "secret_key"):
        if not isinstance(answers.get(key), str) or not answers[key]:
            raise TemplateError(f"{path} has no {key!r} (a non-empty string); {fix}.")
    tables = answers.get("tables")
    if not isinstance(tables, list) or not all(
        isinstance(t, dict) and isinstance(t.get("table"), str) and t["table"] for t in tables
    ):
        raise TemplateError(f"{path}: 'tables' must be a list of objects each naming its \"table\"; {fix}.")
    exclude = answers.get("exclude")
    if exclude is not None and not (isinstance(exclude, list) and all(isinstance(v, str) for v in exclude)):
        raise TemplateError(f"{path}: 'exclude' must be a list of glob patterns; {fix}.")


@dataclass
class UpdatePlan:
    """What an update writes and deletes, what it leaves alone and why, and the conflicts that stop it."""

    writes: dict[str, str] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def plan_update(project: Path, base: dict[str, str], new: dict[str, str]) -> UpdatePlan:
    """Merge each generated file: ``base`` (last render) -> ``new`` (this render), over the user's copy."""
    plan = UpdatePlan()
    for relative in sorted(set(base) | set(new)):
        if relative == ANSWERS_FILE:
            plan.writes[relative] = new[relative]  # answers, not code: always today's
            continue
        old, theirs = base.get(relative), new.get(relative)
        path = project / relative
        mine = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == theirs or mine == theirs:
            continue
        if theirs is None:  # the template no longer makes it (a table gone from the database)
            if mine is None:
                continue
            if edited_since_render(mine, old):  # neither kept (its dbt source is gone) nor deleted unasked
                plan.conflicts.append(f"{relative}: edited by hand, but no longer generated (its table is no longer "
                                      "replicated), so dbt could not parse it; delete it or move it out of the "
                                      "package")
            else:
                plan.deletes.append(relative)
            continue
        if mine is None:  # new in this render, or deleted by hand
            if old is None:
                plan.writes[relative] = theirs
            else:
                plan.kept.append(f"{relative}: deleted by hand, left deleted")
        elif old is None:
            plan.conflicts.append(f"{relative}: your own file has the name of a new generated one; move it away")
        elif mine == old:  # not edited: take the new render as is
            plan.writes[relative] = theirs
        else:
            _merge(relative, old, mine, theirs, plan)
    return plan


def _merge(relative: str, old: str, mine: str, theirs: str, plan: UpdatePlan) -> None:
    import merge3

    merger = merge3.Merge3(old.splitlines(True), mine.splitlines(True), theirs.splitlines(True))
    regions = [r for r in merger.merge_regions() if r[0] == "conflict"]
    if regions:  # ("conflict", base start, base end, mine start, mine end, new start, new end)
        lines = ", ".join(f"{r[3] + 1}-{max(r[4], r[3] + 1)}" for r in regions)
        plan.conflicts.append(f"{relative}: lines {lines} were edited by hand and changed by the update")
    else:
        plan.writes[relative] = "".join(merger.merge_lines())


def apply_plan(project: Path, plan: UpdatePlan, new: dict[str, str]) -> None:
    """Write the merged files, delete the unedited ones no longer generated, and record ``new`` as the base."""
    for relative, text in plan.writes.items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for relative in plan.deletes:
        (project / relative).unlink()
    write_base(project, new)


def staging_columns(files: dict[str, str], name: str) -> dict[str, list[str]]:
    """``{model: [column, ...]}`` from a render's ``_NAME__models.yml``."""
    relative = f"{staging_dir(name)}/_{name}__models.yml"
    models = (yaml.safe_load(files.get(relative) or "") or {}).get("models") or []
    return {m["name"]: [c["name"] for c in m.get("columns") or []] for m in models}
