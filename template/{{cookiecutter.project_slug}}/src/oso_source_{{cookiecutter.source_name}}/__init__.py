"""oso-dagster source `{{ cookiecutter.source_name }}`: the replication in ``assets.py``, the dbt staging models in ``dbt/``."""
