"""The judge's secrets, kept out of everything it prints or writes: the API key and credentials in the server's URL.

A server may echo the key it was sent (in an error body, in its answer), and a URL like
``https://user:key@host/v1`` carries one in plain sight. The key is sent to the server and nowhere
else: :class:`Redactor` replaces every secret with ``[redacted]`` in text before it is printed or
stored, :func:`public_url` shows a URL without its credentials, and :func:`redacted_logs` does the
same to every log line while the judge runs, whichever library writes it.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "[redacted]"


def api_key(backend: Any) -> str | None:
    """The key in the environment variable ``backend.api_key_env`` names; None when unset, empty or not asked for."""
    name = getattr(backend, "api_key_env", None)
    return os.environ.get(name) or None if name else None


def url_secrets(url: str | None) -> list[str]:
    """The credentials in ``url`` (``user:password``, and the password): as written, decoded, and in base64.

    Base64 is how HTTP basic auth sends them, and how a server echoing the request's headers shows them.
    """
    parts = urlsplit(url or "")
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    raw = [userinfo, userinfo.partition(":")[2]] if userinfo else []  # the whole, and the password
    basic = [base64.b64encode(unquote(userinfo).encode()).decode()] if userinfo else []
    return [s for s in {*raw, *(unquote(r) for r in raw), *basic} if s]


def public_url(url: str | None) -> str:
    """``url`` with its credentials replaced by ``[redacted]``: what may be printed."""
    parts = urlsplit(url or "")
    if "@" not in parts.netloc:
        return url or ""
    return parts._replace(netloc=f"{MASK}@{parts.netloc.rpartition('@')[2]}").geturl()


class Redactor:
    """Replaces each secret with ``[redacted]`` in a text (the longest first, so none is left in part)."""

    def __init__(self, secrets: list[str | None]) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    @classmethod
    def of(cls, backend: Any) -> Redactor:
        """The secrets of a backend's config: its key and the credentials in its ``base_url``."""
        return cls([api_key(backend), *url_secrets(getattr(backend, "base_url", None))])

    def __call__(self, text: str | None) -> str | None:
        if not text or not self.secrets:
            return text
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


class _Filter(logging.Filter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


@contextmanager
def redacted_logs(redact: Redactor) -> Iterator[None]:
    """While the block runs, every handler of every logger writes log lines with the secrets redacted."""
    if not redact.secrets:
        yield
        return
    known = logging.Logger.manager.loggerDict.values()
    loggers = [logging.getLogger(), *(lg for lg in known if isinstance(lg, logging.Logger))]
    handlers = {h for lg in loggers for h in lg.handlers}
    flt = _Filter(redact)
    for handler in handlers:
        handler.addFilter(flt)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(flt)
