"""Every setting the plugin reads, in one place, read from the environment when asked (never at import).

Each field names its environment variable; docs/configuration.md lists them with their defaults.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from oso_dagster.errors import ConfigurationError

Destination = Literal["duckdb", "bigquery"]
SecretsBackend = Literal["env", "file", "gcp"]


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with :meth:`from_env`."""

    home: Path
    """``OSO_HOME``: local state (DuckDB file, dlt pipeline folders, the dbt umbrella project). Default ``./.oso``."""
    destination: Destination
    """``OSO_DESTINATION``: ``duckdb`` (default) or ``bigquery``."""
    duckdb_path: Path
    """``OSO_DUCKDB_PATH``: the local warehouse file. Default ``$OSO_HOME/warehouse.duckdb``."""
    secrets_backend: SecretsBackend
    """``OSO_SECRETS``: where secrets come from: ``env`` (default), ``file`` or ``gcp``."""
    secrets_file: Path
    """``OSO_SECRETS_FILE``: the TOML file used by ``OSO_SECRETS=file``. Default ``$OSO_HOME/secrets.toml``."""
    gcp_secrets_project: str | None
    """``OSO_GCP_SECRETS_PROJECT``: GCP project holding the secrets (``OSO_SECRETS=gcp``)."""
    gcp_secrets_prefix: str
    """``OSO_GCP_SECRETS_PREFIX``: prefix of secret names, ``{prefix}__{group}__{key}``. Default ``dagster``."""
    bigquery_project: str | None
    """``OSO_BIGQUERY_PROJECT``: BigQuery project (default: the one of Application Default Credentials)."""
    bigquery_location: str
    """``OSO_BIGQUERY_LOCATION``: BigQuery location. Default ``US``."""
    bigquery_keyfile: Path | None
    """``OSO_BIGQUERY_KEYFILE``: a service-account JSON file; default Application Default Credentials."""
    dataset_prefix: str
    """``OSO_DATASET_PREFIX``: prefix for every source's dataset/schema name. Default empty."""
    schedules_running: bool = False
    """``OSO_SCHEDULES``: ``running`` starts every source's schedule by default; default ``stopped``."""
    on_broken_source: Literal["fail", "warn"] = "fail"
    """``OSO_ON_BROKEN_SOURCE``: ``warn`` serves the good source packages when one cannot load; default ``fail``."""
    bigquery_api_endpoint: str | None = None
    """``OSO_BIGQUERY_API_ENDPOINT``: a BigQuery-compatible endpoint instead of Google's (the tests' emulator)."""
    bigquery_token: str | None = field(default=None, repr=False)
    """``OSO_BIGQUERY_TOKEN``: a static OAuth token (needs ``OSO_BIGQUERY_PROJECT``); never printed."""
    rebuild_staging: bool = False
    """``OSO_REBUILD_STAGING``: ``1`` re-creates every staging view, changed or not; default ``0`` (only changed)."""
    dagster_home: Path | None = None
    """``DAGSTER_HOME`` (Dagster's own setting): where ``oso-sources list`` reads each table's health."""

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("OSO_HOME") or ".oso").expanduser().absolute()
        destination = (env.get("OSO_DESTINATION") or "duckdb").strip().lower()
        if destination not in ("duckdb", "bigquery"):
            raise ConfigurationError(
                f"OSO_DESTINATION={destination!r} is not supported: set it to 'duckdb' (local) or 'bigquery'."
            )
        secrets_backend = (env.get("OSO_SECRETS") or "env").strip().lower()
        if secrets_backend not in ("env", "file", "gcp"):
            raise ConfigurationError(
                f"OSO_SECRETS={secrets_backend!r} is not supported: set it to 'env', 'file' or 'gcp'."
            )
        keyfile = env.get("OSO_BIGQUERY_KEYFILE")
        return cls(
            home=home,
            destination=destination,  # type: ignore[arg-type]
            duckdb_path=Path(env.get("OSO_DUCKDB_PATH") or home / "warehouse.duckdb").expanduser().absolute(),
            secrets_backend=secrets_backend,  # type: ignore[arg-type]
            secrets_file=Path(env.get("OSO_SECRETS_FILE") or home / "secrets.toml").expanduser().absolute(),
            gcp_secrets_project=env.get("OSO_GCP_SECRETS_PROJECT") or None,
            gcp_secrets_prefix=env.get("OSO_GCP_SECRETS_PREFIX") or "dagster",
            bigquery_project=env.get("OSO_BIGQUERY_PROJECT") or None,
            bigquery_location=env.get("OSO_BIGQUERY_LOCATION") or "US",
            bigquery_keyfile=Path(keyfile).expanduser().absolute() if keyfile else None,
            dataset_prefix=env.get("OSO_DATASET_PREFIX") or "",
            schedules_running=_schedules_running(env.get("OSO_SCHEDULES")),
            on_broken_source=_on_broken_source(env.get("OSO_ON_BROKEN_SOURCE")),
            bigquery_api_endpoint=(env.get("OSO_BIGQUERY_API_ENDPOINT") or "").strip().rstrip("/") or None,
            bigquery_token=env.get("OSO_BIGQUERY_TOKEN") or None,
            rebuild_staging=(env.get("OSO_REBUILD_STAGING") or "0").strip().lower() in ("1", "true", "yes"),
            dagster_home=Path(env["DAGSTER_HOME"]) if env.get("DAGSTER_HOME") else None,
        )

    def dataset_name(self, source_name: str) -> str:
        """The warehouse dataset (BigQuery) or schema (DuckDB) that a source lands in."""
        return f"{self.dataset_prefix}{source_name}"

    @property
    def pipelines_dir(self) -> Path:
        return self.home / "dlt_pipelines"

    @property
    def dbt_dir(self) -> Path:
        return self.home / "dbt"


def _schedules_running(value: str | None) -> bool:
    value = (value or "stopped").strip().lower()
    if value not in ("running", "stopped"):
        raise ConfigurationError(f"OSO_SCHEDULES={value!r} is not supported: use 'running' or 'stopped'.")
    return value == "running"


def _on_broken_source(value: str | None) -> Literal["fail", "warn"]:
    mode = (value or "fail").strip().lower()
    if mode not in ("fail", "warn"):
        raise ConfigurationError(f"OSO_ON_BROKEN_SOURCE={mode!r} is not supported: use 'fail' or 'warn'.")
    return "warn" if mode == "warn" else "fail"


def distribution_key(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): ``OSO_Source.MyDB`` and ``oso-source-mydb`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def source_packages(env: os._Environ[str] | dict[str, str] | None = None) -> frozenset[str] | None:
    """``OSO_SOURCE_PACKAGES`` as distribution keys, or ``None`` (serve every installed source package).

    ``OSO_SOURCE_PACKAGES``: comma-separated distributions to serve, each installed; default every one installed.

    Read on its own by entry-point discovery, which runs before anything else is configured.
    """
    env = os.environ if env is None else env
    names = [n.strip() for n in (env.get("OSO_SOURCE_PACKAGES") or "").split(",") if n.strip()]
    return frozenset(distribution_key(n) for n in names) if names else None
