"""Ctrl-C and SIGTERM: the request is recorded when it comes and acted on at the next safe point.

Python's own Ctrl-C raises :class:`KeyboardInterrupt` wherever the main thread happens to be, and
where that is a finalizer (an object's ``__del__`` run by the garbage collector in the middle of
generation), Python prints "Exception ignored" and the press is lost: the job, and the sweep after
it, ran on to the end. SIGTERM (``kill``, a cluster's time limit) ended the process at once and left
``metadata.json`` saying ``running``. Here both signals only record the request; the job stops at
the next safe point, between two tokens (a stopping criterion of the generation), between batches,
between cells and between the jobs of a sweep, by raising :class:`Stop`, a ``KeyboardInterrupt``:
every finished batch is kept, the views are rebuilt, the status says ``interrupted``. A second
Ctrl-C stops at once (the request stays recorded, so it still ends the sweep).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested: list[int] = []  # the signals received, in order


class Stop(KeyboardInterrupt):
    """Raised at a safe point after SIGINT or SIGTERM; ``exit_code`` is the shell's 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum

    def __reduce__(self) -> tuple[type, tuple[int]]:  # rebuilt from its number where it is unpickled
        return Stop, (self.signum,)


def _record(signum: int, frame: Any) -> None:
    again = signum == signal.SIGINT and signal.SIGINT in _requested
    _requested.append(signum)
    if again:  # a second Ctrl-C: the user will not wait for the next safe point
        raise Stop(signum)


def install() -> None:
    """Record SIGINT and SIGTERM from now on in this process (only the main thread may set handlers)."""
    if threading.current_thread() is threading.main_thread():
        for signum in _SIGNALS:
            signal.signal(signum, _record)


def requested() -> int | None:
    """The first signal received and not yet acted on, or None."""
    return _requested[0] if _requested else None


def check() -> None:
    """A safe point: stop here if a signal came.

    Raises:
        Stop: SIGINT or SIGTERM was received (the request stays recorded: later safe points stop too).
    """
    if _requested:
        raise Stop(_requested[0])


def clear() -> None:
    """Forget the signals received (for a process that goes on after it acted on them)."""
    _requested.clear()


class StopAware:
    """A stopping criterion (Transformers' call shape) that is a safe point between two tokens.

    Wraps another criterion (the progress report); raising from here leaves ``generate`` before the
    next token, and the unfinished batch is not recorded.
    """

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner = inner

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        check()
        return self.inner(input_ids, scores, **kwargs)
