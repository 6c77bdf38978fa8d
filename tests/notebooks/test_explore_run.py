"""The notebook runs against a demo run, so that it never rots."""

from __future__ import annotations

import os

import pytest

from tests.conftest import REPO


def test_notebook_executes_against_a_demo_run(demo_run, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(REPO / "notebooks" / "explore_run.ipynb", as_version=4)
    monkeypatch.setenv("EVALKIT_RUN_DIR", str(demo_run))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO / "notebooks")}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs)
    assert str(demo_run) in text and "reference" in text and "mobile-unet" in text
    assert os.environ["EVALKIT_RUN_DIR"] == str(demo_run)
