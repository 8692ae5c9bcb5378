"""Run time: what a replication run does once Dagster starts it (plan, read, cast, check, load, deletes).

Imported only inside asset bodies, never while Dagster loads definitions.
"""
