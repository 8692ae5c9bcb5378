"""The one mapping from what a run raises to the ``dagster.Failure`` the user reads, transient or not.

Every load path (dlt's, the direct DuckDB load) and the row-count check raise through
:func:`reported_as_failure`; nothing else decides what is retried. Messages never carry the secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import sqlalchemy as sa
from dagster import Failure
from dlt.common.schema.exceptions import DataValidationError

from oso_dagster.database import TRANSIENT_HINTS, create_source_engine, database_error, describe
from oso_dagster.errors import OsoDagsterError, TransientSourceError
from oso_dagster.utils.redact import scrub

# connectorx raises Rust panics as pyo3's PanicException, a BaseException its package does not export
_PANIC = "PanicException"
_DRIVER_MODULES = ("psycopg", "psycopg2", "pymysql", "MySQLdb", "sqlite3")


class ReplicationError(OsoDagsterError):
    """An unexpected failure during replication, re-raised with secrets scrubbed from its message."""


@contextlib.contextmanager
def reported_as_failure(
    what: str, secrets: list[str], explain_schema_change: Callable[[DataValidationError], str] | None = None
) -> Iterator[None]:
    """Turn anything raised inside into a ``Failure`` (or a scrubbed :class:`ReplicationError`).

    ``what`` names the work ("Replicating source 'shop'"); ``secrets`` may be filled inside (the connection
    string once resolved) and is scrubbed from every message; ``explain_schema_change`` words dlt's
    schema-contract violations.
    """
    try:
        yield
    except Failure:
        raise
    except Exception as exc:
        raise to_failure(exc, what, secrets, explain_schema_change) from None
    except BaseException as exc:  # connectorx's Rust panics are BaseExceptions, which dlt does not wrap
        if type(exc).__name__ != _PANIC or not secrets:
            raise
        raise _panic_failure(exc, secrets[0]) from None


def to_failure(
    exc: Exception, what: str, secrets: list[str],
    explain_schema_change: Callable[[DataValidationError], str] | None = None,
) -> Failure | ReplicationError:
    """The Failure for ``exc``: ours keep their message, driver errors are classified, the rest scrubbed."""
    error = exc if isinstance(exc, OsoDagsterError) else unwrap_dlt_error(exc)
    if isinstance(error, DataValidationError) and explain_schema_change is not None:
        return Failure(description=scrub(explain_schema_change(error), secrets), allow_retries=False)
    if isinstance(error, OsoDagsterError):
        return Failure(description=scrub(str(error), secrets), allow_retries=isinstance(error, TransientSourceError))
    error = _as_dbapi_error(error)
    if isinstance(error, sa.exc.DBAPIError) and secrets:
        classified = database_error(error, create_source_engine(secrets[0]), "reading rows")
        return Failure(description=str(classified), allow_retries=isinstance(classified, TransientSourceError))
    message = scrub(f"{type(error).__name__}: {error}", secrets)
    return ReplicationError(f"{what} failed: {message}").with_traceback(exc.__traceback__)


def unwrap_dlt_error(exc: BaseException) -> BaseException:
    """dlt wraps the real error in PipelineStepFailed/ResourceExtractionError; surface the innermost cause."""
    seen = exc
    while seen.__cause__ is not None or getattr(seen, "exception", None) is not None:
        inner = getattr(seen, "exception", None) or seen.__cause__
        if inner is None or inner is seen:
            break
        seen = inner
    return seen


def _as_dbapi_error(error: BaseException) -> BaseException:
    """A driver's own error (psycopg raises them unwrapped from server-side cursors) as SQLAlchemy's."""
    if isinstance(error, sa.exc.DBAPIError):
        return error
    if type(error).__module__.split(".")[0] not in _DRIVER_MODULES:
        return error
    operational = any(cls.__name__ == "OperationalError" for cls in type(error).__mro__)
    wrapper = sa.exc.OperationalError if operational else sa.exc.DBAPIError
    return wrapper(None, None, error)


def _panic_failure(exc: BaseException, url: str) -> Failure:
    """A connectorx panic (e.g. the connection reset mid-read) as a clear Failure; retryable when transient."""
    text = str(exc).strip()
    message = scrub(text.splitlines()[0] if text else type(exc).__name__, [url])
    where = describe(create_source_engine(url))
    if any(hint in message.lower() for hint in TRANSIENT_HINTS):
        return Failure(
            description=f"Cannot reach {where} while reading rows: {message}. Check that the database is up and "
            "reachable from this machine; nothing was committed for the failed tables and the run may be retried.",
            allow_retries=True,
        )
    return Failure(description=f"The source database {where} failed while reading rows: {message}")
