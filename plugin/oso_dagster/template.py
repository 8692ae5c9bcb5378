"""The ``oso-new-source`` cookiecutter template: where it lives, the Jinja filters it needs, and rendering it.

Everything a user or a source database supplies (table and column names, schema) reaches the generated
files only through the filters below, which turn a value into a literal of the target language
(Python, YAML, SQL identifier, JSON). No value is ever pasted into code or re-rendered as a template.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment
from jinja2.ext import Extension

from oso_dagster.errors import TemplateError
from oso_dagster.naming import check_source_name, staging_model_name, warehouse_name
from oso_dagster.utils.secrets import SecretReference

PROJECT_DIR_PREFIX = "oso-source-"
ANSWERS_FILE = ".oso-source.json"
BASE_DIR = ".oso-source/base"  # the files as last rendered: what --update merges from and --force compares to
DEFAULT_SECRET_KEY = "db_connection_string"

# Identifiers that need quoting on DuckDB or BigQuery (their reserved words, plus a few SQL standard ones
# either may adopt). A warehouse name in this set is written ``{{ adapter.quote('name') }}`` in SQL.
RESERVED_WORDS = frozenset(
    {
        "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "assert_rows_modified",
        "asymmetric", "at", "between", "both", "by", "case", "cast", "check", "collate", "column",
        "constraint", "contains", "create", "cross", "cube", "current", "current_date", "current_time",
        "current_timestamp", "current_user", "default", "deferrable", "define", "desc", "describe",
        "distinct", "do", "else", "end", "enum", "escape", "except", "exclude", "exists", "extract",
        "false", "fetch", "following", "for", "foreign", "from", "full", "group", "grouping", "groups",
        "hash", "having", "if", "ignore", "in", "initially", "inner", "intersect", "interval", "into", "is",
        "join", "lambda", "lateral", "leading", "left", "like", "limit", "lookup", "merge", "natural",
        "new", "no", "not", "null", "nulls", "of", "offset", "on", "only", "or", "order", "outer", "over",
        "partition", "pivot", "pivot_longer", "pivot_wider", "placing", "preceding", "primary", "proto",
        "qualify", "range", "recursive", "references", "respect", "returning", "right", "rollup", "rows",
        "select", "set", "show", "some", "struct", "summarize", "symmetric", "table", "tablesample", "then",
        "to", "trailing", "treat", "true", "unbounded", "union", "unique", "unnest", "unpivot", "user",
        "using", "variadic", "when", "where", "window", "with", "within",
    }
)
_SIMPLE_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def template_dir() -> Path:
    """The template folder: the copy inside the installed package first, else the source checkout's."""
    installed = Path(__file__).resolve().parent / "template"
    checkout = Path(__file__).resolve().parents[2] / "template"
    for candidate in (installed, checkout):
        if (candidate / "cookiecutter.json").is_file():
            return candidate
    raise TemplateError(
        f"The oso-new-source template is missing: looked for cookiecutter.json in {installed} and "
        f"{checkout}. Reinstall oso-dagster from the checkout or wheel you installed it from (docs/installation.md)."
    )


# --- literals -------------------------------------------------------------------------------------


def py_str(value: object) -> str:
    """A Python string literal for ``value``, double-quoted where possible (the style of the examples)."""
    text = str(value)
    literal = repr(text)
    if literal.startswith("'") and '"' not in text:
        literal = '"' + literal[1:-1] + '"'
    return literal


def yaml_str(value: object) -> str:
    """A double-quoted YAML scalar for ``value`` (one line, any character)."""
    dumped = yaml.safe_dump(str(value), default_style='"', allow_unicode=True, width=1_000_000)
    return dumped.strip().removesuffix("...").strip()


def toml_str(value: object) -> str:
    """A TOML basic string for ``value`` (JSON's escapes are TOML's, except for DEL)."""
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def payload(value: object) -> str:
    """``value`` as base64 JSON: how answers reach the hooks, as data inside a plain string literal."""
    return base64.b64encode(json.dumps(value, ensure_ascii=False).encode("utf-8")).decode("ascii")


def safe_text(value: object) -> str:
    """``value`` fit for prose that dbt renders as Jinja (descriptions): braces and control characters go."""
    text = _CONTROL.sub(" ", str(value))
    return text.replace("{", "(").replace("}", ")").replace("`", "'").strip()


def sql_ident(name: str) -> str:
    """A warehouse identifier for dbt SQL: bare when safe, else quoted portably through the adapter."""
    if not _SIMPLE_IDENTIFIER.match(name):
        raise TemplateError(f"{name!r} is not a warehouse name; expected one from naming.warehouse_name().")
    if name in RESERVED_WORDS:
        return "{{ adapter.quote('" + name + "') }}"
    return name


def needs_quoting(name: str) -> bool:
    return name in RESERVED_WORDS or not _SIMPLE_IDENTIFIER.match(name)


def json_pretty(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# --- the table model the template renders -------------------------------------------------------


@dataclass
class ColumnSpec:
    """One source column, as reflected (``type`` is the source database's type name)."""

    name: str
    type: str | None = None
    nullable: bool | None = None


@dataclass
class TableSpec:
    """One table to replicate: its source name, cursor (if incremental) and, when introspected, its shape."""

    name: str
    cursor: str | None = None
    cursor_reason: str | None = None
    primary_key: list[str] | None = None
    columns: list[ColumnSpec] | None = None
    view: bool = False
    key_option: bool = False  # primary_key was named by the user (--primary-key): written into assets.py

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> TableSpec:
        columns = raw.get("columns")
        return cls(
            name=str(raw["name"]),
            cursor=raw.get("cursor") or None,
            cursor_reason=raw.get("cursor_reason") or None,
            primary_key=list(raw["primary_key"]) if raw.get("primary_key") is not None else None,
            columns=[ColumnSpec(**c) for c in columns] if columns is not None else None,
            view=bool(raw.get("view")),
            key_option=bool(raw.get("key_option")),
        )


@dataclass
class SourceSpec:
    """Every answer the template needs. The database URL is deliberately not part of it."""

    name: str
    secret_group: str
    secret_key: str = DEFAULT_SECRET_KEY
    schema: str | None = None
    tables: list[TableSpec] = field(default_factory=list)
    introspected: bool = False
    exclude: list[str] = field(default_factory=list)
    include_views: bool = False
    all_tables: bool = False  # every table of the schema was taken (no --table): --update adds new ones

    @property
    def project_slug(self) -> str:
        return f"{PROJECT_DIR_PREFIX}{self.name}"

    def validate(self) -> None:
        """Refuse what would make a broken package; messages say how to fix the input."""
        try:
            check_source_name(self.name)
        except ValueError as exc:
            raise TemplateError(str(exc)) from None
        try:
            SecretReference(group_name=self.secret_group, key=self.secret_key)
        except Exception as exc:
            raise TemplateError(str(exc).replace("SecretReference group_name", "--secret-group").replace(
                "SecretReference key", "--secret-key")) from None
        if not self.tables:
            raise TemplateError(
                "No tables to replicate: pass --table NAME (repeatable) or --database-url to list them."
            )
        landed: dict[str, str] = {}
        for table in self.tables:
            if not table.name.strip():
                raise TemplateError("A table name is empty.")
            wh = warehouse_name(table.name)
            if wh in landed:
                raise TemplateError(
                    f"Tables {landed[wh]!r} and {table.name!r} would both land as {wh!r} in the warehouse; "
                    "pick one of them with --table (one source cannot hold both)."
                )
            landed[wh] = table.name

    def cookiecutter_context(self) -> dict[str, Any]:
        """``extra_context`` for cookiecutter.

        Public variables are rendered by cookiecutter as Jinja, so user values never go there directly:
        each one is a reference into the private ``_answers`` dict, which cookiecutter passes through as data.
        """
        answers = {
            "source_name": self.name,
            "project_slug": self.project_slug,
            "secret_group": self.secret_group,
            "secret_key": self.secret_key,
            "schema": self.schema or "",
            "table_names": "",
        }
        ref = "{{{{ cookiecutter._answers[{}] }}}}"
        context: dict[str, Any] = {key: ref.format(json.dumps(key)) for key in answers}
        context["_answers"] = answers
        context["_source"] = {"introspected": self.introspected, "tables": [asdict(t) for t in self.tables],
                              "exclude": list(self.exclude), "include_views": self.include_views,
                              "all_tables": self.all_tables}
        return context


def parse_table_names(text: str) -> list[TableSpec]:
    """``"events=time, users"`` -> tables (the ``table_names`` answer of a plain ``cookiecutter`` run)."""
    tables = []
    for item in re.split(r"[,\n]", text or ""):
        name, _, cursor = item.strip().partition("=")
        if name.strip():
            tables.append(TableSpec(name=name.strip(), cursor=cursor.strip() or None))
    return tables


def render_tables(cookiecutter: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tables of a cookiecutter context, with every derived name the template files need."""
    source = cookiecutter.get("_source") or {}
    specs = [TableSpec.from_mapping(t) for t in source.get("tables") or []]
    if not specs:
        specs = parse_table_names(str(cookiecutter.get("table_names", "")))
    name = str(cookiecutter["source_name"])
    schema = str(cookiecutter.get("schema") or "") or None
    return [_render_table(name, schema, spec) for spec in specs]


def _render_table(source_name: str, schema: str | None, spec: TableSpec) -> dict[str, Any]:
    wh = warehouse_name(spec.name)
    entry = [f'"table": {py_str(spec.name)}']
    if schema:
        entry.append(f'"schema": {py_str(schema)}')
    if spec.cursor:
        entry.append(f'"incremental": incremental({py_str(spec.cursor)})')
    pk = spec.primary_key or []
    if spec.key_option and pk:
        entry.append(f'"primary_key": [{", ".join(py_str(c) for c in pk)}]')
    columns = []
    for column in spec.columns or []:
        cwh = warehouse_name(column.name)
        tests = (["unique", "not_null"] if len(pk) == 1 else ["not_null"]) if column.name in pk else []
        kind = f" ({safe_text(column.type)})" if column.type else ""
        columns.append(
            {
                "name": column.name,
                "warehouse_name": cwh,
                "sql": sql_ident(cwh),
                "quote": needs_quoting(cwh),
                "tests": tests,
                "description": f"Source column '{safe_text(column.name)}'{kind}."
                + (" Primary key." if column.name in pk else "")
                + (" Incremental cursor." if column.name == spec.cursor else ""),
            }
        )
    mode = f"incremental on '{safe_text(spec.cursor)}'" if spec.cursor else "full refresh"
    if spec.view:
        mode = f"view, {mode}"
    return {
        "name": spec.name,
        "display_name": safe_text(spec.name),
        "warehouse_name": wh,
        "quote": needs_quoting(wh),
        "model_name": staging_model_name(source_name, spec.name),
        "cursor": spec.cursor,
        "cursor_reason": safe_text(spec.cursor_reason) if spec.cursor_reason else None,
        "mode": mode,
        "primary_key": pk,
        "key_option": spec.key_option,
        "view": spec.view,
        "columns": columns if spec.columns is not None else None,
        "python_entry": "{" + ", ".join(entry) + "}",
        "description": f"Table '{safe_text(spec.name)}' of source {source_name}, staged: renamed and cast "
        f"only, one row per source row ({mode}).",
    }


def answers_record(cookiecutter: Mapping[str, Any]) -> dict[str, Any]:
    """What ``.oso-source.json`` records: the answers and template version, never a URL or secret."""
    from oso_dagster import __version__

    return {
        "template_version": __version__,
        "source_name": cookiecutter["source_name"],
        "secret_group": cookiecutter["secret_group"],
        "secret_key": cookiecutter["secret_key"],
        "schema": cookiecutter.get("schema") or None,
        "introspected": bool((cookiecutter.get("_source") or {}).get("introspected")),
        "exclude": list((cookiecutter.get("_source") or {}).get("exclude") or []),
        "include_views": bool((cookiecutter.get("_source") or {}).get("include_views")),
        "all_tables": bool((cookiecutter.get("_source") or {}).get("all_tables")),
        "tables": [_table_answer(t) for t in render_tables(cookiecutter)],
    }


def _table_answer(table: Mapping[str, Any]) -> dict[str, Any]:
    """One table of ``.oso-source.json``: its name and cursor, and a user-named key or view flag when set."""
    answer: dict[str, Any] = {"table": table["name"], "incremental": table["cursor"]}
    if table["key_option"]:
        answer["primary_key"] = table["primary_key"]
    if table["view"]:
        answer["view"] = True
    return answer


def render_table_files(environment: Environment, cookiecutter: Mapping[str, Any]) -> str:
    """The per-table files (``per_table/`` templates rendered once per table) as a :func:`payload`."""
    repo = Path(str(cookiecutter.get("_repo_dir") or template_dir()))
    template = environment.from_string((repo / "per_table" / "stg_model.sql").read_text(encoding="utf-8"))
    staging = staging_dir(check_source_name(cookiecutter["source_name"]))
    files = {}
    for table in render_tables(cookiecutter):
        if not _SIMPLE_IDENTIFIER.match(table["model_name"]):
            raise TemplateError(f"Cannot name a dbt model {table['model_name']!r}.")
        text = template.render(cookiecutter=cookiecutter, table=table)
        files[f"{staging}/{table['model_name']}.sql"] = text.rstrip("\n") + "\n"
    return payload(files)


def staging_dir(name: str) -> str:
    """Where a package's staging models live, relative to the package folder."""
    return f"src/oso_source_{name}/dbt/models/staging"


def problems(cookiecutter: Mapping[str, Any]) -> list[str]:
    """Why these answers cannot make a package (empty when they can); the pre-generate hook reports them."""
    found = []
    try:
        spec = SourceSpec(
            name=str(cookiecutter["source_name"]),
            secret_group=str(cookiecutter["secret_group"]),
            secret_key=str(cookiecutter["secret_key"]),
            tables=[TableSpec(name=t["name"], cursor=t["cursor"]) for t in render_tables(cookiecutter)],
        )
        spec.validate()
        if cookiecutter["project_slug"] != spec.project_slug:
            wrong = cookiecutter["project_slug"]
            found.append(f"the folder must be named {spec.project_slug!r}, not {wrong!r}.")
    except TemplateError as exc:
        found.append(str(exc))
    return found


def secret_env_var(group: str, key: str) -> str:
    return SecretReference(group_name=group, key=key).env_var


class OsoExtension(Extension):
    """Jinja filters and globals of the template (cookiecutter loads it through ``_extensions``)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        from oso_dagster import __version__

        environment.filters.update(
            pystr=py_str,
            yamlstr=yaml_str,
            tomlstr=toml_str,
            safe_text=safe_text,
            sql_ident=sql_ident,
            json_pretty=json_pretty,
            warehouse_name=warehouse_name,
        )
        environment.globals.update(
            oso_tables=render_tables,
            oso_answers=answers_record,
            oso_payload=payload,
            oso_problems=problems,
            oso_table_files=functools.partial(render_table_files, environment),
            oso_version=__version__,
            secret_env_var=secret_env_var,
        )


# --- rendering -----------------------------------------------------------------------------------


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


def table_summary(tables: Iterable[TableSpec]) -> list[str]:
    """One line per table for the CLI's report."""
    lines = []
    for table in tables:
        mode = f"incremental on {table.cursor!r}" if table.cursor else "full refresh"
        if table.view:
            mode = f"view, {mode}"
        if table.key_option and table.primary_key:
            mode += f", key {', '.join(table.primary_key)}"
        why = f" ({table.cursor_reason})" if table.cursor_reason else ""
        lines.append(f"  {table.name}: {mode}{why}")
    return lines


__all__: Sequence[str] = [
    "ANSWERS_FILE",
    "BASE_DIR",
    "ColumnSpec",
    "DroppedModel",
    "OsoExtension",
    "SourceSpec",
    "TableSpec",
    "dropped_models",
    "generate",
    "template_dir",
]
