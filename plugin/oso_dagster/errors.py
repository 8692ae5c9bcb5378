"""Errors a user can meet. Each message says what is wrong and how to fix it; none carries a secret."""

from __future__ import annotations


class OsoDagsterError(Exception):
    """Base class: a problem the user can fix; shown without a traceback by the CLIs."""


class ConfigurationError(OsoDagsterError):
    """A setting or a ``sql_assets`` argument is invalid."""


class SecretNotFoundError(OsoDagsterError):
    """A secret a source needs is not set where the configured resolver looks."""


class SourceDatabaseError(OsoDagsterError):
    """The source database cannot be reached, refused the login, or lacks a table or column."""


class TransientSourceError(SourceDatabaseError):
    """The source database failed in a way that a retry may fix (connection reset, timeout)."""


class SourceValueError(OsoDagsterError):
    """A source value cannot land as its column's type without changing it (the message names it).

    The one error type for data problems: a run fails on it at once, without retries.
    """


class SourcePackageError(OsoDagsterError):
    """An installed source package cannot be loaded (import error, wrong object, duplicate name)."""


class DbtProjectError(OsoDagsterError):
    """The dbt umbrella project could not be assembled or parsed."""


class TemplateError(OsoDagsterError):
    """``oso-new-source`` refused its input; nothing was written."""
