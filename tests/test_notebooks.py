"""Every notebook runs top to bottom on a fresh checkout, with no cell error.

The notebooks are executed from a copy (the committed outputs are left as
they are); `make notebooks` re-runs them in place to refresh the outputs.
A notebook whose full run takes minutes reads `KCOMPRESS_QUICK`: here it
runs with `KCOMPRESS_QUICK=1`, the same steps on less data and fewer
epochs, while its committed outputs come from the full setting.
"""

import pathlib

import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted(
    (pathlib.Path(__file__).parent.parent / "notebooks").glob("[0-9]*.ipynb"))
# Ten minutes each at their full setting on two cores.
QUICK_NOTEBOOKS = ("06_object_detection_on_the_edge",
                   "07_compression_to_a_budget")


def test_the_seven_walkthroughs_are_there():
    assert [path.name for path in NOTEBOOKS] == [
        "01_pruning_during_fit.ipynb",
        "02_quantization_aware_training.ipynb",
        "03_distillation_and_low_rank.ipynb",
        "04_deploy_to_raspberry_pi_and_android.ipynb",
        "05_full_pipeline.ipynb",
        "06_object_detection_on_the_edge.ipynb",
        "07_compression_to_a_budget.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_ends_with_a_result(path, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    # Committed with outputs, so readers see the plots without running.
    committed = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.get("outputs") for cell in committed[-2:]), path.name
    reads_quick = "KCOMPRESS_QUICK" in "".join(c.source for c in committed)
    assert reads_quick == (path.stem in QUICK_NOTEBOOKS), path.name
    monkeypatch.setenv("KCOMPRESS_QUICK", "1")  # the kernel inherits it
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on any failing cell
    outputs = [output for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # Each notebook answers its question with a plot or a table.
    assert any("image/png" in o.get("data", {}) for o in outputs) or any(
        "text/markdown" in o.get("data", {}) for o in outputs)
