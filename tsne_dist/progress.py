"""Progress on long work: bars on a terminal, plain log lines elsewhere; stage timing."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

logger = logging.getLogger("tsne_dist")

_state = {"bars": True}


@contextmanager
def verbose_logging(verbose: bool) -> Iterator[None]:
    """With ``verbose``, show tsne_dist's progress on stderr like the CLI does, for this block.

    Nothing changes when ``verbose`` is False or the ``tsne_dist`` logger already has
    a handler (the application configured logging itself).
    """
    if not verbose or logger.handlers:
        yield
        return
    if logging.getLogger().handlers:  # the application logs through the root logger: use its handlers
        level = logger.level
        logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def enable_bars(enabled: bool) -> None:
    """Allow or forbid progress bars (``--quiet`` forbids them)."""
    _state["bars"] = enabled


def _use_bars() -> bool:
    return _state["bars"] and sys.stderr.isatty() and logger.isEnabledFor(logging.INFO)


class Progress:
    """A counter that shows a bar on a terminal, else logs about every 10 %.

    Parameters
    ----------
    total : int
        Units of work.
    description : str
        What is being done, e.g. ``"kNN"``.
    """

    def __init__(self, total: int, description: str) -> None:
        self.total = max(int(total), 1)
        self.description = description
        self.done = 0
        self._next_log = 0.1
        self._bar = None
        if _use_bars():
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self._bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                TimeRemainingColumn(), transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=self.total)

    def advance(self, units: int = 1, note: str = "") -> None:
        """Record ``units`` more of work done; ``note`` is shown beside it."""
        self.done += units
        if self._bar is not None:
            text = f"{self.description} {note}".strip()
            self._bar.update(self._task, completed=self.done, description=text)
            return
        fraction = self.done / self.total
        if fraction >= self._next_log or self.done >= self.total:
            logger.info("%s: %d/%d (%.0f%%)%s", self.description, self.done, self.total,
                        100 * fraction, f" {note}" if note else "")
            while self._next_log <= fraction:
                self._next_log += 0.1

    def close(self) -> None:
        """Remove the bar from the terminal."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PeakMemory:
    """Samples this process's resident memory in a thread; keeps the peak."""

    def __init__(self, interval: float = 0.05) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> "_PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


@dataclass
class StageTimings:
    """Seconds and peak resident memory (MB) per stage, in the order run."""

    seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage, log its start and end with seconds and peak memory."""
        logger.info("stage %s: started", name)
        start = time.perf_counter()
        with _PeakMemory() as memory:
            yield
        seconds = time.perf_counter() - start
        self.seconds[name] = round(seconds, 3)
        self.peak_memory_mb[name] = round(memory.peak / 2**20, 1)
        logger.info("stage %s: done in %.2f s, peak memory %.0f MB", name, seconds, memory.peak / 2**20)
