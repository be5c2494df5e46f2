"""The notebooks run headless (nbclient, Agg backend) with small parameters and draw their figures."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TIMEOUT = 300  # seconds per cell


def with_parameters(path: Path, **overrides) -> "nbformat.NotebookNode":
    """The notebook with `overrides` appended to its cell tagged "parameters" (as papermill injects them)."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    cells[0].source += "\n# injected by the test\n" + "\n".join(f"{k} = {v!r}" for k, v in overrides.items())
    return nb


def execute(nb, monkeypatch) -> "nbformat.NotebookNode":
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the kernel inherits it: no display needed
    monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return nb


def outputs_text(nb) -> str:
    return "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)


def assert_no_errors(nb) -> None:
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors, errors


def test_notebooks_are_stored_without_outputs():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in nb.cells if c.cell_type == "code"), f"{path.name}: strip its outputs"


def test_variance_analysis_notebook(tmp_path, monkeypatch):
    figures = tmp_path / "figures"
    nb = with_parameters(NOTEBOOKS / "variance_analysis.ipynb", PI_GRID=[0.05, 0.3, 0.7], N_SEEDS=300,
                         TRAIN_STEPS=0, N_QUESTIONS=3, N_SAMPLES=6, PATH=[0.0], FIGURE_DIR=str(figures))
    assert_no_errors(execute(nb, monkeypatch))
    assert sorted(p.stem for p in figures.glob("*.png")) == [
        "analytic_variance", "toy_policy_variance", "tree_variance_and_bias"]
    text = outputs_text(nb)
    assert "MAPO/REINFORCE" in text and "RUN_DIR not set" in text


def test_learning_curves_notebook(tmp_path, monkeypatch):
    figures = tmp_path / "figures"
    nb = with_parameters(NOTEBOOKS / "learning_curves.ipynb", FIGURE_DIR=str(figures), RUNS="examples")
    assert_no_errors(execute(nb, monkeypatch))
    assert [p.stem for p in figures.glob("*.png")] == ["learning_curves"]
    text = outputs_text(nb)
    for method in ("| MAPO |", "| REINFORCE |", "| MML |", "| Hard EM |", "| IML |", "| MAPO w/o clip (alpha=0) |"):
        assert method in text, method


def test_learning_curves_notebook_shows_the_wtq_runs_by_default(tmp_path, monkeypatch):
    if not (NOTEBOOKS / "wtq_runs").is_dir():
        pytest.skip("no WTQ runs kept in notebooks/wtq_runs/ yet")
    figures = tmp_path / "figures"
    nb = with_parameters(NOTEBOOKS / "learning_curves.ipynb", FIGURE_DIR=str(figures))
    assert_no_errors(execute(nb, monkeypatch))
    text = outputs_text(nb)
    assert "| MAPO |" in text
    assert [p.stem for p in figures.glob("*.png")] == ["learning_curves"]
