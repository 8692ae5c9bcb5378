"""Change data capture: a source's tables kept in step from the database's change log.

How a sync works (docs/cdc.md has the guarantees):

1. ``log.prepare``: the change log is made ready for the source (PostgreSQL: a publication of its CDC tables
   and a logical replication slot ``oso_<source>``; MySQL/MariaDB: the binlog position to start from).
2. Tables never copied (or reset) get a full snapshot on the direct DuckDB path, after the log position they
   will be caught up from was fixed: nothing between the two is missed.
3. ``log.pages`` reads the changes from the stored position to the log's end as it was when the sync started,
   in pages that end on transaction boundaries. From each change only the table and the primary key are kept.
4. ``apply`` re-reads the current rows of those keys from the source with the same reader as the snapshot
   (so every value is exact, TOASTed and unchanged columns included), and in one DuckDB transaction deletes the
   changed keys and inserts the rows read, storing the page's end position beside them. Only then is the log
   told (PostgreSQL: the slot advances). Applying a page twice gives the same result, so a run killed anywhere
   is repaired by the next one.
"""
