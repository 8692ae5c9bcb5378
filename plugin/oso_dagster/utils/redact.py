"""Masking for connection strings and secret values in anything we print or raise."""

from __future__ import annotations

import re
from collections.abc import Iterable

# scheme://user:password@host  -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<at>@)")


def mask_url(url: str) -> str:
    """A connection string with its password replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***{m['at']}", url)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL passwords and every given secret (and its password part) replaced by ``***``."""
    out = mask_url(text)
    for secret in secrets:
        for needle in _secret_parts(secret):
            out = out.replace(needle, "***")
    return out


def _secret_parts(secret: str) -> list[str]:
    parts = [secret] if secret else []
    match = _URL_PASSWORD.search(secret or "")
    if match and len(match["pw"]) >= 3:
        parts.append(match["pw"])
        # drivers sometimes print the URL-decoded password
        from urllib.parse import unquote

        decoded = unquote(match["pw"])
        if decoded != match["pw"]:
            parts.append(decoded)
    return sorted(parts, key=len, reverse=True)
