"""The breaking point: the level at which a measure crosses a threshold, found by bisection.

Pure: no Hydra, no files. A :class:`Bisection` is told what each probe measured and says which
levels to probe next, so whoever runs the probes (the ``bisect`` sweeper, as jobs; a test, as a
function) decides how to run them. The search walks the method's level axis in order of damage
(uni_quant's larger n is less damage), halves the bracket in log space on a log axis, and assumes
the measure moves one way as damage grows: the answer is the bracket between the last level that
held and the first that crossed, narrowed to the tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from degrade.errors import require

# How the measure moves as damage grows, and so what "crossed" means.
DIRECTIONS: dict[str, Callable[[float, float], bool]] = {
    "falls": lambda value, threshold: value <= threshold,  # accuracy, ttr
    "rises": lambda value, threshold: value >= threshold,  # perplexity, repetition
}
# What the threshold's value means: a fraction of the clean model's measure, or the measure itself.
THRESHOLDS: dict[str, Callable[[float, float | None], float]] = {
    "relative": lambda value, clean: value * clean,
    "absolute": lambda value, clean: value,
}
SIGNIFICANT = 4  # a probe's level is rounded to this many digits: readable job dirs, the same dirs on a re-run


@dataclass(frozen=True)
class Criterion:
    """When a probe has crossed: ``measure`` ``direction`` past ``value`` (``kind``: relative to the clean model)."""

    measure: str
    kind: str = "relative"
    value: float = 0.5
    direction: str = "falls"

    def __post_init__(self) -> None:
        require(self.kind in THRESHOLDS, "hydra.sweeper.threshold.kind", f"{self.kind!r}; allowed: relative, absolute")
        require(self.direction in DIRECTIONS, "hydra.sweeper.direction", f"{self.direction!r}; allowed: falls, rises")
        require(math.isfinite(self.value), "hydra.sweeper.threshold.value", f"{self.value}; must be a finite number")
        require(
            self.kind != "relative" or self.value > 0,
            "hydra.sweeper.threshold.value",
            f"{self.value}; a relative threshold is a factor of the clean value, > 0 (0.5: half of it, 2: twice it)",
        )

    @property
    def needs_clean(self) -> bool:
        """Whether the threshold is relative to the clean model's measure (level 0)."""
        return self.kind == "relative"

    def threshold(self, clean: float | None) -> float:
        """The measure's value at which a probe has crossed."""
        return THRESHOLDS[self.kind](self.value, clean)

    def crossed(self, value: float, clean: float | None) -> bool:
        """Whether a probe that measured ``value`` has crossed the threshold."""
        return DIRECTIONS[self.direction](value, self.threshold(clean))


@dataclass(frozen=True)
class Axis:
    """The searched range of one method's levels, in order of damage: ``least`` to ``most``.

    ``tolerance`` is the bracket's width at which the search stops: in levels on a linear axis, a
    ratio on a log axis (0.1: the larger end at most 1.1 times the smaller). Integer levels stop
    when no integer lies between the ends.
    """

    least: float
    most: float
    log: bool = False
    integer: bool = False
    tolerance: float = 0.05

    def __post_init__(self) -> None:
        require(self.tolerance > 0, "hydra.sweeper.tolerance", f"{self.tolerance}; must be > 0")
        require(self.least != self.most, "hydra.sweeper.lo", f"equals hi ({self.least:g}); give a range")
        require(
            not self.log or (self.least > 0 and self.most > 0),
            "hydra.sweeper.lo",
            f"the range [{self.least:g}, {self.most:g}] is searched on a log axis: both ends must be > 0",
        )

    def narrow(self, a: float, b: float) -> bool:
        """Whether the bracket ``a``–``b`` is within the tolerance (or no level lies between its ends)."""
        if self.integer and abs(b - a) <= 1:
            return True
        if self.log:
            return max(a, b) / min(a, b) <= 1 + self.tolerance
        return abs(b - a) <= self.tolerance

    def between(self, a: float, b: float) -> float | None:
        """The level halfway from ``a`` to ``b`` on this axis (rounded), or None when none lies strictly between."""
        mid = midpoint(a, b, log=self.log, integer=self.integer)
        return mid if min(a, b) < mid < max(a, b) else None


def midpoint(a: float, b: float, *, log: bool, integer: bool) -> float:
    """The level halfway between ``a`` and ``b``: geometric on a log axis (both ends positive), else arithmetic,
    rounded to an integer for integer levels and to a level's printed precision otherwise."""
    middle = math.sqrt(a * b) if log and a > 0 and b > 0 else (a + b) / 2
    return float(round(middle)) if integer else round_level(middle)


def round_level(level: float) -> float:
    """``level`` to :data:`SIGNIFICANT` significant digits."""
    return float(f"{level:.{SIGNIFICANT}g}")


@dataclass
class Probe:
    """One measured level: its value, whether it crossed, and what the runner keeps with it (job dir, repetitions)."""

    level: float
    value: float
    crossed: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """How a search ended.

    ``status`` is ``found`` (bracket within the tolerance), ``max_probes`` (stopped with a wider
    bracket), ``crossed_at_least`` (the least-damage end already crossed) or ``not_crossed`` (the
    most-damage end still held). ``bracket`` is (last level that held, first level that crossed);
    ``level`` is its middle on the axis.
    """

    status: str
    level: float | None
    bracket: tuple[float | None, float | None]
    message: str


class Bisection:
    """One search, step by step: probe :meth:`pending`, :meth:`tell` each result, until :attr:`done`."""

    def __init__(self, axis: Axis, criterion: Criterion, max_probes: int = 12) -> None:
        require(max_probes >= 2, "hydra.sweeper.max_probes", f"{max_probes}; must be ≥ 2 (the range's two ends)")
        self.axis, self.criterion, self.max_probes = axis, criterion, max_probes
        self.clean: float | None = None
        self.probes: list[Probe] = []
        self.holds, self.breaks = axis.least, axis.most  # the bracket, once both ends are measured

    def tell_clean(self, value: float) -> None:
        """The clean model's measure (level 0), which a relative threshold is a fraction of."""
        self.clean = value

    def tell(self, level: float, value: float, **detail: Any) -> Probe:
        """Record what the probe at ``level`` measured; narrows the bracket."""
        require(
            self.clean is not None or not self.criterion.needs_clean,
            "hydra.sweeper.threshold.kind",
            "relative: the clean value must be measured before any probe is decided",
        )
        probe = Probe(level, value, self.criterion.crossed(value, self.clean), dict(detail))
        self.probes.append(probe)
        if probe.level not in (self.axis.least, self.axis.most):
            if probe.crossed:
                self.breaks = level
            else:
                self.holds = level
        return probe

    def _measured(self, level: float) -> Probe | None:
        return next((p for p in self.probes if p.level == level), None)

    def pending(self) -> list[float]:
        """The levels to probe now: both ends of the range first (together), then one middle at a time."""
        if self.done:
            return []
        ends = [lvl for lvl in (self.axis.least, self.axis.most) if self._measured(lvl) is None]
        if ends:
            return ends
        middle = self.axis.between(self.holds, self.breaks)
        return [] if middle is None else [middle]

    @property
    def done(self) -> bool:
        """Whether the search has its answer."""
        least, most = self._measured(self.axis.least), self._measured(self.axis.most)
        if least is None or most is None:
            return False
        if least.crossed or not most.crossed or len(self.probes) >= self.max_probes:
            return True
        return self.axis.narrow(self.holds, self.breaks) or self.axis.between(self.holds, self.breaks) is None

    def answer(self) -> Answer:
        """The search's answer (call when :attr:`done`)."""
        least, most = self._measured(self.axis.least), self._measured(self.axis.most)
        ax = self.axis
        if least is not None and least.crossed:
            message = f"already crossed at the least-damage end {ax.least:g}: search from less damage"
            return Answer("crossed_at_least", None, (None, ax.least), message)
        if most is not None and not most.crossed:
            message = f"never crosses between {ax.least:g} and {ax.most:g}: search up to more damage"
            return Answer("not_crossed", None, (ax.most, None), message)
        level = midpoint(self.holds, self.breaks, log=ax.log, integer=ax.integer)
        if ax.narrow(self.holds, self.breaks) or ax.between(self.holds, self.breaks) is None:
            message = f"crosses between {self.holds:g} and {self.breaks:g}"
            return Answer("found", level, (self.holds, self.breaks), message)
        message = (
            f"stopped after {len(self.probes)} probes (max_probes) with the crossing between "
            f"{self.holds:g} and {self.breaks:g}, wider than the tolerance"
        )
        return Answer("max_probes", level, (self.holds, self.breaks), message)


def search(
    measure: Callable[[float], float], axis: Axis, criterion: Criterion, max_probes: int = 12, clean_level: float = 0
) -> Bisection:
    """Run a whole search with ``measure`` computed in-process (one probe at a time); return it, done."""
    bisection = Bisection(axis, criterion, max_probes)
    if criterion.needs_clean:
        bisection.tell_clean(measure(clean_level))
    while levels := bisection.pending():
        for level in levels:
            bisection.tell(level, measure(level))
    return bisection


def grid_answer(
    levels: list[float],
    values: list[float],
    criterion: Criterion,
    clean: float | None,
    log: bool,
    integer: bool = False,
) -> Answer:
    """The answer read off a full grid: the first level (in order of damage) that crossed, and the one before it.

    ``levels`` must be in order of growing damage, ``values`` their measures. The answer is the
    bracket's middle on the axis, as the search gives it: rounded to an integer for a method
    whose levels are integers (uni_quant's n), so the two answers compare like for like.
    """
    crossed = [criterion.crossed(v, clean) for v in values]
    if True not in crossed:
        return Answer("not_crossed", None, (levels[-1], None), f"never crosses up to {levels[-1]:g}")
    first = crossed.index(True)
    if first == 0:
        return Answer("crossed_at_least", None, (None, levels[0]), f"already crossed at {levels[0]:g}")
    holds, breaks = levels[first - 1], levels[first]
    level = midpoint(holds, breaks, log=log, integer=integer)
    return Answer("found", level, (holds, breaks), f"crosses between {holds:g} and {breaks:g}")
