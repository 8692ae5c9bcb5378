"""Rendering the ``oso-new-source`` cookiecutter template into a package folder, and what --force removes.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from oso_dagster.errors import TemplateError
from oso_dagster.naming import staging_model_name
from oso_dagster.scaffold.answers import ANSWERS_FILE, BASE_DIR, SourceSpec


def template_dir() -> Path:
    """The template folder: the copy inside the installed package first, else the source checkout's."""
    installed = Path(__file__).resolve().parents[1] / "template"
    checkout = Path(__file__).resolve().parents[3] / "template"
    for candidate in (installed, checkout):
        if (candidate / "cookiecutter.json").is_file():
            return candidate
    raise TemplateError(
        f"The oso-new-source template is missing: looked for cookiecutter.json in {installed} and "
        f"{checkout}. Reinstall oso-dagster from the checkout or wheel you installed it from (docs/installation.md)."
    )


def staging_dir(name: str) -> str:
    """Where a package's staging models live, relative to the package folder."""
    return f"src/oso_source_{name}/dbt/models/staging"


def generate(spec: SourceSpec, output_dir: Path, *, force: bool = False,
             dropped: Sequence[DroppedModel] | None = None) -> Path:
    """Render the template for ``spec`` into ``output_dir/oso-source-NAME``; return that folder.

    ``force`` overwrites the files the template generates, deletes the staging models it generated earlier for
    tables ``spec`` no longer lists (``dropped``, else :func:`dropped_models`) and leaves every other file alone.
    """
    from cookiecutter.exceptions import CookiecutterException, FailedHookException
    from cookiecutter.main import cookiecutter

    spec.validate()
    target = output_dir / spec.project_slug
    check_target(target, force=force)
    if dropped is None:
        dropped = dropped_models(target, spec)
    with tempfile.TemporaryDirectory(prefix="oso-new-source-") as scratch:
        # A private cookiecutter config: no user ~/.cookiecutterrc defaults, no replay file in $HOME.
        config = Path(scratch) / "config.yaml"
        config.write_text(
            yaml.safe_dump({"replay_dir": str(Path(scratch) / "replay"),
                            "cookiecutters_dir": str(Path(scratch) / "cookiecutters"),
                            "default_context": {}}),
            encoding="utf-8",
        )
        try:
            result = cookiecutter(
                str(template_dir()),
                no_input=True,
                extra_context=spec.cookiecutter_context(),
                output_dir=str(output_dir),
                overwrite_if_exists=force or target.is_dir(),
                config_file=str(config),
            )
        except FailedHookException as exc:
            raise TemplateError(f"The template refused the answers: {exc}") from None
        except CookiecutterException as exc:
            raise TemplateError(f"Rendering the template failed: {exc}") from None
    for model in dropped:  # their dbt source tables are gone from the regenerated YAML: they would not parse
        model.path.unlink(missing_ok=True)
    return Path(result)


@dataclass(frozen=True)
class DroppedModel:
    """A staging model generated for a table no longer replicated; ``edited``: it differs from the last render."""

    path: Path
    edited: bool


def edited_since_render(current: str, rendered: str | None) -> bool:
    """Whether a generated file was changed by hand: it differs from the render snapshot's copy.

    The one rule --update and --force apply to a model of a dropped table. A package made before snapshots
    were kept has none; its file named as the template names the model counts as generated, unedited.
    """
    return rendered is not None and current != rendered


def dropped_models(target: Path, spec: SourceSpec) -> list[DroppedModel]:
    """Staging models a previous run wrote into ``target`` for tables that ``spec`` no longer lists.

    Only a model named as the template names the model of a table recorded in ``.oso-source.json`` is listed,
    so a file of the user's under another name never is. A listed model the user edited (it differs from
    ``.oso-source/base/``) is marked ``edited``; it is still listed, since dbt cannot parse it once its
    source table is gone from the YAML.
    """
    try:
        previous = json.loads((target / ANSWERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(previous, dict) or previous.get("source_name") != spec.name:
        return []
    staging = staging_dir(spec.name)
    kept = {staging_model_name(spec.name, table.name) for table in spec.tables}
    earlier = {staging_model_name(spec.name, str(item["table"])) for item in previous.get("tables") or []
               if isinstance(item, dict) and item.get("table")}
    dropped = []
    for name in sorted(earlier - kept):
        relative = f"{staging}/{name}.sql"
        path = target / relative
        if path.is_file():
            snapshot = target / BASE_DIR / relative
            rendered = snapshot.read_text(encoding="utf-8") if snapshot.is_file() else None
            dropped.append(DroppedModel(path, edited_since_render(path.read_text(encoding="utf-8"), rendered)))
    return dropped


def check_target(target: Path, *, force: bool) -> None:
    """Refuse to write over an existing folder unless forced; never into a file."""
    if target.exists() and not target.is_dir():
        raise TemplateError(f"{target} exists and is not a folder; move it or choose another --output-dir.")
    if target.is_dir() and not force and any(target.iterdir()):
        raise TemplateError(
            f"{target} already exists. Pass --force to regenerate the template's files in it (other files "
            "are kept), or choose another --output-dir."
        )
