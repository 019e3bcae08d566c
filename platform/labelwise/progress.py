"""Progress lines a person can follow: what is running, how much is done, time left.

    progress = Progress(total=16, what="trials")
    progress.update(done=3, note="random k=50 seed 0")
    -> "[sweep] trials 3/16 (19%), 4m12s elapsed, about 18m10s left: random k=50 seed 0"
"""

from __future__ import annotations

import sys
import time


def fmt_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def eta(elapsed: float, done: int, total: int) -> float | None:
    """Seconds left at the mean rate so far (None before anything is done)."""
    if done <= 0 or total <= 0:
        return None
    return elapsed / done * max(0, total - done)


class Progress:
    def __init__(self, total: int, what: str, prefix: str = "labelwise", stream=None, clock=time.monotonic,
                 show_eta: bool = True):
        """``show_eta``: False when the steps differ too much in length for a mean rate."""
        self.show_eta = show_eta
        self.total = total
        self.what = what
        self.prefix = prefix
        self._stream = stream
        self.clock = clock
        self.start = clock()
        self.skipped = 0

    @property
    def stream(self):
        return self._stream or sys.stdout

    def __getstate__(self):
        # Tune pickles its callbacks: a stream does not travel, the receiver prints to stdout
        state = dict(self.__dict__)
        state["_stream"] = None
        return state

    def line(self, done: int, note: str = "") -> str:
        elapsed = self.clock() - self.start
        pct = 100 * done / self.total if self.total else 100
        text = f"[{self.prefix}] {self.what} {done}/{self.total} ({pct:.0f}%), {fmt_seconds(elapsed)} elapsed"
        # work found already done costs no time: leave it out of the rate
        left = eta(elapsed, done - self.skipped, self.total - self.skipped)
        if self.show_eta and left is not None and done < self.total:
            text += f", about {fmt_seconds(left)} left"
        if note:
            text += f": {note}"
        return text

    def update(self, done: int, note: str = "") -> None:
        print(self.line(done, note), file=self.stream, flush=True)

    def message(self, text: str) -> None:
        print(f"[{self.prefix}] {text}", file=self.stream, flush=True)


class BatchProgress:
    """A line per ~10% of batches on stderr (long CPU evaluations show they are alive)."""

    def __init__(self, label: str | None, total: int):
        self.label, self.total, self.done, self.start = label, total, 0, time.time()
        self.every = max(1, total // 10)

    def step(self):
        self.done += 1
        if self.label and (self.done % self.every == 0 or self.done == self.total):
            print(
                f"  {self.label}: {self.done}/{self.total} batches ({time.time() - self.start:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
