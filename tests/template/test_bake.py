"""Baking without a database: option combinations, awkward names, --force, prompts, plain cookiecutter."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml
from dagster import AssetsDefinition
from jsonpath_ng.exceptions import JsonPathParserError
from oso_dagster import __version__
from oso_dagster.factories.config import SqlSource
from oso_dagster.factories.sql import source_of
from oso_dagster.scaffold.literals import py_str, sql_ident, yaml_str
from oso_dagster.scaffold.render import template_dir

from .helpers import assets_entries, bake, check_generated, expected_paths, files, load_yaml, ok


def test_plain_tables_without_database(tmp_path: Path) -> None:
    ok(bake(tmp_path, "mydb", "--table", "events", "--table", "users", "--incremental", "events=time"))
    project = tmp_path / "oso-source-mydb"
    generated = check_generated(project)
    assert set(generated) == expected_paths("mydb", ["events", "users"])
    assert assets_entries(project, "mydb") == ['{"table": "events", "incremental": incremental("time")}',
                                               '{"table": "users"}']
    assets = generated["src/oso_source_mydb/assets.py"]
    assert 'mydb_database = sql_assets(\n    "mydb",\n' in assets
    assert 'SecretReference(group_name="mydb", key="db_connection_string")' in assets
    pyproject = tomllib.loads(generated["pyproject.toml"])
    assert pyproject["project"]["name"] == "oso-source-mydb"
    assert pyproject["project"]["dependencies"] == ["oso-dagster"]
    assert pyproject["project"]["entry-points"]["oso_dagster.sources"] == {"mydb": "oso_source_mydb.assets"}
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/oso_source_mydb"]
    assert pyproject["build-system"]["build-backend"] == "hatchling.build"
    dbt_project = yaml.safe_load(generated["src/oso_source_mydb/dbt/dbt_project.yml"])
    assert dbt_project["name"] == "oso_source_mydb" and dbt_project["profile"] == "oso"
    assert dbt_project["config-version"] == 2 and dbt_project["model-paths"] == ["models"]
    assert dbt_project["models"]["oso_source_mydb"]["+materialized"] == "view"
    (source,) = load_yaml(project, "mydb", "sources")["sources"]
    assert source["name"] == "mydb"
    assert source["schema"] == "{{ env_var('OSO_DATASET_PREFIX', '') }}mydb"
    assert [(t["name"], t["meta"]["dagster"]["asset_key"]) for t in source["tables"]] == [
        ("events", ["mydb", "events"]), ("users", ["mydb", "users"])]
    models = load_yaml(project, "mydb", "models")["models"]
    assert [m["name"] for m in models] == ["stg_mydb__events", "stg_mydb__users"]
    sql = generated["src/oso_source_mydb/dbt/models/staging/stg_mydb__users.sql"]
    assert "select * from {{ source('mydb', 'users') }}" in sql
    assert "Columns will be listed here once known" in sql and sql.rstrip().endswith("select * from renamed")
    answers = json.loads(generated[".oso-source.json"])
    assert answers == {
        "template_version": __version__, "source_name": "mydb", "secret_group": "mydb",
        "secret_key": "db_connection_string", "schema": None, "introspected": False, "exclude": [],
        "include_views": False, "all_tables": False,
        "tables": [{"table": "events", "incremental": "time"}, {"table": "users", "incremental": None}],
    }
    # the pristine render is kept for --update's three-way merge, byte for byte what was generated
    assert files(project / ".oso-source" / "base") == generated
    readme = generated["README.md"]
    for needle in ("DAGSTER__MYDB__DB_CONNECTION_STRING", "OSO_SECRETS=file", "[mydb]",
                   'db_connection_string = "', "dagster__mydb__db_connection_string",
                   "pip install ./oso-source-mydb", "dagster dev -m oso_dagster.definitions",
                   "dagster asset materialize -m oso_dagster.definitions --select group:mydb"):
        assert needle in readme, needle


@pytest.mark.parametrize(
    ("args", "group", "key", "schema"),
    [
        (["--secret-group", "warehouse-db", "--secret-key", "url"], "warehouse-db", "url", None),
        (["--schema", "sales"], "shop", "db_connection_string", "sales"),
        (["--schema", "Sales Data", "--secret-group", "SHOP_2"], "SHOP_2", "db_connection_string", "Sales Data"),
    ],
)
def test_secret_and_schema_options(tmp_path: Path, args: list[str], group: str, key: str,
                                   schema: str | None) -> None:
    ok(bake(tmp_path, "shop", "--table", "orders", *args))
    project = tmp_path / "oso-source-shop"
    generated = check_generated(project)
    assets = generated["src/oso_source_shop/assets.py"]
    assert f"SecretReference(group_name={py_str(group)}, key={py_str(key)})" in assets
    expected = '{"table": "orders"' + (f', "schema": {py_str(schema)}' if schema else "") + "}"
    assert assets_entries(project, "shop") == [expected]
    env_var = f"DAGSTER__{group}__{key}".upper().replace("-", "_")
    assert env_var in generated["README.md"]
    assert json.loads(generated[".oso-source.json"])["schema"] == schema


AWKWARD = ["Order Items", "ürün", "select", "Ünïcode Tab'le", 'quo"te', "back\\slash", "2024_sales", "a{{b}}c",
           "x{%y%}", "#hash: value", "new\nline"]


def test_awkward_table_names_make_valid_files(tmp_path: Path) -> None:
    args = [arg for name in AWKWARD for arg in ("--table", name)]
    ok(bake(tmp_path, "odd_names", *args, "--incremental", "Order Items=Updated At", "--schema", 'we"ird'))
    project = tmp_path / "oso-source-odd_names"
    generated = check_generated(project)
    # the literal written into assets.py is the exact source name
    entries = [eval(e, {"incremental": lambda c: ("inc", c)}) for e in assets_entries(project, "odd_names")]
    assert [e["table"] for e in entries] == AWKWARD
    assert entries[0]["incremental"] == ("inc", "Updated At") and entries[0]["schema"] == 'we"ird'
    source_tables = [t["name"] for t in load_yaml(project, "odd_names", "sources")["sources"][0]["tables"]]
    from oso_dagster.naming import warehouse_name

    assert source_tables == [warehouse_name(n) for n in AWKWARD]
    assert "{{ source('odd_names', 'select') }}" in generated[
        "src/oso_source_odd_names/dbt/models/staging/stg_odd_names__select.sql"]
    assert json.loads(generated[".oso-source.json"])["tables"][0] == {"table": "Order Items",
                                                                        "incremental": "Updated At"}


def _source_defined_by(project: Path, name: str) -> SqlSource:
    """Run the generated assets.py as an import would; return the one source it defines."""
    namespace: dict[str, object] = {}
    code = (project / f"src/oso_source_{name}/assets.py").read_text(encoding="utf-8")
    exec(compile(code, "assets.py", "exec"), namespace)
    (source,) = [s for v in namespace.values() if isinstance(v, AssetsDefinition) and (s := source_of(v))]
    return source


def test_awkward_table_names_make_an_importable_module(tmp_path: Path) -> None:
    args = [arg for name in AWKWARD for arg in ("--table", name)]
    ok(bake(tmp_path, "odd_import", *args, "--incremental", "Order Items=updated_at", "--schema", 'we"ird'))
    source = _source_defined_by(tmp_path / "oso-source-odd_import", "odd_import")
    assert source.name == "odd_import"
    assert [(t.table, t.schema, t.cursor_column) for t in source.tables] == [
        (name, 'we"ird', "updated_at" if name == "Order Items" else None) for name in AWKWARD]


@pytest.mark.xfail(strict=True, raises=JsonPathParserError,
                   reason="dlt's incremental() parses the cursor as JSONPath: a column name with a space fails")
def test_cursor_column_with_a_space_makes_an_importable_module(tmp_path: Path) -> None:
    ok(bake(tmp_path, "spaced", "--table", "Order Items", "--incremental", "Order Items=Updated At"))
    source = _source_defined_by(tmp_path / "oso-source-spaced", "spaced")
    assert [t.cursor_column for t in source.tables] == ["Updated At"]


def test_force_overwrites_only_template_files(tmp_path: Path) -> None:
    ok(bake(tmp_path, "mydb", "--table", "events"))
    project = tmp_path / "oso-source-mydb"
    assets = project / "src/oso_source_mydb/assets.py"
    assets.write_text("edited", encoding="utf-8")
    own = project / "src/oso_source_mydb/dbt/models/marts/my_model.sql"
    own.parent.mkdir(parents=True)
    own.write_text("select 1", encoding="utf-8")
    (project / "NOTES.md").write_text("mine", encoding="utf-8")
    result = bake(tmp_path, "mydb", "--table", "events", "--table", "users")
    assert result.exit_code != 0 and "--force" in result.stderr
    assert assets.read_text(encoding="utf-8") == "edited"
    ok(bake(tmp_path, "mydb", "--table", "events", "--table", "users", "--force"))
    assert '{"table": "users"}' in assets.read_text(encoding="utf-8")
    assert own.read_text(encoding="utf-8") == "select 1"
    assert (project / "NOTES.md").read_text(encoding="utf-8") == "mine"
    check_generated(project)


def test_existing_empty_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "oso-source-mydb").mkdir()
    ok(bake(tmp_path, "mydb", "--table", "events"))
    assert (tmp_path / "oso-source-mydb" / "pyproject.toml").is_file()


def test_prompts_with_defaults(tmp_path: Path) -> None:
    # secret group (default), secret key (given), database URL (skip), tables
    result = ok(bake(tmp_path, "crm", input="\nurl_key\n\naccounts, contacts\n"))
    assert "Secret group [crm]" in result.output and "Secret key [db_connection_string]" in result.output
    project = tmp_path / "oso-source-crm"
    assert assets_entries(project, "crm") == ['{"table": "accounts"}', '{"table": "contacts"}']
    assert 'key="url_key"' in (project / "src/oso_source_crm/assets.py").read_text(encoding="utf-8")


def test_help_shows_examples() -> None:
    from click.testing import CliRunner
    from oso_dagster.cli.new_source import new_source

    result = CliRunner().invoke(new_source, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--incremental orders=updated_at" in result.output


def test_plain_cookiecutter_run(tmp_path: Path) -> None:
    """The template also works on its own: cookiecutter's prompts defaults, hooks and extension."""
    from cookiecutter.main import cookiecutter

    config = tmp_path / "cc.yaml"
    config.write_text(yaml.safe_dump({"replay_dir": str(tmp_path / "replay"), "default_context": {}}))
    out = cookiecutter(str(template_dir()), no_input=True, output_dir=str(tmp_path), config_file=str(config),
                       extra_context={"source_name": "plain", "table_names": "events=updated_at, users"})
    project = Path(out)
    assert project.name == "oso-source-plain"
    generated = check_generated(project)
    assert set(generated) == expected_paths("plain", ["events", "users"])
    assert assets_entries(project, "plain") == ['{"table": "events", "incremental": incremental("updated_at")}',
                                                '{"table": "users"}']


def test_plain_cookiecutter_run_refuses_bad_name(tmp_path: Path) -> None:
    from cookiecutter.exceptions import FailedHookException
    from cookiecutter.main import cookiecutter

    config = tmp_path / "cc.yaml"
    config.write_text(yaml.safe_dump({"replay_dir": str(tmp_path / "replay"), "default_context": {}}))
    with pytest.raises(FailedHookException):
        cookiecutter(str(template_dir()), no_input=True, output_dir=str(tmp_path / "out"),
                     config_file=str(config), extra_context={"source_name": "Bad-Name"})
    assert not any((tmp_path / "out").glob("*/pyproject.toml"))


def test_literal_helpers() -> None:
    for value in ['plain', "it's", 'say "hi"', "both ' and \"", "back\\slash", "new\nline", "ürün", "😀"]:
        assert eval(py_str(value)) == value
        assert yaml.safe_load(yaml_str(value)) == value
    assert sql_ident("select") == "{{ adapter.quote('select') }}"
    assert sql_ident("user_id") == "user_id"
