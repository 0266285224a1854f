"""Verdicts the book writes about its own runs, computed from the numbers and never assumed.

Two rules, written once here and quoted by the book (:data:`CRITERION`):

- :func:`compare` (one effect: ``first`` against ``second``) calls the effect "as in the paper" only when its
  direction is the paper's **and** the difference exceeds the seed spread; within the spread it says the runs
  cannot order the two; past it the other way, "the reverse of the paper". Where the paper gives its own
  difference, the sentence also says whether ours is larger or smaller than the paper's and by how much.
- :class:`Finding` is one row of a chapter's "What this chapter reproduces" table: ours beside the paper's, and
  ``reproduced``, ``partly`` or ``not at this preset`` (:data:`STATUSES`), by :data:`CRITERION`.

The seed spread of a difference is the standard deviation over seeds of the per-seed differences where both sides
have the same seeds, otherwise ``sqrt(sd_first**2 + sd_second**2)``; with one seed a side there is none, and the
verdict says so (an effect seen once is "partly", never "reproduced").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: An effect whose size the paper gives is "reproduced" only within this factor of it either way (or within
#: :data:`SIZE_POINTS` points, or the seed spread, of it); larger or smaller is "partly".
SIZE_FACTOR = 3.0
SIZE_POINTS = 2.0

REPRODUCED = "reproduced"
PARTLY = "partly"
NOT_HERE = "not at this preset"
NOT_RUN = "not run"
#: What a claim's verdict can be; ``not run`` where the runs that test it are not stored.
STATUSES = (REPRODUCED, PARTLY, NOT_HERE, NOT_RUN)

#: The criterion, in the words the book prints once (intro) and every chapter links to.
CRITERION = (
    "**reproduced**: our runs show the paper's effect in the paper's direction and by more than the spread over "
    "seeds and, where the paper gives its size, of that size (within a factor of 3, or 2 points, of it; for a "
    "level, within the tolerance the row states); **partly**: the direction is the paper's but the effect is "
    "within the seed spread, seen with one seed only, far larger or smaller than the paper's, or holds for only "
    "some of the networks or settings tested; **not at this preset**: the effect is absent or reversed in our runs at this preset (which may be too "
    "small to show it: the row says what differs); **not run**: the runs that test it are not stored."
)


@dataclass(frozen=True)
class Comparison:
    """``first`` against ``second``: ``diff`` = first - second (in ``unit``), ``spread`` its seed spread (None: one
    seed), ``paper_diff`` the paper's difference (None: the paper gives its direction only, ``paper_first``)."""

    first: str
    second: str
    mean_first: float
    mean_second: float
    diff: float
    spread: float | None
    paper_first: bool | None
    paper_diff: float | None
    unit: str = "points"
    percent: bool = True  # the means are accuracies in %: shown as "55.8%"

    @property
    def separated(self) -> bool | None:
        """The difference exceeds the seed spread (None: no spread to judge it by)."""
        return None if self.spread is None else abs(self.diff) > self.spread

    @property
    def direction(self) -> str:
        """``agrees``, ``reversed`` (as measured, whatever the spread), ``level`` (exactly equal) or ``unknown``
        (the paper gives no direction)."""
        if self.paper_first is None:
            return "unknown"
        if self.diff == 0:
            return "level"
        return "agrees" if (self.diff > 0) == self.paper_first else "reversed"

    @property
    def verdict(self) -> str:
        """``as in the paper`` (direction agrees, beyond the spread), ``reverse of the paper`` (opposite, beyond
        the spread), ``within the spread`` (cannot be ordered), ``one seed`` (no spread: not judged) or
        ``no paper direction``."""
        if self.paper_first is None:
            return "no paper direction"
        if self.spread is None:
            return "one seed"
        if not self.separated:
            return "within the spread"
        return "as in the paper" if self.direction == "agrees" else "reverse of the paper"

    @property
    def size_matches(self) -> bool:
        """Ours is of the paper's size: within :data:`SIZE_FACTOR` times the paper's difference either way, or within
        the seed spread (at least :data:`SIZE_POINTS`) of it. True where the paper gives no size."""
        if self.paper_diff is None or self.direction != "agrees":
            return True
        ours, paper = abs(self.diff), abs(self.paper_diff)
        if abs(ours - paper) <= max(self.spread or 0.0, SIZE_POINTS):
            return True
        return paper > 0 and paper / SIZE_FACTOR <= ours <= paper * SIZE_FACTOR

    @property
    def status(self) -> str:
        """This comparison as a claim's status (:data:`STATUSES`): reproduced only where the effect is also of the
        paper's size (:attr:`size_matches`) when the paper gives one."""
        if self.verdict == "as in the paper":
            return REPRODUCED if self.size_matches else PARTLY
        if self.verdict in ("within the spread", "one seed") and self.direction == "agrees":
            return PARTLY
        return NOT_HERE

    def _value(self, v: float) -> str:
        return f"{v:.1f}%" if self.percent else f"{v:.3g}"

    def size_text(self) -> str:
        """How ours compares with the paper's difference: larger/smaller by how much, or about the paper's size
        (within the spread). Empty without a paper difference or when the directions differ."""
        if self.paper_diff is None or self.direction != "agrees":
            return ""
        gap = abs(self.diff) - abs(self.paper_diff)
        tolerance = self.spread if self.spread is not None else 0.0
        if abs(gap) <= tolerance or abs(gap) < 0.05:
            return f"about the paper's size ({abs(self.paper_diff):.1f} {self.unit})"
        word = "larger" if gap > 0 else "smaller"
        return f"{abs(gap):.1f} {self.unit} {word} than in the paper ({abs(self.paper_diff):.1f} {self.unit})"

    def sentence(self) -> str:
        """The numbers on both sides, the difference and its spread, and the verdict in words."""
        spread = f"seed spread {self.spread:.1f}" if self.spread is not None else "one seed, no spread"
        text = (f"{self.first} {self._value(self.mean_first)} against {self.second} {self._value(self.mean_second)} "
                f"({self.diff:+.1f} {self.unit}, {spread})")
        verdict = self.verdict
        if verdict == "no paper direction":
            return text
        paper_leader = self.first if self.paper_first else self.second
        if verdict == "as in the paper":
            size = self.size_text()
            return f"{text}: ahead as in the paper" + (f", {size}" if size else "")
        if verdict == "reverse of the paper":
            return f"{text}: the reverse of the paper, which has {paper_leader} ahead"
        if verdict == "within the spread":
            return f"{text}: within the seed spread, so these runs cannot order them (the paper has {paper_leader} ahead)"
        lead = "the paper's direction" if self.direction == "agrees" else "the reverse of the paper's direction"
        return f"{text}: {lead} (the paper has {paper_leader} ahead), seen once, so not told from noise"


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value). ValueError for none."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_sd: no values")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def compare(first: str, second: str, ours_first: Sequence[float], ours_second: Sequence[float],
            paper_first: bool | None = None, paper_diff: float | None = None, paired: bool = False,
            unit: str = "points", percent: bool = True) -> Comparison:
    """Compare two sets of per-seed values (``ours_first``, ``ours_second``; in ``unit``, accuracies in % by
    default). ``paired``: the i-th values share a seed, so the spread is that of the per-seed differences.
    ``paper_diff`` (the paper's first - second) sets ``paper_first`` where that is not given."""
    if paper_first is None and paper_diff is not None and paper_diff != 0:
        paper_first = paper_diff > 0
    m1, s1 = mean_sd(ours_first)
    m2, s2 = mean_sd(ours_second)
    if paired:
        if len(ours_first) != len(ours_second):
            raise ValueError(f"compare: paired values of different lengths ({len(ours_first)}, {len(ours_second)})")
        _, spread = mean_sd([a - b for a, b in zip(ours_first, ours_second)])
    elif s1 is None and s2 is None:
        spread = None
    else:
        spread = math.sqrt((s1 or 0.0) ** 2 + (s2 or 0.0) ** 2)
    return Comparison(first, second, m1, m2, m1 - m2, spread, paper_first, paper_diff, unit, percent)


def by_seed(frame, column: str = "test_accuracy", scale: float = 100.0):
    """Per seed, the mean of ``column`` times ``scale`` (accuracies in %) over the rows of ``frame`` (a pandas
    DataFrame with a ``seed`` column: whatever else varies in it, K or switch points, is averaged)."""
    return scale * frame.groupby("seed")[column].mean()


def paired_by_seed(first, second) -> tuple[list[float], list[float], bool]:
    """The values of two sides by seed (pandas Series indexed by seed, :func:`by_seed`) as lists for
    :func:`compare`, and whether they are paired: the same seeds on both sides, in seed order."""
    same = sorted(set(first.index) & set(second.index))
    if len(same) == len(first) == len(second):
        return [first[s] for s in same], [second[s] for s in same], True
    return list(first), list(second), False


def trend(label: str, xs: Sequence[float], ys: Sequence[Sequence[float]], paper_rising: bool) -> Comparison:
    """A trend along a sweep as one comparison: the value at the last point of ``xs`` against the first (``ys``:
    lists of per-seed values per point), the paper's direction ``paper_rising``."""
    if len(xs) < 2:
        raise ValueError(f"trend {label!r}: needs at least two points, got {len(xs)}")
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    lo, hi = order[0], order[-1]
    return compare(f"{label} at {xs[hi]:g}", f"at {xs[lo]:g}", ys[hi], ys[lo], paper_first=paper_rising)


@dataclass(frozen=True)
class Finding:
    """What our runs say about one claim: ``ours`` (the number or words shown) and ``status`` (:data:`STATUSES`),
    with ``why`` (what the status rests on, shown where it is not obvious)."""

    ours: str
    status: str
    why: str = ""

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"Finding status {self.status!r}: one of {', '.join(STATUSES)}")


def level(ours: Sequence[float], paper: float, tolerance: float, what: str = "") -> Finding:
    """A level claim (our accuracy against the paper's number, in %): reproduced within ``tolerance`` points (or
    within two seed standard deviations where that is larger), partly within three times the tolerance, else not."""
    mean, sd = mean_sd(ours)
    band = max(tolerance, 2 * sd) if sd is not None else tolerance
    gap = mean - paper
    shown = f"{mean:.1f}%" + (f" ± {sd:.1f}" if sd is not None else "") + (f" {what}" if what else "")
    if abs(gap) <= band:
        status = REPRODUCED
    elif abs(gap) <= 3 * band:
        status = PARTLY
    else:
        status = NOT_HERE
    return Finding(shown, status, f"{gap:+.1f} points from the paper's {paper:.1f}% (tolerance {band:.1f})")


def combine(findings: Sequence[Finding], ours: str) -> Finding:
    """One finding over several cases (networks, settings): reproduced when all are, not at this preset when none
    is reproduced or partly, partly otherwise."""
    statuses = [f.status for f in findings if f.status != NOT_RUN]
    if not statuses:
        return Finding(ours, NOT_RUN)
    if all(s == REPRODUCED for s in statuses):
        status = REPRODUCED
    elif all(s == NOT_HERE for s in statuses):
        status = NOT_HERE
    else:
        status = PARTLY
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in STATUSES if statuses.count(s))
    return Finding(ours, status, counts)
