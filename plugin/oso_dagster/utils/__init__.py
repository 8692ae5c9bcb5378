"""Secrets (public path ``oso_dagster.utils.secrets``) and the masking of anything secret in what we print."""
