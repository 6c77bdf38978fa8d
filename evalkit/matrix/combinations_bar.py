"""The run's progress bar over its combinations, shared by the local worker pool (``executors``) and Ray
(``ray_tasks``)."""

from __future__ import annotations

import os


class CombinationsBar:
    """A progress bar over the run's combinations (elapsed time, and the time left as tqdm guesses it) where
    stderr is a terminal, for the executors whose workers show no bars of their own. No bar with ``-q``
    (TQDM_DISABLE). ``done(line)`` logs a line above the bar and counts one more combination; ``tick()`` redraws
    it, so that the elapsed time moves while a long combination runs."""

    TICK_SECONDS = 1.0  # how often a waiting executor calls tick()

    def __init__(self, total: int, log):
        from tqdm import tqdm

        self.log = log
        self.bar = tqdm(total=total, desc="combinations", unit="combination", leave=False,
                        disable=True if os.environ.get("TQDM_DISABLE") else None)

    def done(self, line: str) -> None:
        with self.bar.external_write_mode():
            self.log(line)
        self.bar.update(1)

    def tick(self) -> None:
        self.bar.refresh()

    def __enter__(self) -> "CombinationsBar":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
