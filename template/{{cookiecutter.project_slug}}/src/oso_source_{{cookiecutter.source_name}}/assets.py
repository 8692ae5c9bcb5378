{%- set tables = oso_tables(cookiecutter) -%}
"""Replication of source `{{ cookiecutter.source_name }}`: one dict per table; edit the list to add tables or change how one is read."""

from oso_dagster.factories.sql import sql_assets
from oso_dagster.utils.secrets import SecretReference
from dlt.sources import incremental

{{ cookiecutter.source_name }}_database = sql_assets(
    {{ cookiecutter.source_name | pystr }},
    SecretReference(group_name={{ cookiecutter.secret_group | pystr }}, key={{ cookiecutter.secret_key | pystr }}),
    [
{%- for table in tables %}
        {{ table.python_entry }},
{%- endfor %}
    ],
{%- if oso_cdc(cookiecutter) %}
    cdc=True,
{%- endif %}
)
