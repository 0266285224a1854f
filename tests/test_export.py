"""Sharing a subnetwork: every method's network exported as a plain state dict, safetensors and ONNX file that a
process without randweights loads into a plain torch model (or an onnxruntime session) with the same outputs; a
mismatch, or bad input, writes nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

from randweights import cli, compact, methods, reproduce, runs
from randweights.config import make_config
from randweights.errors import ConfigError
from randweights.methods import edge_popup as ep
from randweights.methods import laperm as lp
from randweights.methods import pruning
from randweights.methods import slot_machines as sm
from randweights.methods import supermask_bernoulli as zb

pytest.importorskip("safetensors")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# The architecture, as code both this process and the process without randweights run.
ARCH = "nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5))"
INPUT = (1, 8, 8)
SUFFIXES = {"state_dict": ".pt", "safetensors": ".safetensors", "onnx": ".onnx"}


def net() -> nn.Module:
    torch.manual_seed(0)
    return eval(ARCH)


def _step(model: nn.Module, params) -> None:
    x = torch.randn(16, *INPUT, generator=torch.Generator().manual_seed(1))
    y = torch.arange(16) % 5
    opt = torch.optim.SGD(list(params), lr=0.5)
    nn.functional.cross_entropy(model.train()(x), y).backward()
    opt.step()


def transformed(method: str) -> nn.Module:
    """A tiny network found by ``method`` (one training step: masks, selections and BatchNorm statistics moved)."""
    g = torch.Generator().manual_seed(3)
    model = net()
    if method == "dense":
        _step(model, model.parameters())
    elif method == "edge-popup":
        _step(ep.apply(model, keep_fraction=0.5, generator=g), ep.scores(model))
    elif method == "supermask-bernoulli":  # samples its evaluation mask: export fixes it first, as save does
        _step(zb.apply(model, keep_fraction=0.5, generator=g), [m.scores for m in zb.masks(model)])
    elif method == "slot":
        _step(sm.apply(model, num_slots=4, generator=g), sm.scores(model))
    elif method == "laperm":
        permutable = lp.permutable_of(lp.apply(model, generator=g))
        opt = lp.LaPerm(torch.optim.Adam(model.parameters(), lr=1e-2), permutable, sync_period=1)
        x, y = torch.randn(16, *INPUT, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 5
        nn.functional.cross_entropy(model.train()(x), y).backward()
        opt.step()
    elif method == "imp":
        pruning.apply(model, init=None)
        _step(model, model.parameters())
        pruning.set_masks(model, pruning.imp_step(model, pruning.get_masks(model), 1, 0.5))
    assert compact.method_of(model) == method
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every method's network in every format, with a batch and the outputs of the transformed model."""
    folder = tmp_path_factory.mktemp("exported")
    x = torch.randn(3, *INPUT, generator=torch.Generator().manual_seed(7))
    torch.save(x, folder / "x.pt")
    out = {}
    for method in methods.NAMES:
        model = transformed(method)
        results = {fmt: compact.export(model, folder / f"{method}{suffix}", input_shape=INPUT) for fmt, suffix in SUFFIXES.items()}
        with torch.no_grad():
            expected = model.eval()(x)
        torch.save(expected, folder / f"{method}.expected.pt")
        out[method] = (model, results, expected)
    return folder, x, out


def test_every_method_is_covered():
    assert set(methods.NAMES) == {"dense", "edge-popup", "supermask-bernoulli", "slot", "laperm", "imp"}


@pytest.mark.parametrize("fmt", list(SUFFIXES))
@pytest.mark.parametrize("method", methods.NAMES)
def test_export_round_trips(exported, method, fmt):
    folder, x, out = exported
    model, results, expected = out[method]
    path = folder / f"{method}{SUFFIXES[fmt]}"
    result = results[fmt]
    assert result["format"] == fmt and result["bytes"] == path.stat().st_size
    if fmt == "onnx":
        import onnxruntime as ort

        assert result["check"] == "onnxruntime" and 0 <= result["max_abs_diff"] <= 1e-4
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5)
        return
    assert result["check"] == "exact" and result["max_abs_diff"] == 0.0
    if fmt == "safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, weights_only=True)
    assert all(type(v) is torch.Tensor for v in state.values())
    plain = net()
    plain.load_state_dict(state, strict=True)  # the architecture's own keys: no scores, masks or codes
    with torch.no_grad():
        assert torch.equal(plain.eval()(x), expected)
    if method in ("edge-popup", "imp", "supermask-bernoulli"):  # the masked weights are zero where pruned
        assert 0.2 < float((state["0.weight"] == 0).float().mean()) < 0.8


LOADER = """
import sys
sys.modules["randweights"] = None  # whatever the environment holds: this process cannot import randweights
try:
    import randweights  # noqa
    raise SystemExit("randweights is importable")
except ImportError:
    pass
from pathlib import Path
import onnxruntime, torch
from safetensors.torch import load_file
from torch import nn
folder, methods = Path(sys.argv[1]), sys.argv[2:]
x = torch.load(folder / "x.pt", weights_only=True)
for method in methods:
    expected = torch.load(folder / f"{method}.expected.pt", weights_only=True)
    for state in (torch.load(folder / f"{method}.pt", weights_only=True), load_file(folder / f"{method}.safetensors")):
        model = ARCH
        model.load_state_dict(state)
        with torch.no_grad():
            assert torch.equal(model.eval()(x), expected), method
    session = onnxruntime.InferenceSession(str(folder / f"{method}.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5), (method, float((got - expected).abs().max()))
    print("ok", method)
"""


def test_a_process_without_randweights_loads_every_export(exported):
    folder, _, out = exported
    script = LOADER.replace("ARCH", ARCH)
    done = subprocess.run([sys.executable, "-I", "-c", script, str(folder), *out], cwd=folder, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [w for m in out for w in ("ok", m)]


class ExportsOtherwise(nn.Module):
    """A network that computes something else while it is exported (as code that special-cases export can)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        return self.lin(x) * (2.0 if torch.compiler.is_exporting() else 1.0)


def test_an_export_that_computes_something_else_fails_and_writes_nothing(tmp_path):
    with pytest.raises(compact.ExportFailed, match="other outputs under onnxruntime.*nothing written"):
        compact.export(ExportsOtherwise(), tmp_path / "c.onnx", input_shape=(4,))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "parameter"), [
    ({"path": "m.txt"}, "path"),  # a suffix that names no format
    ({"path": "m.onnx", "format": "state_dict"}, "path"),  # a suffix that names another format
    ({"path": "m.bin", "format": "pickle"}, "format"),
    ({"path": "m.onnx"}, "input_shape"),  # ONNX needs an example input
    ({"path": "m.pt", "input_shape": "big"}, "input_shape"),
])
def test_bad_export_arguments_are_one_line_and_write_nothing(tmp_path, kwargs, parameter):
    model = ep.apply(net(), generator=torch.Generator().manual_seed(0))
    kwargs = {**kwargs, "path": tmp_path / kwargs["path"]}
    with pytest.raises(ConfigError) as err:
        compact.export(model, **kwargs)
    assert str(err.value).startswith(f"{parameter}: ") and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError, match="model"):
        compact.export("model.rwc", tmp_path / "m.pt")


SMOKE = {"dataset": "mnist", "subset": 300, "epochs": 1}


@pytest.fixture
def stored_run(mnist, tmp_path):
    cfg = make_config("edge-popup", **SMOKE)
    runs.get_or_run(cfg, root=tmp_path / "results")
    return cfg, tmp_path / "results"


def test_cli_exports_a_stored_run_or_its_compact_file(stored_run, tmp_path, capsys):
    cfg, results = stored_run
    folder = results / cfg.run_id
    model = compact.load(folder / runs.COMPACT_FILE)
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
    sources = {"id.onnx": cfg.run_id, "folder.safetensors": str(folder), "file.pt": str(folder / runs.COMPACT_FILE),
               "named.bin": cfg.run_id}
    for out, source in sources.items():
        extra = ["--format", "state_dict"] if out == "named.bin" else []
        assert cli.main(["export", source, str(tmp_path / out), "--results", str(results), *extra]) == 0
        line = json.loads(capsys.readouterr().out)
        assert line["path"] == str(tmp_path / out) and line["bytes"] == (tmp_path / out).stat().st_size
    import onnxruntime as ort
    from safetensors.torch import load_file

    session = ort.InferenceSession(str(tmp_path / "id.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5)
    for state in (load_file(tmp_path / "folder.safetensors"), torch.load(tmp_path / "file.pt", weights_only=True),
                  torch.load(tmp_path / "named.bin", weights_only=True)):
        plain = compact.build(compact.read_header(folder / runs.COMPACT_FILE))  # the run's architecture, plain
        plain.load_state_dict(state)
        with torch.no_grad():
            assert torch.equal(plain.eval()(x), expected)


def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(stored_run, tmp_path, capsys):
    cfg, results = stored_run
    existing = tmp_path / "there.pt"
    existing.write_bytes(b"keep")
    cases = {
        "RUN_OR_FILE": ["export", "no-such-run", str(tmp_path / "a.pt")],
        "path": ["export", cfg.run_id, str(tmp_path / "a.txt")],
        "format": ["export", cfg.run_id, str(tmp_path / "a.pt"), "--format", "pickle"],
        "OUT": ["export", cfg.run_id, str(existing)],
        "source": ["export", str(tmp_path / "missing.rwc"), str(tmp_path / "a.pt")],
    }
    for parameter, argv in cases.items():
        assert cli.main([*argv, "--results", str(results)]) == 2, parameter
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"randweights: error: {parameter}: ") and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "there.pt"] and existing.read_bytes() == b"keep"
    assert cli.main(["export", cfg.run_id, str(existing), "--force", "--results", str(results)]) == 0
    assert sorted(torch.load(existing, weights_only=True)) == sorted(compact.load(results / cfg.run_id / runs.COMPACT_FILE).state_dict())


def test_every_code_block_of_the_share_page_runs(tmp_path):
    """The book's "Share a subnetwork" page: its Python blocks, in order, in one fresh process."""
    page = (reproduce.repo_root() / "book" / "share.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert len(blocks) >= 4
    root = str(reproduce.repo_root())  # this checkout's randweights, from a scratch working directory
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-c", "\n".join(blocks)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_without_an_input_shape_the_tensors_are_still_checked(tmp_path):
    model = transformed("slot")
    result = compact.export(model, tmp_path / "s.safetensors")
    assert result["check"].startswith("tensors") and result["max_abs_diff"] is None
    from safetensors.torch import load_file

    assert all(torch.equal(v, compact.plain_copy(model).state_dict()[k]) for k, v in load_file(tmp_path / "s.safetensors").items())
