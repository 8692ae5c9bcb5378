"""What a replication step logs: one INFO line per table and a summary, nothing per table a user cannot act on.

dlt warns once per table per run that "when merging arrow schema with dlt schema, several column hints were
different": our reflected hints (precision, nullability) deliberately win over the Arrow batch's, so the
warning says nothing a user can act on, and on a 200-table source it buries the lines that matter. It is
demoted to DEBUG by a filter on dlt's logger, not silenced: with dlt's log level at DEBUG it still shows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

DLT_LOGGER = "dlt"
_HINTS_WARNING = "several column hints were different"


class DemoteHintWarnings(logging.Filter):
    """Turns dlt's arrow-vs-dlt column hint warning into a DEBUG record (dropped unless DEBUG is on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and _HINTS_WARNING in record.getMessage():
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_FILTER = DemoteHintWarnings()


def demote_dlt_hint_warnings() -> None:
    """Install the filter on dlt's logger once (idempotent; the logger object is dlt's, by name)."""
    logger = logging.getLogger(DLT_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


@dataclass
class StepSummary:
    """Counts for the step's last line: tables changed / unchanged, rows, seconds."""

    loaded: int = 0
    unchanged: int = 0
    failed: int = 0
    rows: int = 0
    lines: list[str] = field(default_factory=list)

    def table(self, log: Any, name: str, rows: int, seconds: float, how: str) -> None:
        """One INFO line per loaded table: the line a person reads."""
        self.loaded += 1
        self.rows += rows
        log.info(f"{name}: {rows:,} rows in {seconds:.1f} s ({how})")

    def skipped(self, count: int) -> None:
        self.unchanged += count

    def text(self, source: str, seconds: float) -> str:
        return (
            f"source {source!r}: {self.loaded} table(s) loaded, {self.unchanged} unchanged (one query each, "
            f"nothing loaded){f', {self.failed} failed' if self.failed else ''}; {self.rows:,} rows in "
            f"{seconds:.1f} s"
        )
