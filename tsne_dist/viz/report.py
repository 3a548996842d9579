"""The comparison report: one self-contained HTML page (images inline, no script, no network)."""

from __future__ import annotations

import base64
import html
import json
import os
import tempfile
from typing import Any

import numpy as np
import pandas as pd

from ..outputs import json_safe
from .png import render_map

COMPARE_PNG = "compare.png"
PANEL_GAP = 0.15  # blank space between the two maps, as a share of map A's width


def side_by_side(xy_a: np.ndarray, xy_b: np.ndarray) -> np.ndarray:
    """Both layouts in one frame: B to the right of A, with a gap (B keeps its alignment to A).

    Parameters
    ----------
    xy_a, xy_b : np.ndarray
        (N_a, 2) and (N_b, 2) positions, B already fitted onto A.

    Returns
    -------
    np.ndarray
        (N_a + N_b, 2) float64, A's rows first.
    """
    xy_a, xy_b = np.asarray(xy_a, dtype=np.float64), np.asarray(xy_b, dtype=np.float64)
    width = float(np.ptp(xy_a[:, 0])) or 1.0
    shift = xy_a[:, 0].max() - xy_b[:, 0].min() + PANEL_GAP * width
    return np.concatenate([xy_a, xy_b + np.array([shift, 0.0])])


def write_compare_report(location, summary: dict[str, Any], xy_a: np.ndarray, xy_b: np.ndarray,
                         values: pd.Series | None, color_by: str | None, json_name: str, html_name: str) -> str:
    """Write ``compare.png``, ``compare.json`` and ``report.html`` at ``location``; return the report's path.

    Parameters
    ----------
    location : tsne_dist.storage.Location
        The report folder.
    summary : dict
        The figures (as ``compare.json`` holds them).
    xy_a, xy_b : np.ndarray
        (N_a, 2) map A and (N_b, 2) map B already fitted onto A.
    values : pd.Series, optional
        N_a + N_b values colouring both maps (A's rows first), one legend for both.
    color_by : str, optional
        The values' column name (for the title).
    json_name, html_name : str
        File names.
    """
    title = "A (left) and B (right, fitted onto A)" + (f", coloured by {color_by} (legend counts: both maps)"
                                                        if color_by else "")
    with tempfile.TemporaryDirectory() as folder:
        png = os.path.join(folder, COMPARE_PNG)
        render_map(side_by_side(xy_a, xy_b), png, values, title=title, width=1600, height=800)
        with open(png, "rb") as handle:
            image = handle.read()
    location.write_file(COMPARE_PNG, lambda tmp: open(tmp, "wb").write(image))
    text = json.dumps(json_safe(summary), indent=2, default=str)
    location.write_file(json_name, lambda tmp: open(tmp, "w").write(text + "\n"))
    page = report_html(summary, image)
    return location.write_file(html_name, lambda tmp: open(tmp, "w", encoding="utf-8").write(page))


def report_html(summary: dict[str, Any], image: bytes) -> str:
    """The report page: the figures, the two maps, and the tables, every value escaped."""
    figures = [("run A", summary["run_a"]), ("run B", summary["run_b"]), ("items in A / B", f"{summary['n_a']:,} / "
               f"{summary['n_b']:,}"), ("shared items", f"{summary['n_shared']:,}"),
               ("median displacement", summary["displacement_median"]),
               ("95th-percentile displacement", summary["displacement_p95"]),
               ("displacement unit", summary["displacement_unit"]),
               (f"mean Jaccard of {summary['k']} map neighbours", summary["map_jaccard_mean"]),
               (f"mean Jaccard of {summary['k']} high-D neighbours", summary["knn_jaccard_mean"])]
    label = summary.get("label")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">",
        "<title>tsne-dist compare</title><style>body{font:14px sans-serif;margin:2em;max-width:1600px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        "img{max-width:100%}</style></head><body>",
        "<h1>Two maps compared</h1>",
        _table(["figure", "value"], figures),
        f"<img alt='map A and map B side by side' src='data:image/png;base64,{base64.b64encode(image).decode()}'>",
    ]
    if summary.get("label_silhouettes"):
        parts += [f"<h2>Silhouette per {html.escape(str(label))} (on the map)</h2>",
                  _table(["label", "items sampled", "A", "B"],
                         [(row["label"], row["n"], row["silhouette_a"], row["silhouette_b"])
                          for row in summary["label_silhouettes"]])]
    for key, heading in (("most_moved", "Most moved items"),
                         ("most_changed", "Most changed high-D neighbourhoods (lowest Jaccard)")):
        rows = summary.get(key) or []
        columns = ["id", "displacement", "map_jaccard", "knn_jaccard"] + ([label] if label else [])
        parts += [f"<h2>{heading}</h2>", _table(columns, [[row.get(column) for column in columns] for row in rows])]
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(header: list[str], rows) -> str:
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_shown(value))}</td>" for value in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _shown(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
