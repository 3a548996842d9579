"""The notebooks in notebooks/ run top to bottom (nbclient, a real kernel); a broken cell fails here.

Each runs in its own temporary folder (what it writes stays there). The committed
notebooks carry no outputs: images and numbers appear when a reader runs them.
"""

from __future__ import annotations

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                          "notebooks", "*.ipynb")))


def test_the_four_walkthroughs_are_there():
    assert [os.path.basename(path) for path in NOTEBOOKS] == [
        "01-vectors.ipynb", "02-cooccurrence.ipynb", "03-stable-maps.ipynb", "04-cluster.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_and_shows_its_images(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    if os.path.basename(path) != "04-cluster.ipynb":  # the cluster notebook compares layouts, it draws nothing
        assert images, "the notebook shows no image"
