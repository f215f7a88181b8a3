"""The one exception type for user mistakes and unusable inputs."""

from __future__ import annotations


class DegradeError(Exception):
    """A problem the user can fix: reported as one line, never as a traceback.

    The entry script turns it into a log line and exits with ``exit_code``.
    """

    exit_code = 2


class ConfigError(DegradeError):
    """A config key holds a value outside what is allowed."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


class MemoryCritical(DegradeError):
    """Memory use passed the critical threshold: the records are saved and the job stops."""

    exit_code = 3


def require(ok: bool, key: str, problem: str) -> None:
    """Raise :class:`ConfigError` for ``key`` with ``problem`` unless ``ok``: the checks' one-line form."""
    if not ok:
        raise ConfigError(key, problem)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``exc`` as one line: its type and its message, lines joined, cut at ``limit`` characters."""
    message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or "no message"
    line = f"{type(exc).__name__}: {message}"
    return line if len(line) <= limit else line[: limit - 1] + "…"
