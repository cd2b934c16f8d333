"""Connection URLs as shown to people: never with a password in them."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redact_url"]

# Query parameters that carry a credential in the URLs our clients accept (libpq's password and
# sslpassword, redis-py's password, tokens of HTTP services).
_SECRET_PARAMETERS = frozenset(
    {"password", "passwd", "pwd", "sslpassword", "secret", "token", "access_token", "api_key"}
)
_HIDDEN = "***"


def redact_url(url: str) -> str:
    """The URL with any password, in its user info or its query, replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username or ''}:{_HIDDEN}@{host}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name.lower() in _SECRET_PARAMETERS for name, _ in pairs):
        query = urlencode(
            [(n, _HIDDEN if n.lower() in _SECRET_PARAMETERS else v) for n, v in pairs], safe="*"
        )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))
