"""Progress bars whose time estimates are sane from the first seconds.

tqdm estimates the rate from everything since the bar started (or an average that remembers the
start for a long time), so a first step that pays for start-up — decoding every video into the
cache, cuDNN autotuning, spawning workers — made a two-minute job announce hours. Here the rate is
measured over the last ~20 seconds of updates and the clock can be restarted after the warm-up.
"""
from __future__ import annotations

import collections
import statistics
import time

from tqdm import tqdm


class Progress(tqdm):
    """A tqdm bar whose rate (and so its ETA) comes from a sliding window after `restart_clock()`."""

    WINDOW = 10  # refreshes (about mininterval seconds apart)

    def __init__(self, *args, **kwargs):
        # set before tqdm's __init__, which draws the bar (and so reads format_dict) once
        self._samples: collections.deque = collections.deque(maxlen=self.WINDOW)
        self._warm = False
        super().__init__(*args, **kwargs)

    def restart_clock(self) -> None:
        """Rates count from now: the time spent so far was warm-up, not a sample of the steady pace."""
        self._samples.clear()
        self._samples.append((time.time(), self.n))
        self._warm = True

    @property
    def format_dict(self):
        d = super().format_dict
        if not self._warm:
            return d
        now = time.time()
        if not self._samples or self._samples[-1][1] != self.n:
            self._samples.append((now, self.n))
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        d["rate"] = (n1 - n0) / (t1 - t0) if n1 > n0 and t1 > t0 else 0.0  # 0 shows as "?", not a guess
        return d


def progress_bar(total: int, initial: int, desc: str, unit: str, enabled: bool) -> Progress:
    """The harness's bar: on stderr, redrawn at most every 2 seconds, off under `-q`."""
    return Progress(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                    dynamic_ncols=True, mininterval=2.0, smoothing=0)


class JobClock:
    """The whole-job line of a long command made of steps (`suite`, `regress`): "[k/N] name (12 min so far,
    about 30 min left)". `estimates` are seconds per step known beforehand (None where no record tells).
    A step's own estimate is used for what is left, scaled by how the timed steps done so far compared with
    theirs, so a cheap first step does not make an expensive one ahead look cheap; a step never timed is
    guessed at the mean of the steps done (or of the estimates, before any), and the line says how many."""

    def __init__(self, total: int, estimates: list[float | None] | None = None):
        self.total = total
        self.start = self.last = time.perf_counter()
        self.estimates = estimates or [None] * total
        self.took: list[float] = []  # seconds of the steps done, in order; `line` is called once per step

    def line(self, k: int, name: str) -> str:
        """The line that starts step `k` (1-based) of the job."""
        now = time.perf_counter()
        if k > 1:
            self.took.append(now - self.last)
        self.last = now
        timed = [(d, e) for d, e in zip(self.took, self.estimates) if e]
        scale = sum(d for d, _ in timed) / sum(e for _, e in timed) if timed else 1.0
        known = [e for e in self.estimates if e]
        fill = statistics.mean(self.took) if self.took else statistics.mean(known) if known else None
        ahead = self.estimates[k - 1:]
        guess = ""
        if fill is not None:
            left = sum(e * scale if e else fill for e in ahead)
            guess = f", about {_minutes(left)} {'in all' if k == 1 else 'left'}"
            untimed = sum(not e for e in ahead)
            guess += f"; {untimed} step{'s' * (untimed > 1)} not timed before" if untimed else ""
        return f"[{k}/{self.total}] {name} ({_minutes(now - self.start)} so far{guess})"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
