"""Arrival processes: Poisson, two-state MMPP, diurnal (exact thinning) and trace replay.

Each process produces absolute arrival times in a window ``[start_s, end_s)`` through
``next_block()``, which returns ``(times, rows)`` (``rows``: trace row of each arrival, or None),
or None once the window is over (or a non-looped trace has run out). Blocks have fixed internal
sizes, so the sequence of times depends only on the parameters and the generator, never on how a
consumer slices it. Processes are plain objects (no Python generators): a half-consumed one pickles.
"""

from __future__ import annotations

import math

import numpy as np

BLOCK = 65_536  # candidate arrivals drawn per call; fixes the sequence of draws

Block = tuple[np.ndarray, np.ndarray | None]


def _cut(times: np.ndarray, end_s: float) -> tuple[np.ndarray, bool]:
    """Times before ``end_s`` and whether the window is over."""
    if times.size and times[-1] >= end_s:
        return times[: np.searchsorted(times, end_s, side="left")], True
    return times, False


class PoissonProcess:
    """Homogeneous Poisson arrivals at ``rate_qps`` (cumulated exponential gaps)."""

    def __init__(
        self,
        rate_qps: float,
        rng: np.random.Generator,
        start_s: float = 0.0,
        end_s: float = math.inf,
        block: int = BLOCK,
    ) -> None:
        if not rate_qps > 0:
            raise ValueError(f"rate_qps must be > 0, got {rate_qps}")
        self.rate_qps, self.rng, self.end_s, self.block = rate_qps, rng, end_s, block
        self._t, self._done = start_s, start_s >= end_s

    def next_block(self) -> Block | None:
        if self._done:
            return None
        times = self._t + np.cumsum(self.rng.standard_exponential(self.block) / self.rate_qps)
        self._t = float(times[-1])
        times, self._done = _cut(times, self.end_s)
        return times, None


class DiurnalProcess:
    """Rate ``rate_qps * (1 + amplitude * cos(2 pi (t - peak_at_s) / period_s))`` in absolute time.

    Sampled exactly by thinning (Lewis and Shedler, 1979): candidates from a Poisson process at the
    bound ``rate_qps * (1 + amplitude)``, each kept with probability ``rate(t) / bound``.
    """

    def __init__(
        self,
        rate_qps: float,
        amplitude: float,
        period_s: float,
        peak_at_s: float,
        rng: np.random.Generator,
        start_s: float = 0.0,
        end_s: float = math.inf,
        block: int = BLOCK,
    ) -> None:
        if not (rate_qps > 0 and 0 <= amplitude <= 1 and period_s > 0):
            raise ValueError(
                f"bad diurnal rate {rate_qps}, amplitude {amplitude}, period {period_s}"
            )
        self.rate_qps, self.amplitude = rate_qps, amplitude
        self.period_s, self.peak_at_s = period_s, peak_at_s
        self._candidates = PoissonProcess(rate_qps * (1 + amplitude), rng, start_s, end_s, block)
        self.rng = rng

    def rate(self, t: np.ndarray | float) -> np.ndarray | float:
        phase = 2 * np.pi * (np.asarray(t) - self.peak_at_s) / self.period_s
        return self.rate_qps * (1 + self.amplitude * np.cos(phase))

    def next_block(self) -> Block | None:
        got = self._candidates.next_block()
        if got is None:
            return None
        times = got[0]
        keep = self.rng.random(times.size) * (1 + self.amplitude) * self.rate_qps < self.rate(times)
        return times[keep], None


class MMPPProcess:
    """Two-state Markov-modulated Poisson process.

    The state alternates low/high with exponential holding times (means ``mean_low_s``,
    ``mean_high_s``); the start state is drawn from the stationary distribution, and by
    memorylessness the first holding time is a fresh exponential. Arrivals are generated per time
    window sized for about ``block`` arrivals: the window is cut at the state switches, each piece
    gets a Poisson count at its state's rate and uniformly placed times (exact for a CTMC-modulated
    Poisson process).
    """

    _SOJOURNS = 1024  # holding times drawn per refill

    def __init__(
        self,
        rate_low_qps: float,
        rate_high_qps: float,
        mean_low_s: float,
        mean_high_s: float,
        rng: np.random.Generator,
        start_s: float = 0.0,
        end_s: float = math.inf,
        block: int = BLOCK,
    ) -> None:
        if not (rate_low_qps >= 0 and rate_high_qps > 0 and mean_low_s > 0 and mean_high_s > 0):
            raise ValueError("MMPP needs rate_low >= 0, rate_high > 0 and positive holding times")
        self.rates = np.array([rate_low_qps, rate_high_qps])
        self.means = np.array([mean_low_s, mean_high_s])
        self.rng, self.end_s = rng, end_s
        self._window_s = block / mmpp_mean_rate(
            rate_low_qps, rate_high_qps, mean_low_s, mean_high_s
        )
        self._t, self._done = start_s, start_s >= end_s
        state = int(rng.random() < mean_high_s / (mean_low_s + mean_high_s))
        # _ends[i]: absolute end of sojourn i (state _states[i]); sojourn _i is the current one.
        self._states = np.array([state])
        self._ends = np.array([start_s + rng.standard_exponential() * self.means[state]])
        self._i = 0

    def _refill(self, until_s: float) -> None:
        """Draw sojourns, ``_SOJOURNS`` at a time, until one ends at or after ``until_s``. The
        pieces are joined once (joining per draw was quadratic when a window spans millions of
        short sojourns); the random stream is the same either way."""
        states_parts, ends_parts = [self._states[self._i :]], [self._ends[self._i :]]
        last_state, last_end = self._states[-1], self._ends[-1]
        while last_end < until_s:
            states = (last_state + 1 + np.arange(self._SOJOURNS)) % 2
            ends = last_end + np.cumsum(
                self.rng.standard_exponential(states.size) * self.means[states]
            )
            states_parts.append(states)
            ends_parts.append(ends)
            last_state, last_end = states[-1], ends[-1]
        self._states = np.concatenate(states_parts)
        self._ends = np.concatenate(ends_parts)
        self._i = 0

    def next_block(self) -> Block | None:
        if self._done:
            return None
        w_end = min(self._t + self._window_s, self.end_s)
        if self._ends[-1] < w_end:
            self._refill(w_end)
        j = self._i + int(np.searchsorted(self._ends[self._i :], w_end, side="left"))
        starts = np.concatenate([[self._t], self._ends[self._i : j]])
        lengths = np.concatenate([self._ends[self._i : j], [w_end]]) - starts
        counts = self.rng.poisson(self.rates[self._states[self._i : j + 1]] * lengths)
        times = np.repeat(starts, counts) + self.rng.random(int(counts.sum())) * np.repeat(
            lengths, counts
        )
        times.sort()
        self._t, self._i, self._done = w_end, j, w_end >= self.end_s
        return times, None


def mmpp_mean_rate(
    rate_low: float, rate_high: float, mean_low_s: float, mean_high_s: float
) -> float:
    """Stationary mean rate: the rates weighted by the fraction of time spent in each state."""
    return (rate_low * mean_low_s + rate_high * mean_high_s) / (mean_low_s + mean_high_s)


class TraceReplay:
    """Replay of trace timestamps (``times_s`` from 0, non-decreasing), time-scaled by ``scale``.

    Arrival ``k`` of loop ``m`` is at ``start_s + scale * (times_s[k] + m * period)``, with period =
    last timestamp + mean inter-arrival gap, so the loop keeps the trace's mean rate.
    """

    def __init__(
        self,
        times_s: np.ndarray,
        scale: float = 1.0,
        loop: bool = False,
        start_s: float = 0.0,
        end_s: float = math.inf,
        block: int = BLOCK,
    ) -> None:
        n = times_s.size
        if n == 0 or not scale > 0:
            raise ValueError("trace replay needs at least one row and scale > 0")
        period = times_s[-1] * n / (n - 1) if n > 1 else 0.0
        if loop and not period > 0:
            raise ValueError("cannot loop a trace whose timestamps span 0 s")
        self.times_s = times_s * scale
        self.period_s, self.loop = period * scale, loop
        self.start_s, self.end_s, self.block = start_s, end_s, block
        self._pos, self._lap, self._done = 0, 0, start_s >= end_s

    def next_block(self) -> Block | None:
        if self._done:
            return None
        rows = np.arange(self._pos, min(self._pos + self.block, self.times_s.size))
        times = self.start_s + self._lap * self.period_s + self.times_s[rows]
        self._pos = int(rows[-1]) + 1
        if self._pos == self.times_s.size:
            self._pos, self._lap, self._done = 0, self._lap + 1, not self.loop
        times, cut = _cut(times, self.end_s)
        self._done = self._done or cut
        return times, rows[: times.size]
