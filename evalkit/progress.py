"""Progress on long work, in lines that stay in the log: "run 3 of 6 done ... (1 min 20 s elapsed, about
2 min 40 s left)". Used by ``evalkit run`` and ``signoff`` (each combination, then the measuring and writing
phases) and ``evalkit compare`` (each pair of runs). The estimate is the mean time of the steps done so far
times the steps left: a guess that says so ("about")."""

from __future__ import annotations

import time


def duration(seconds: float) -> str:
    """Seconds as a person reads them: "8.2 s", "1 min 20 s", "1 h 05 min"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Steps:
    """Counts ``total`` steps of one kind (``what``: "run", "pair") and logs a line as each is done."""

    def __init__(self, total: int, what: str, log, already: int = 0, clock=time.perf_counter):
        self.total, self.what, self.log, self.clock = total, what, log or (lambda *_: None), clock
        self.done = already  # steps finished before (a resumed run's): not timed here
        self.timed = 0
        self.start = clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def left(self) -> float | None:
        """Seconds left, as the mean of this session's steps times the steps left (None before the first)."""
        if not self.timed:
            return None
        return self.elapsed() / self.timed * (self.total - self.done)

    def step(self, label: str) -> str:
        """One more step done: logs and returns "run 3 of 6 done: LABEL (elapsed, about ... left)"."""
        self.done += 1
        self.timed += 1
        left = self.left()
        tail = f"{duration(self.elapsed())} elapsed" + (
            f", about {duration(left)} left" if left and self.done < self.total else "")
        line = f"{self.what} {self.done} of {self.total} done: {label} ({tail})"
        self.log(line)
        return line

    def phase(self, text: str) -> None:
        """A phase after the steps (measuring parity, writing the report), with the time so far."""
        self.log(f"{text} ({duration(self.elapsed())} elapsed)")
