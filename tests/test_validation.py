"""Every bad setting is one ConfigError naming the parameter, the same in the Python API, notebooks (which call the
API) and the CLI (exit 2, one line on stderr, nothing written); equal settings are normalized to one value."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from randweights import ConfigError, RunConfig, data, make_config, models, runs
from randweights.config import DataConfig, ModelConfig, TrainConfig, check_device, method_config_class
from randweights.errors import DatasetDamaged
from randweights.methods import NAMES, edge_popup, laperm, pruning, slot_machines, supermask_bernoulli

SETTINGS = [DataConfig, ModelConfig, TrainConfig] + [method_config_class(m) for m in NAMES]
HAS_CUDA = torch.cuda.is_available()


# ------------------------------------------------------------------------------------------ Python API
API_CASES = [
    ("edge-popup", dict(keep_fraction="0.5"), "keep_fraction"),
    ("dense", dict(epochs="3"), "epochs"),
    ("edge-popup", dict(keep_fraction=True), "keep_fraction"),
    ("dense", dict(epochs=1.5), "epochs"),
    ("dense", dict(subset=500.0), "subset"),
    ("slot", dict(num_slots=2.5), "num_slots"),
    ("edge-popup", dict(keep_fraction=math.nan), "keep_fraction"),
    ("dense", dict(width=math.nan), "width"),
    ("dense", dict(lr=math.nan), "lr"),
    ("dense", dict(lr=math.inf), "lr"),
    ("dense", dict(momentum=math.nan), "momentum"),
    ("dense", dict(weight_decay=-math.inf), "weight_decay"),
    ("slot", dict(finetune_lr=math.nan), "finetune_lr"),
    ("laperm", dict(shared_value=np.float64("nan")), "shared_value"),
    ("dense", dict(seed=-1), "seed"),
    ("dense", dict(seed=2**32), "seed"),
    ("dense", dict(seed=np.int64(-1)), "seed"),
    ("dense", dict(seed=3.0), "seed"),
    ("imp", dict(pixel_shuffle_seed=2**32), "pixel_shuffle_seed"),
    ("dense", dict(augment="yes"), "augment"),
    ("dense", dict(bias=1), "bias"),
    ("dense", dict(subset=True), "subset"),
    ("dense", dict(dataset=None), "dataset"),
    ("dense", dict(arch=3), "arch"),
    ("dense", dict(batch_size=0), "batch_size"),
    ("dense", dict(width=10**400), "width"),
]


@pytest.mark.parametrize("method, settings, parameter", API_CASES, ids=[f"{m}-{s}" for m, s, _ in API_CASES])
def test_api_bad_setting_is_a_config_error_naming_it(method, settings, parameter):
    with pytest.raises(ConfigError) as err:
        make_config(method, **settings)
    assert err.value.parameter == parameter
    assert str(err.value).startswith(f"{parameter}: ") and "\n" not in str(err.value)


def _fields():
    for cls in SETTINGS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
            yield cls, f, (args[0] if args else hints[f.name])


WRONG = {
    bool: ["true", 1, None, 0.0],
    int: ["3", 2.5, 7.0, True, math.nan, None, [1]],
    float: ["0.5", True, math.nan, math.inf, -math.inf, None, b"1"],
    str: [3, None, True, ["a"]],
}
FIELDS = list(_fields())


@pytest.mark.parametrize("cls, f, kind", FIELDS, ids=[f"{c.__name__}.{f.name}" for c, f, _ in FIELDS])
def test_every_field_of_every_settings_class_is_type_checked(cls, f, kind):
    """Driven by the annotations: a field added later is covered without a new test."""
    optional = type(None) in typing.get_args(typing.get_type_hints(cls)[f.name])
    for value in WRONG[kind]:
        if value is None and optional:
            continue
        with pytest.raises(ConfigError) as err:
            cls(**{f.name: value})
        assert err.value.parameter == f.name, (f.name, value)
    if f.default is not None:  # numpy scalars of the right kind are accepted and become plain Python values
        numpy_value = {bool: np.bool_, int: np.int64, float: np.float64, str: np.str_}[kind](f.default)
        normalized = getattr(cls(**{f.name: numpy_value}), f.name)
        assert type(normalized) is kind and normalized == f.default and cls(**{f.name: numpy_value}) == cls()


def test_a_run_config_needs_settings_objects():
    with pytest.raises(ConfigError, match="^method: "):
        RunConfig(method="edge-popup")
    with pytest.raises(ConfigError, match="^data: "):
        RunConfig(method=make_config("dense").method, data={"dataset": "mnist"})


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda:99", "", 3] + ([] if HAS_CUDA else ["cuda", "cuda:0"]))
def test_unknown_or_absent_devices_are_refused_before_anything_is_written(tmp_path, device):
    with pytest.raises(ConfigError) as err:
        runs.get_or_run(make_config("dense", epochs=1), root=tmp_path / "results", device=device)
    assert err.value.parameter == "device" and "cpu" in str(err.value)
    assert not (tmp_path / "results").exists()
    for good in (None, "auto", "cpu"):
        check_device(good)


def test_validation_larger_than_the_classes_allow_names_validation(tmp_path, mnist):
    for too_many in (100_000, 59_000):
        with pytest.raises(ConfigError) as err:
            runs.get_or_run(make_config("dense", epochs=1, validation=too_many), root=tmp_path / "results")
        assert err.value.parameter == "validation"
    assert not (tmp_path / "results").exists()


def _damaged_mnist(tmp_path: Path, name: str, cut: int) -> Path:
    """A data folder whose MNIST files are the real ones except ``name``, cut to its first ``cut`` bytes."""
    real = data.data_root() / "MNIST" / "raw"
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in real.iterdir():
        (raw / path.name).symlink_to(path)
    (raw / name).unlink()
    (raw / name).write_bytes((real / name).read_bytes()[:cut])
    return raw / name


@pytest.mark.parametrize("name, cut", [("train-labels-idx1-ubyte", 30_000), ("t10k-images-idx3-ubyte", 3), ("t10k-labels-idx1-ubyte", 0)])
def test_a_damaged_dataset_file_is_named(tmp_path, mnist, name, cut):
    damaged = _damaged_mnist(tmp_path, name, cut)
    with pytest.raises(DatasetDamaged) as err:
        data.load_arrays("mnist", root=str(tmp_path / "data"))
    assert str(damaged) in str(err.value) and "\n" not in str(err.value)


def test_a_damaged_gzip_file_is_named(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DatasetDamaged, match=str(path)):
        data.read_idx(path)


# ------------------------------------------------------------------------------------------ methods' apply
APPLY = [
    ("edge_popup", lambda m: edge_popup.apply(m, 0.5)),
    ("supermask_bernoulli", lambda m: supermask_bernoulli.apply(m, 0.5)),
    ("slot_machines", lambda m: slot_machines.apply(m, 4)),
]


@pytest.mark.parametrize("first", APPLY, ids=[a[0] for a in APPLY])
@pytest.mark.parametrize("second", APPLY, ids=[a[0] for a in APPLY])
def test_apply_on_an_already_transformed_model_is_a_clear_error(first, second):
    model = models.build("lenet-300-100", (1, 28, 28), 10)
    first[1](model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError) as err:
        second[1](model)
    assert err.value.parameter == "model" and "already transformed" in str(err.value)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)  # untouched


@pytest.mark.parametrize(
    "call, parameter",
    [
        (lambda m: edge_popup.apply(m, keep_fraction=math.nan), "keep_fraction"),
        (lambda m: edge_popup.apply(m, keep_fraction="0.5"), "keep_fraction"),
        (lambda m: supermask_bernoulli.apply(m, keep_fraction=math.nan), "keep_fraction"),
        (lambda m: supermask_bernoulli.apply(m, keep_fraction=1.0), "keep_fraction"),
        (lambda m: slot_machines.apply(m, num_slots=2.5), "num_slots"),
        (lambda m: slot_machines.apply(m, num_slots=4, candidate_bits=12), "candidate_bits"),
    ],
)
def test_apply_checks_its_arguments_like_the_config(call, parameter):
    model = models.build("lenet-300-100", (1, 28, 28), 10)
    with pytest.raises(ConfigError) as err:
        call(model)
    assert err.value.parameter == parameter
    assert not any(parametrize.is_parametrized(m) for m in model.modules())  # refused before any change


def test_numpy_arguments_to_apply_are_accepted():
    model = edge_popup.apply(models.build("lenet-300-100", (1, 28, 28), 10), keep_fraction=np.float32(0.25))
    assert edge_popup.kept_fractions(model) == pytest.approx([0.25] * 3, abs=1e-3)


# ------------------------------------------------------------------------------------------ the CLI
CLI_CASES = [
    (["--method", "edge-popup", "--keep-fraction", "nan"], "keep_fraction"),
    (["--method", "edge-popup", "--keep-fraction", "1e999"], "keep_fraction"),
    (["--method", "dense", "--width", "nan"], "width"),
    (["--method", "dense", "--lr", "nan"], "lr"),
    (["--method", "dense", "--lr", "inf"], "lr"),
    (["--method", "dense", "--momentum", "nan"], "momentum"),
    (["--method", "dense", "--seed", "-1"], "seed"),
    (["--method", "dense", "--seed", "4294967296"], "seed"),
    (["--method", "dense", "--subset", "500.5"], "--subset"),
    (["--method", "dense", "--validation", "100000"], "validation"),
    (["--method", "dense", "--device", "tpu"], "device"),
] + ([] if HAS_CUDA else [(["--method", "dense", "--device", "cuda"], "device")])


@pytest.mark.parametrize("args, parameter", CLI_CASES, ids=[" ".join(a[2:]) for a, _ in CLI_CASES])
def test_cli_bad_input_is_exit_2_one_line_naming_it_and_writes_nothing(tmp_path, mnist, args, parameter):
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "randweights.cli", "train", *args, "--epochs", "1", "--results", str(results)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(lines) == 1 and lines[0].startswith("randweights: error: ") and parameter in lines[0], proc.stderr
    assert not results.exists()


def test_cli_damaged_mnist_names_the_file_and_writes_nothing(tmp_path, mnist):
    damaged = _damaged_mnist(tmp_path, "train-labels-idx1-ubyte", 1000)
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "randweights.cli", "train", "--method", "dense", "--epochs", "1", "--results", str(results)],
                          capture_output=True, text=True, env={**os.environ, "RANDWEIGHTS_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and str(damaged) in lines[0], proc.stderr
    assert not results.exists()


# ------------------------------------------------------------------------------------------ issue 22: API types
def _mlp():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))


def _laperm(**kw):
    m = _mlp()
    return laperm.LaPerm(torch.optim.SGD(m.parameters(), lr=0.1), [m[1].weight], **kw)


def _imp_step(model=None, **kw):
    m = pruning.apply(_mlp())
    return pruning.imp_step(model if model is not None else m, pruning.get_masks(m), kw.pop("round_index", 1), **kw)


API_TYPE_CASES = [
    ("edge_popup str", lambda: edge_popup.apply("not a model"), TypeError, "model"),
    ("edge_popup ReLU", lambda: edge_popup.apply(torch.nn.ReLU()), ConfigError, "model"),
    ("bernoulli ReLU", lambda: supermask_bernoulli.apply(torch.nn.ReLU()), ConfigError, "model"),
    ("bernoulli None", lambda: supermask_bernoulli.apply(None), TypeError, "model"),
    ("slot str", lambda: slot_machines.apply("x"), TypeError, "model"),
    ("slot ReLU", lambda: slot_machines.apply(torch.nn.ReLU()), ConfigError, "model"),
    ("slot bounds nan", lambda: slot_machines.apply(_mlp(), bounds=[math.nan]), ConfigError, "bounds"),
    ("slot bounds str", lambda: slot_machines.apply(_mlp(), bounds=["a"]), ConfigError, "bounds"),
    ("slot bounds -1", lambda: slot_machines.apply(_mlp(), bounds=[-1.0]), ConfigError, "bounds"),
    ("laperm sync -1", lambda: _laperm(sync_period=-1), ConfigError, "sync_period"),
    ("laperm sync nan", lambda: _laperm(sync_period=math.nan), ConfigError, "sync_period"),
    ("laperm sync 2.5", lambda: _laperm(sync_period=2.5), ConfigError, "sync_period"),
    ("laperm sync str", lambda: _laperm(sync_period="3"), ConfigError, "sync_period"),
    ("laperm steps 0", lambda: _laperm(steps_per_epoch=0), ConfigError, "steps_per_epoch"),
    ("laperm inner", lambda: laperm.LaPerm("opt", []), TypeError, "inner"),
    ("laperm apply str", lambda: laperm.apply("m"), TypeError, "model"),
    ("imp pf 2", lambda: _imp_step(prune_fraction=2), ConfigError, "prune_fraction"),
    ("imp pf nan", lambda: _imp_step(prune_fraction=math.nan), ConfigError, "prune_fraction"),
    ("imp pf 0", lambda: _imp_step(prune_fraction=0), ConfigError, "prune_fraction"),
    ("imp pf str", lambda: _imp_step(prune_fraction="0.3"), ConfigError, "prune_fraction"),
    ("imp model str", lambda: _imp_step(model="m"), TypeError, "model"),
    ("imp round 0", lambda: _imp_step(round_index=0), ConfigError, "round_index"),
    ("pruning apply str", lambda: pruning.apply("m"), TypeError, "model"),
    ("build width 1e6", lambda: models.build("mlp-256-256", (1, 28, 28), 10, width=1e6), ConfigError, "width"),
    ("build width 1e300", lambda: models.build("mlp-256-256", (1, 28, 28), 10, width=1e300), ConfigError, "width"),
]


@pytest.mark.parametrize("case", API_TYPE_CASES, ids=[c[0] for c in API_TYPE_CASES])
def test_api_wrong_types_and_values_name_the_argument_in_one_line(case):
    _, call, kind, parameter = case
    with pytest.raises(kind) as err:
        call()
    assert str(err.value).startswith(f"{parameter}: got ") and "\n" not in str(err.value)


def test_every_architecture_at_width_one_is_far_below_the_size_limit():
    for arch in models.ARCHS:
        assert models.parameter_count(arch, (3, 32, 32), 1000) < models.MAX_PARAMETERS // 10


CLI_INPUT_CASES = [
    (["train", "--method", "dense", "--width", "1e6"], "width"),
    (["train", "--method", "dense", "--results="], "--results"),
    (["sweep", "--preset", "smoke", "--only", "empirical_size", "--device", "tpu"], "device"),
    (["sweep", "--preset", "smoke", "--only", "empirical_size", "--results", "{file}"], "results"),
    (["sweep", "--preset", "smoke", "--only", "empirical_size", "--results="], "--results"),
    (["sweep", "--preset", "smoke", "--only", "empirical_size", "--executor", "dask", "--scheduler", "nonsense"], "--scheduler"),
    (["sweep", "--preset", "smoke", "--only", "empirical_size", "--scheduler", "tcp://h:8786"], "--scheduler"),
    (["sweep", "--preset", "smoke", "--only", "empirical_size", "--executor", "slurm", "--scheduler", "tcp://h:8786"], "--scheduler"),
    (["bundle", "export", "--preset", "smoke", "--results", "{file}", "{tmp}/out.tar.gz"], "--results"),
    (["bundle", "export", "--preset", "smoke", "--results", "{tmp}/missing", "{tmp}/out.tar.gz"], "--results"),
    (["bundle", "import", "{file}", "--results="], "--results"),
]


@pytest.mark.parametrize("argv, parameter", CLI_INPUT_CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CLI_INPUT_CASES])
def test_cli_bad_input_is_one_line_exit_2_before_any_work(tmp_path, argv, parameter):
    (tmp_path / "afile").write_text("x")
    argv = [a.format(file=tmp_path / "afile", tmp=tmp_path) for a in argv]
    env = {**os.environ, "RANDWEIGHTS_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-m", "randweights.cli", *argv], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith(f"randweights: error: {parameter}: got ")
    assert done.stderr.count("\n") == 1 and done.stdout == "", done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing written, not in the working directory


def test_an_empty_results_variable_is_an_error_naming_it(tmp_path):
    env = {**os.environ, "RANDWEIGHTS_RESULTS": ""}
    done = subprocess.run([sys.executable, "-m", "randweights.cli", "train", "--method", "dense"], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("randweights: error: RANDWEIGHTS_RESULTS: got ''")
    assert list(tmp_path.iterdir()) == []


DISK_FULL_SCRIPT = """
import errno, os, sys
from randweights import cli
real = os.fsync
def full(fd):
    raise OSError(errno.ENOSPC, "No space left on device")
os.fsync = full
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing_partial(tmp_path, mnist):
    results = tmp_path / "r"
    done = subprocess.run([sys.executable, "-c", DISK_FULL_SCRIPT, "train", "--method", "dense", "--subset", "100",
                           "--epochs", "1", "--batch-size", "50", "--device", "cpu", "--results", str(results)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "RANDWEIGHTS_PROGRESS": "0"})
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"randweights: error: {results}") and "No space left" in lines[0], done.stderr
    assert not list(results.rglob("*.tmp")) and not list(results.rglob("record.json"))
