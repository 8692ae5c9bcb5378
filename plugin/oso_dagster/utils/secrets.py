"""Secret references and the resolvers that turn them into values when a run starts.

A :class:`SecretReference` is only a name. Nothing here is resolved while Dagster loads definitions;
``resolver_from_settings().resolve(ref)`` is called inside a run. Values are wrapped in
:class:`SecretValue`, whose ``repr``/``str`` never show them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from oso_dagster.errors import ConfigurationError, SecretNotFoundError
from oso_dagster.settings import Settings

_PART = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class SecretReference:
    """Names a secret by group and key, e.g. ``SecretReference(group_name="mydb", key="db_connection_string")``."""

    group_name: str
    key: str

    def __post_init__(self) -> None:
        for field, value in (("group_name", self.group_name), ("key", self.key)):
            if not isinstance(value, str) or not _PART.match(value):
                raise ConfigurationError(
                    f"SecretReference {field}={value!r} is invalid: use letters, digits, '_' or '-' only "
                    "(it becomes part of an environment variable or secret name)."
                )

    @property
    def label(self) -> str:
        """``group/key``: how logs, errors and metadata name the secret (never its value)."""
        return f"{self.group_name}/{self.key}"

    @property
    def env_var(self) -> str:
        """The environment variable the ``env`` resolver reads (compatible with the original system)."""
        return f"DAGSTER__{self.group_name}__{self.key}".upper().replace("-", "_")


class SecretValue:
    """A resolved secret. ``str()``/``repr()`` are masked; call :meth:`reveal` where the value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@runtime_checkable
class SecretResolver(Protocol):
    """Anything that resolves a :class:`SecretReference`; raise :class:`SecretNotFoundError` when it is absent."""

    def resolve(self, ref: SecretReference) -> SecretValue: ...


class EnvSecretResolver:
    """Reads ``DAGSTER__{GROUP}__{KEY}`` (upper-cased) from the environment."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def resolve(self, ref: SecretReference) -> SecretValue:
        value = self._environ.get(ref.env_var)
        if not value:
            raise SecretNotFoundError(
                f"Secret {ref.label} is not set: export {ref.env_var}=<value> "
                "(secrets come from the environment because OSO_SECRETS is 'env')."
            )
        return SecretValue(value)

    def __repr__(self) -> str:
        return "EnvSecretResolver()"


class FileSecretResolver:
    """Reads a local TOML file for development: ``[group] key = "value"``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def resolve(self, ref: SecretReference) -> SecretValue:
        if not self.path.is_file():
            raise SecretNotFoundError(
                f"Secret {ref.label} cannot be read: the secrets file {self.path} does not exist. "
                f'Create it with:\n  [{ref.group_name}]\n  {ref.key} = "..."\n(or set OSO_SECRETS_FILE).'
            )
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            # The decoder's message quotes no values, only positions.
            raise ConfigurationError(f"The secrets file {self.path} is not valid TOML: {exc}") from None
        value = data.get(ref.group_name, {}).get(ref.key) if isinstance(data.get(ref.group_name), dict) else None
        if not isinstance(value, str) or not value:
            raise SecretNotFoundError(
                f"Secret {ref.label} is not in {self.path}: add\n"
                f'  [{ref.group_name}]\n  {ref.key} = "..."'
            )
        return SecretValue(value)

    def __repr__(self) -> str:
        return f"FileSecretResolver({str(self.path)!r})"


class GCPSecretManagerResolver:
    """Reads the latest version of ``{prefix}__{group}__{key}`` from GCP Secret Manager."""

    def __init__(self, project: str, prefix: str = "dagster", client: object | None = None) -> None:
        self.project = project
        self.prefix = prefix
        self._client = client

    def secret_name(self, ref: SecretReference) -> str:
        return f"{self.prefix}__{ref.group_name}__{ref.key}"

    def _get_client(self) -> object:
        if self._client is None:
            try:
                from google.cloud import secretmanager
            except ImportError as exc:
                raise ConfigurationError(
                    "OSO_SECRETS=gcp needs google-cloud-secret-manager (oso-dagster's gcp extra): "
                    "pip install 'google-cloud-secret-manager>=2.20'."
                ) from exc
            self._client = secretmanager.SecretManagerServiceClient()
        return self._client

    def resolve(self, ref: SecretReference) -> SecretValue:
        name = self.secret_name(ref)
        path = f"projects/{self.project}/secrets/{name}/versions/latest"
        client = self._get_client()
        try:
            response = client.access_secret_version(request={"name": path})  # type: ignore[attr-defined]
        except Exception as exc:  # google.api_core exceptions, imported lazily
            kind = type(exc).__name__
            if kind == "NotFound":
                raise SecretNotFoundError(
                    f"Secret {name} (or a version of it) does not exist in project {self.project}: create it with "
                    f"`gcloud secrets create {name} --project {self.project}` and add a version."
                ) from None
            if kind in ("PermissionDenied", "Forbidden"):
                raise SecretNotFoundError(
                    f"Permission denied reading secret {name} in project {self.project}: grant the run's service "
                    "account roles/secretmanager.secretAccessor on it."
                ) from None
            raise SecretNotFoundError(f"Could not read secret {name} in project {self.project}: {kind}.") from None
        return SecretValue(response.payload.data.decode("utf-8"))

    def __repr__(self) -> str:
        return f"GCPSecretManagerResolver(project={self.project!r}, prefix={self.prefix!r})"


def resolver_from_settings(settings: Settings | None = None) -> SecretResolver:
    """The resolver chosen by ``OSO_SECRETS`` (``env``, ``file`` or ``gcp``)."""
    settings = settings or Settings.from_env()
    if settings.secrets_backend == "file":
        return FileSecretResolver(settings.secrets_file)
    if settings.secrets_backend == "gcp":
        if not settings.gcp_secrets_project:
            raise ConfigurationError(
                "OSO_SECRETS=gcp needs OSO_GCP_SECRETS_PROJECT set to the project that holds them."
            )
        return GCPSecretManagerResolver(settings.gcp_secrets_project, settings.gcp_secrets_prefix)
    return EnvSecretResolver()


__all__ = [
    "EnvSecretResolver",
    "FileSecretResolver",
    "GCPSecretManagerResolver",
    "SecretReference",
    "SecretResolver",
    "SecretValue",
    "resolver_from_settings",
]
