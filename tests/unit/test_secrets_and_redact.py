"""Secret resolvers (env, file) and masking: values never show in repr, str or messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from oso_dagster.errors import ConfigurationError, SecretNotFoundError
from oso_dagster.settings import Settings
from oso_dagster.utils.redact import mask_url, scrub
from oso_dagster.utils.secrets import (
    EnvSecretResolver,
    FileSecretResolver,
    SecretReference,
    SecretValue,
    resolver_from_settings,
)

REF = SecretReference(group_name="my-db", key="db_connection_string")
URL = "postgresql://app:s3cr3t-pw@db.example:5432/shop"


def test_env_var_name() -> None:
    assert REF.env_var == "DAGSTER__MY_DB__DB_CONNECTION_STRING"


def test_env_resolver() -> None:
    value = EnvSecretResolver({REF.env_var: URL}).resolve(REF)
    assert value.reveal() == URL
    with pytest.raises(SecretNotFoundError, match=REF.env_var):
        EnvSecretResolver({}).resolve(REF)
    with pytest.raises(SecretNotFoundError, match=REF.env_var):
        EnvSecretResolver({REF.env_var: ""}).resolve(REF)


def test_file_resolver(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    with pytest.raises(SecretNotFoundError, match="does not exist"):
        FileSecretResolver(path).resolve(REF)
    path.write_text(f'[my-db]\ndb_connection_string = "{URL}"\n', encoding="utf-8")
    assert FileSecretResolver(path).resolve(REF).reveal() == URL
    with pytest.raises(SecretNotFoundError, match=r"\[other\]"):
        FileSecretResolver(path).resolve(SecretReference(group_name="other", key="k"))
    path.write_text('[my-db\nkey = "s3cr3t-pw"', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid TOML") as info:
        FileSecretResolver(path).resolve(REF)
    assert "s3cr3t-pw" not in str(info.value)


def test_resolver_from_settings(tmp_path: Path) -> None:
    env = {"OSO_HOME": str(tmp_path), "OSO_SECRETS": "file"}
    resolver = resolver_from_settings(Settings.from_env(env))
    assert isinstance(resolver, FileSecretResolver)
    assert resolver.path == tmp_path / "secrets.toml"
    assert isinstance(resolver_from_settings(Settings.from_env({"OSO_HOME": str(tmp_path)})), EnvSecretResolver)
    with pytest.raises(ConfigurationError, match="OSO_GCP_SECRETS_PROJECT"):
        resolver_from_settings(Settings.from_env({"OSO_HOME": str(tmp_path), "OSO_SECRETS": "gcp"}))


def test_secret_value_is_masked() -> None:
    value = SecretValue(URL)
    for shown in (repr(value), str(value), f"{value}", repr([value]), repr({"k": value})):
        assert "s3cr3t-pw" not in shown
    assert value == SecretValue(URL)


def test_bad_reference_names() -> None:
    with pytest.raises(ConfigurationError, match="group_name"):
        SecretReference(group_name="my db", key="k")


def test_mask_url() -> None:
    assert mask_url(URL) == "postgresql://app:***@db.example:5432/shop"
    assert mask_url("mysql+pymysql://root@localhost/db") == "mysql+pymysql://root@localhost/db"
    assert mask_url("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"
    assert mask_url(f"error connecting to {URL} (timeout)") == (
        "error connecting to postgresql://app:***@db.example:5432/shop (timeout)"
    )


def test_scrub_removes_the_password_wherever_it_appears() -> None:
    text = f"password authentication failed; tried {URL}; pw was s3cr3t-pw"
    out = scrub(text, [URL])
    assert "s3cr3t-pw" not in out
    assert "***" in out
    encoded = "postgresql://app:p%40ss%2Fword@h/db"
    assert "p@ss/word" not in scrub("driver said: p@ss/word is wrong", [encoded])
