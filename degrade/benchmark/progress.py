"""Progress lines while the benchmark runs: each part's start and end, and a heartbeat in between."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class Progress:
    """Logs a line per part and step, each stamped with the seconds since the benchmark began.

    A background thread adds a "still running" line whenever nothing was said for ``every``
    seconds, so a long step (a whole default job) never leaves the terminal silent.
    """

    def __init__(self, every: float = 20.0) -> None:
        self.every = every
        self.start = self.last = time.perf_counter()
        self.part_name, self.part_start, self.activity = "", self.start, ""
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.beat, name="bench-heartbeat", daemon=True)

    def __enter__(self) -> Progress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def line(self, message: str) -> None:
        """Log ``message`` with the elapsed time."""
        with self.lock:
            self.last = time.perf_counter()
            log.info("[%6.1f s] %s", self.last - self.start, message)

    def step(self, message: str) -> None:
        """A line inside the current part, prefixed with its name."""
        self.line(f"  {self.part_name}: {message}")

    def doing(self, activity: str) -> None:
        """Name what the current part is doing now, for the heartbeat lines (nothing is logged yet)."""
        self.activity = activity

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Say when part ``name`` starts and how long it took when it ends (or fails)."""
        self.part_name, self.part_start, self.activity = name, time.perf_counter(), ""
        self.line(f"{name}: start")
        outcome = "failed"
        try:
            yield
            outcome = "done"
        finally:
            self.line(f"{name}: {outcome} in {time.perf_counter() - self.part_start:.1f} s")
            self.part_name = ""

    def beat(self) -> None:
        while not self.stop.wait(min(5.0, self.every / 4)):
            now = time.perf_counter()
            if self.part_name and now - self.last >= self.every:
                doing = f", {self.activity}" if self.activity else ""
                self.step(f"still running ({now - self.part_start:.0f} s in{doing})")
