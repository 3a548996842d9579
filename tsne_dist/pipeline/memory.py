"""The memory model: the run process's expected peak memory per stage, and the memory it may use.

Each stage's peak resident memory is modelled as ``base + N x (per_item + 4 x D x
vector_copies)`` bytes: a fixed part (the interpreter, libraries, compiled code), a
part per item (neighbour lists, P, the layout and its optimiser state, outputs), and
the float32 copies of the N x D vectors the stage holds. ``base`` and ``per_item``
were fitted to the peaks ``metrics.json`` reported for runs of 100,000 and 1,000,000
synthetic items x 128 dimensions with the default settings (k = 90) on the 2-core
machine (benchmarks/README.md, "The memory model"); ``vector_copies`` is what the
stage's code holds (the rest of the slope is ``per_item``). The process's peak is the
largest stage's. Without vectors (the similarity graph of the interactions path) the
same per-item figures are used, an approximation: that path's kNN stage reads the
co-occurrence matrix in row blocks instead of holding vectors. Dask workers are
not modelled here (their memory is bounded by a partition or a shard; see
benchmarks/README.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..settings import SIZE_PATTERN

MB = 2**20

# stage: (base MiB, bytes per item besides the vectors, float32 copies of the N x D vectors held).
# Fitted to the peaks (MiB) of two runs of synthetic vectors x 128, k = 90 (benchmarks/README.md,
# "The memory model"): 100k items (kNN by pynndescent in-process) and 1M items (sharded on Dask):
#   vectors 330.8 / 1012.4, knn 1352.9 / 4029.6, affinities 1166.6 / 6017.1,
#   layout 1214.4 / 5177.6, metrics 1762.4 / 4398.6, outputs 859.7 / 1134.9.
STAGE_MODEL: dict[str, tuple[float, float, float]] = {
    "vectors": (255.0, 26.0, 1.5),
    "knn": (1055.0, 2095.0, 2.0),
    "affinities": (628.0, 5651.0, 0.0),
    "layout": (774.0, 4105.0, 1.0),
    "metrics": (1470.0, 2559.0, 1.0),
    "outputs": (829.0, 321.0, 0.0),
}
UNITS = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


@dataclass(frozen=True)
class MemoryEstimate:
    """Expected peak memory of the run process, by stage.

    Attributes
    ----------
    by_stage : dict
        Stage name -> expected peak resident memory, bytes.
    n_items, n_dims : int
        The size modelled (``n_dims`` 0 without vectors).
    """

    by_stage: dict[str, float]
    n_items: int
    n_dims: int

    @property
    def peak(self) -> float:
        """The largest stage's peak, bytes."""
        return max(self.by_stage.values())

    @property
    def peak_stage(self) -> str:
        """The stage with the largest peak."""
        return max(self.by_stage, key=self.by_stage.get)


def expected_memory(n_items: int, n_dims: int | None) -> MemoryEstimate:
    """The model's peak resident memory per stage for N items of D dimensions (D None: no vectors)."""
    dims = n_dims or 0
    by_stage = {stage: base * MB + n_items * (per_item + 4.0 * dims * copies)
                for stage, (base, per_item, copies) in STAGE_MODEL.items()
                if dims or stage != "vectors"}
    return MemoryEstimate(by_stage=by_stage, n_items=n_items, n_dims=dims)


def parse_size(text: str) -> int:
    """Bytes in ``text`` such as ``8GB``, ``6GiB``, ``512MB`` or ``1000000``.

    Raises
    ------
    ValueError
        When ``text`` is not a size.
    """
    match = re.match(SIZE_PATTERN, str(text))
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match.group(1)) * UNITS[match.group(2)])


def available_memory() -> tuple[int, str]:
    """The memory this process may use, bytes, and where that figure comes from: the container's
    cgroup limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``) when set, else the machine's RAM."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text), f"the container's memory limit ({path})"
    import psutil

    return int(psutil.virtual_memory().total), "this machine's memory"


def format_bytes(value: float) -> str:
    """``value`` bytes as GB with one decimal (MB below 1 GB)."""
    return f"{value / 1e9:.1f} GB" if value >= 1e9 else f"{value / 1e6:.0f} MB"


def memory_limit(max_memory: str | None) -> tuple[int, str]:
    """The limit a plan is checked against: ``max_memory`` when set, else :func:`available_memory`."""
    if max_memory is not None:
        return parse_size(max_memory), "`max_memory`"
    return available_memory()


def check_fits(estimate: MemoryEstimate, max_memory: str | None) -> None:
    """Refuse a plan whose expected peak exceeds the memory it may use.

    Raises
    ------
    ConfigError
        Naming the stage, the figures and the fixes.
    """
    from ..errors import ConfigError

    limit, source = memory_limit(max_memory)
    if estimate.peak > limit:
        raise ConfigError(
            f"the run is expected to need {format_bytes(estimate.peak)} (stage {estimate.peak_stage}, "
            f"{estimate.n_items:,} items" + (f" x {estimate.n_dims}" if estimate.n_dims else "")
            + f"), more than the {format_bytes(limit)} of {source}",
            "give the process more memory, map fewer items (interactions: `max_items`), or set `max_memory` "
            "if the limit is wrong")

