{#- One dbt staging model per replicated table, in dbt Labs' style: rename and cast only. -#}
{%- raw %}with

source as (

    select * from {{ source({% endraw %}'{{ cookiecutter.source_name }}', '{{ table.warehouse_name }}'{% raw %}) }}

),
{% endraw %}
renamed as (

{%- if table.columns is none %}

    -- Columns will be listed here once known: regenerate with --database-url, or list them by hand
    -- (their warehouse names, as dlt landed them), renaming and casting only.
    select * from source
{%- elif not table.columns %}

    -- The source table had no columns when it was reflected.
    select * from source
{%- else %}

    select
{%- for column in table.columns %}
        {{ column.sql }}{{ "," if not loop.last }}
{%- endfor %}

    from source
{%- endif %}

)

select * from renamed
