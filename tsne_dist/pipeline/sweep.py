"""``tsne-dist sweep``: one map per perplexity from one kNN graph, a PNG grid and a metrics table."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import read_config_file
from ..errors import ConfigError, UserError
from ..outputs import MAP_FILE
from ..settings import neighbours_for
from ..storage import Location, storage_options_applied
from ..store import RunStore
from .finish import Result
from .plan import coerce_config

logger = logging.getLogger("tsne_dist")

SHARED_STAGES = ("items", "cooccurrence", "vectors", "knn")  # what every perplexity's run takes from the first
SWEEP_PNG, SWEEP_JSON, SWEEP_TABLE = "sweep.png", "sweep.json", "sweep.md"
GRID_COLUMNS = 3
TABLE_COLUMNS = ("perplexity", "affinity_neighbors", "kl_divergence", "knn_recall@10", "trustworthiness@10",
                 "silhouette_2d", "affinities_s", "layout_s")


@dataclass
class SweepResult:
    """What a sweep made.

    Attributes
    ----------
    out : str
        The sweep's folder (``perplexity-P/`` runs, ``sweep.png``, ``sweep.json``, ``sweep.md``).
    runs : dict
        Perplexity -> the :class:`Result` of its run.
    table : list of dict
        One row per perplexity (as in ``sweep.json``).
    """

    out: str
    runs: dict[float, Result]
    table: list[dict[str, Any]]


def parse_perplexities(text: str | Sequence[float]) -> list[float]:
    """Perplexities from ``"10,30,100"`` (or a sequence), largest first, each once.

    Raises
    ------
    ConfigError
        For an empty list, a value that is not a number, or one that is not positive.
    """
    items = [item.strip() for item in text.split(",")] if isinstance(text, str) else list(text)
    try:
        values = [float(item) for item in items if item != ""]
    except (TypeError, ValueError):
        raise ConfigError(f"perplexity list {text!r} is not a comma-separated list of numbers",
                          "pass e.g. --perplexity 10,30,100") from None
    if not values or min(values) <= 0:
        raise ConfigError(f"perplexity list {text!r} needs at least one value, all > 0", "pass e.g. --perplexity 10,30,100")
    return sorted(set(values), reverse=True)


def sweep(config: dict[str, Any] | str, perplexities: str | Sequence[float], *, verbose: bool = False) -> SweepResult:
    """Map one input at several perplexities, sharing one kNN graph.

    The largest perplexity runs first, with k = 3 x perplexity neighbours (or
    ``n_neighbors``) into ``OUT/perplexity-P``. Every other perplexity is a run of its
    own in its own folder that starts from copies of the first run's finished input,
    co-occurrence and kNN stages (so they are not computed again) and takes P from only
    each item's nearest 3 x perplexity of those neighbours (``affinity_neighbors``).
    Each run is resumable like any run; ``info``, ``view`` and ``compare`` open them.

    Parameters
    ----------
    config : dict or str
        The run's settings (as for :func:`tsne_dist.run`, ``perplexity`` ignored), or a
        config file.
    perplexities : str or sequence of float
        ``"10,30,100"`` or numbers.
    verbose : bool
        Log progress to stderr.

    Returns
    -------
    SweepResult

    Raises
    ------
    tsne_dist.errors.UserError
        For bad settings or input (checked for every perplexity before the first runs).
    """
    values = read_config_file(config) if isinstance(config, str) else dict(config)
    chosen = parse_perplexities(perplexities)
    if not values.get("out"):
        raise ConfigError("no output folder given", "set `out` to the sweep's folder")
    if values.get("affinity_neighbors") is not None:
        raise ConfigError("sweep sets `affinity_neighbors` itself (3 x each perplexity)",
                          "leave out `affinity_neighbors`; set `n_neighbors` for the shared kNN graph")
    storage_options = coerce_config({**values, "perplexity": chosen[0]}).storage_options
    location = Location(values["out"], storage_options)
    settings = {p: _settings_for(values, p, chosen[0], location) for p in chosen}
    folders = [settings[p]["out"] for p in chosen]
    if len(set(folders)) < len(folders):
        raise ConfigError(f"perplexities {perplexities!r} name the same folder twice ({', '.join(folders)})",
                          "pass perplexities that differ in their first 6 significant digits")
    for p in chosen:
        coerce_config(dict(settings[p]))  # every perplexity's settings are checked before anything runs
    existed = location.is_local and os.path.exists(location.url)
    try:
        runs = _run_each(chosen, settings, storage_options, verbose)
    except UserError:
        if location.is_local and not existed and os.path.isdir(location.url) and not os.listdir(location.url):
            os.rmdir(location.url)  # the folder this failed sweep made, still empty: leave no clutter
        raise
    table = [_row(p, settings[p], runs[p]) for p in sorted(chosen)]
    with storage_options_applied(storage_options, [location.url]):
        _write_grid(location, [(p, Location(runs[p].out, storage_options)) for p in sorted(chosen)])
        text = json.dumps({"perplexities": sorted(chosen), "runs": {f"{p:g}": runs[p].out for p in sorted(chosen)},
                           "table": table}, indent=2)
        location.write_file(SWEEP_JSON, lambda tmp: open(tmp, "w").write(text + "\n"))
        markdown = markdown_table(table)
        location.write_file(SWEEP_TABLE, lambda tmp: open(tmp, "w").write(markdown))
    logger.info("sweep written to %s:\n%s", location.url, markdown)
    return SweepResult(out=location.url, runs=runs, table=table)


def _run_each(chosen: list[float], settings: dict[float, dict[str, Any]], storage_options: dict[str, Any] | None,
              verbose: bool) -> dict[float, Result]:
    """Run every perplexity, largest first; the later runs start from copies of the first run's shared stages."""
    from . import run

    runs: dict[float, Result] = {}
    first: RunStore | None = None
    for p in chosen:
        out = settings[p]["out"]
        if first is not None:
            with storage_options_applied(storage_options, [out]):
                target = RunStore(out, storage_options=storage_options)
                if target.exists() and not target.seed_is_complete():
                    logger.info("sweep: %s holds a copy cut short; copying again", target.url)
                    target.delete()
                if not target.exists():
                    RunStore.seeded_from(out, first, SHARED_STAGES, storage_options=storage_options)
        logger.info("sweep: perplexity %g in %s", p, out)
        runs[p] = run(settings[p], verbose=verbose)
        first = first or RunStore.open(runs[p].out, storage_options=storage_options)
    return runs


def _settings_for(values: dict[str, Any], perplexity: float, largest: float, location: Location) -> dict[str, Any]:
    """One perplexity's settings: the shared k, and P from its own 3 x perplexity neighbours."""
    k = neighbours_for(largest, values.get("n_neighbors"))
    own = min(k, neighbours_for(perplexity, None))
    settings = {**values, "out": location.join(f"perplexity-{perplexity:g}"), "perplexity": perplexity,
                "n_neighbors": k}
    settings["affinity_neighbors"] = own if own < k else None  # a user value is refused by sweep()
    return settings


def _row(perplexity: float, settings: dict[str, Any], result: Result) -> dict[str, Any]:
    metrics = result.metrics
    timings = metrics.get("timings", {})
    return {"perplexity": perplexity, "affinity_neighbors": settings.get("affinity_neighbors") or metrics["n_neighbors"],
            "kl_divergence": metrics.get("kl_divergence"), "knn_recall@10": metrics["knn_recall@10"],
            "trustworthiness@10": metrics["trustworthiness@10"], "silhouette_2d": metrics.get("silhouette_2d"),
            "affinities_s": timings.get("affinities"), "layout_s": timings.get("layout"), "out": result.out}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The sweep's metrics as a Markdown table.

    Parameters
    ----------
    rows : list of dict
        One per perplexity, with the keys of ``TABLE_COLUMNS`` (missing values shown as –).

    Returns
    -------
    str
        The table, one line per row, ending with a newline.
    """
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for row in rows:
        cells = [row.get(column) for column in TABLE_COLUMNS]
        lines.append("| " + " | ".join("–" if cell is None else f"{cell:.4g}" if isinstance(cell, float) else str(cell)
                                       for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _write_grid(location: Location, maps: list[tuple[float, Location]]) -> None:
    """``sweep.png``: each run's map.png in a grid, perplexity above each, smallest first."""
    from PIL import Image, ImageDraw

    images = [(p, Image.open(io.BytesIO(run_location.read_bytes(MAP_FILE))).convert("RGB")) for p, run_location in maps]
    width, height = max(image.width for _, image in images), max(image.height for _, image in images)
    label_height = 40
    columns = min(GRID_COLUMNS, len(images))
    rows = -(-len(images) // columns)
    grid = Image.new("RGB", (columns * width, rows * (height + label_height)), "white")
    draw = ImageDraw.Draw(grid)
    for index, (p, image) in enumerate(images):
        left, top = (index % columns) * width, (index // columns) * (height + label_height)
        draw.text((left + 20, top + 10), f"perplexity {p:g}", fill="black", font_size=24)
        grid.paste(image, (left, top + label_height))
    location.write_file(SWEEP_PNG, lambda tmp: grid.save(tmp, format="PNG"))
