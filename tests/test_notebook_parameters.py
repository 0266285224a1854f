"""A bad notebook parameter (``preset``, ``device``) stops a chapter in its first code cell, with one line naming
the parameter and what is allowed (no traceback shown, as on the CLI), before any run starts: nothing is written
to the results folder. Executed with papermill, as ``reproduce``, Colab and Jupyter users run them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import papermill
import pytest
import torch
from papermill.exceptions import PapermillExecutionError

from randweights import reproduce
from randweights.chapters import NAMES

pytestmark = pytest.mark.slow  # starts a kernel per case

ROOT = Path(__file__).resolve().parents[1]
NO_GPU = "cuda:7" if torch.cuda.is_available() else "cuda"
BAD = {"preset": ["huge", 3], "device": ["tpu", NO_GPU]}
# a kernel start each (~10 s): every chapter with one bad value, the parameters alternating, and LaPerm with the others
CASES = [(name, parameter, BAD[parameter][0]) for name, parameter in zip(NAMES, ["preset", "device"] * len(NAMES))]
CASES += [("laperm", parameter, values[1]) for parameter, values in BAD.items()]


def _first_code_cell_after_parameters(nb: dict) -> int:
    cells = nb["cells"]
    tagged = next(i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    injected = next((i for i, c in enumerate(cells) if "injected-parameters" in c.get("metadata", {}).get("tags", [])), tagged)
    return next(i for i, c in enumerate(cells) if i > max(tagged, injected) and c["cell_type"] == "code")


@pytest.mark.parametrize("name, parameter, value", CASES, ids=[f"{n}-{p}={v!r}" for n, p, v in CASES])
def test_a_bad_notebook_parameter_is_one_line_in_the_first_cell_and_writes_nothing(tmp_path, monkeypatch, name, parameter, value):
    results = tmp_path / "results"
    monkeypatch.setenv("RANDWEIGHTS_RESULTS", str(results))
    monkeypatch.setenv("RANDWEIGHTS_PROGRESS", "0")
    source = tmp_path / f"{name}.ipynb"
    shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", source)
    out = tmp_path / "out.ipynb"
    parameters = {"preset": "smoke", parameter: value}
    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(str(source), str(out), parameters=parameters, kernel_name=reproduce.KERNEL,
                                   cwd=str(tmp_path), progress_bar=False, log_output=False, extra_arguments=reproduce.QUIET_KERNEL)
    assert err.value.ename == "ConfigError" and err.value.evalue.startswith(f"{parameter}: got {value!r}"), err.value.evalue
    nb = json.loads(out.read_text())
    failed = [i for i, c in enumerate(nb["cells"]) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert failed == [_first_code_cell_after_parameters(nb)]
    error = next(o for o in nb["cells"][failed[0]]["outputs"] if o.get("output_type") == "error")
    assert len(error["traceback"]) == 1 and parameter in error["traceback"][0]  # what Jupyter shows: one line
    assert not results.exists() and sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, out.name])
