"""Operations on installed sources that ``oso-sources`` runs: pre-flight checks, health, reset-table."""
