"""The notebooks run end to end (small settings) and are stored without outputs."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")
NAMES = sorted(name for name in os.listdir(NOTEBOOKS) if name.endswith(".ipynb"))


def test_there_are_four_notebooks():
    assert NAMES == ["01_quickstart.ipynb", "02_deploy_to_tflm.ipynb", "03_memory.ipynb", "04_detection.ipynb"]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name):
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "stored with outputs"
    client = NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    if name != "02_deploy_to_tflm.ipynb":  # the quickstart, memory and detection notebooks draw a figure
        assert any("image/png" in output.get("data", {}) for output in outputs)
