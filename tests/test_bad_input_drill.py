"""The bad-input drill, generated: every flag of every CLI command and every argument of the public API is fed
values it must refuse. Each case must end in one line naming the parameter (exit code 2 on the CLI, stdout empty),
with nothing written anywhere: not in the results folder, not in the working directory.

The CLI cases run in process (``cli.main(argv)``) so that a few hundred of them take seconds; the subprocess cases
in ``test_validation.py`` check the same contract through a real interpreter. Every case is listed by the test ids,
so the drill's count is ``pytest --collect-only -q tests/test_bad_input_drill.py``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from randweights import ConfigError, bundles, cli, make_config, models, plan, runs, sweeps
from randweights.chapters import CHAPTERS
from randweights.config import DataConfig, ModelConfig, TrainConfig
from randweights.methods import NAMES, edge_popup, get, laperm, pruning, slot_machines, supermask_bernoulli

HAS_CUDA = torch.cuda.is_available()
NOT_A_NUMBER = {int: ["x", "1.5", "1e400", ""], float: ["x", "nan", "-inf", ""]}


def _choice_field(cls, f) -> bool:
    return cli._allowed(cls, f, str).startswith("one of")


def _bad_values(cls, f, kind) -> list[str]:
    if kind in NOT_A_NUMBER:
        return NOT_A_NUMBER[kind]
    if kind is str:
        return ["bogus", ""] if _choice_field(cls, f) else ["bogus"]
    return []


def _train_cases() -> list[tuple[list[str], list[str]]]:
    """(argv, names any of which the error line must contain): each method with each flag it has, and a flag of
    another method."""
    cases = []
    for method in NAMES:
        own = get(method).config
        for cls in (DataConfig, ModelConfig, TrainConfig, own):
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                flag = cli.flag_of(f)
                kind = cli._value_type(hints[f.name])
                names = [flag, f.name]
                if kind is bool:
                    cases.append((["--method", method, f"{flag}=yes"], names))
                for value in _bad_values(cls, f, kind):
                    cases.append((["--method", method, f"{flag}={value}"], names))
        foreign = next(cli.flag_of(f) for m in NAMES if m != method for f in dataclasses.fields(get(m).config)
                       if cli.flag_of(f) not in {cli.flag_of(g) for c in (DataConfig, ModelConfig, TrainConfig, own)
                                                 for g in dataclasses.fields(c)})
        cases.append((["--method", method, foreign, "1"], [foreign]))
        cases.append((["--method", method, "--device", "tpu"], ["device"]))
        cases.append((["--method", method, "--device", "cuda:7" if HAS_CUDA else "cuda"], ["device"]))
        cases.append((["--method", method, "--results="], ["--results"]))
        cases.append((["--method", method, "--no-such-flag", "1"], ["--no-such-flag"]))
    cases += [([], ["--method"]), (["--method", "bogus"], ["method"]), (["--method", ""], ["method"]),
              (["--method", "dense", "--width", "1e6"], ["width"]), (["--method", "dense", "--arch", "resnet18", "--width", "500"], ["width"]),
              (["--method", "dense", "--results", "{file}"], ["results"])]
    return [(["train", *argv], names) for argv, names in cases]


SMOKE = ["--preset", "smoke", "--only", "empirical_size"]


def _scale_cases() -> list[tuple[list[str], list[str]]]:
    preset = [(["--preset", "bogus"], ["preset"]), (["--preset", ""], ["preset"]), ([], ["--preset"]),
              (["--preset", "smoke", "--only", "bogus"], ["only"]), (["--preset", "smoke", "--only", ""], ["only"]),
              (["--preset", "full-cifar10"], ["preset"]), (["--preset", "smoke", "--bogus"], ["--bogus"])]
    cases = []
    for command, tail in ((["plan"], []), (["sweep"], []), (["bundle", "export"], ["{tmp}/o.tar.gz"])):
        cases += [([*command, *argv, *tail], names) for argv, names in preset]
    cases += [(["plan", *SMOKE, "--json=yes"], ["--json"]), (["plan", *SMOKE, "--dry-run=1"], ["--dry-run"]),
              (["plan", *SMOKE, "--dry-run", "--device", "tpu"], ["device"]), (["plan", *SMOKE, "--real-data"], ["--real-data"]),
              (["plan", *SMOKE, "--device", "cuda"], ["--device"]), (["plan", *SMOKE, "--dry-run", "--device", ""], ["device"])]
    sweep = [(["--executor", "bogus"], ["executor"]), (["--executor", ""], ["executor"]),
             (["--workers", "0"], ["workers"]), (["--workers", "-1"], ["workers"]), (["--workers", "x"], ["workers"]),
             (["--workers", "1.5"], ["workers"]), (["--retries", "-1"], ["retries"]), (["--retries", "x"], ["retries"]),
             (["--device", "tpu"], ["device"]), (["--device", "7"], ["device"]), (["--device", ""], ["device"]),
             (["--results", "{file}"], ["results"]), (["--results="], ["--results"]),
             (["--scheduler", "tcp://h:8786"], ["--scheduler"]), (["--partition", "gpu"], ["--partition"]),
             (["--executor", "dask", "--scheduler", "nonsense"], ["--scheduler"]),
             (["--executor", "dask", "--scheduler", ""], ["--scheduler"]),
             (["--executor", "slurm", "--scheduler", "tcp://h:8786"], ["--scheduler"]),
             (["--executor", "slurm", "--time-limit", "0"], ["time"]), (["--executor", "slurm", "--time-limit", "x"], ["time"]),
             (["--executor", "slurm", "--gpus-per-job", "-1"], ["gpus"]), (["--executor", "slurm", "--gpus-per-job", "x"], ["gpus"]),
             (["--executor", "slurm", "--logs", "{file}"], ["logs"]), (["--executor", "slurm", "--workers", "0"], ["workers"]),
             (["--executor", "dask", "--workers", "0"], ["workers"])]
    cases += [(["sweep", *SMOKE, *argv], names) for argv, names in sweep]
    export = [(["--results", "{file}"], ["results"]), (["--results="], ["--results"]),
              (["--max-compact-bits", "0"], ["max-compact-bits", "max_compact_bits"]),
              (["--max-compact-bits", "x"], ["max-compact-bits"]), (["--max-compact-bits", "nan"], ["max-compact-bits"]),
              ([], ["FILE", "out", "OUT"]), (["{tmp}/out.exe"], ["out", "OUT", ".exe"]), (["{tmp}"], ["out", "OUT"]),
              (["{tmp}/no/such/folder/out.tar.gz"], ["out", "OUT", "folder"]), (["--models=yes"], ["--models"])]
    cases += [(["bundle", "export", *SMOKE, *argv, *([] if any(a.startswith("{tmp}") for a in argv) or not argv else ["{tmp}/o.tar.gz"])], names)
              for argv, names in export]
    imports = [([], ["FILE"]), (["{tmp}/missing.tar.gz"], ["missing.tar.gz"]), (["{empty}"], ["empty.tar.gz"]),
               (["{garbage}"], ["garbage.zip"]), (["{tmp}"], ["FILE"]),
               (["--max-member-mb", "0", "{garbage}"], ["max-member-mb"]), (["--max-member-mb", "x", "{garbage}"], ["max-member-mb"]),
               (["--max-member-mb", "nan", "{garbage}"], ["max-member-mb"]), (["--max-total-mb", "-1", "{garbage}"], ["max-total-mb"]),
               (["--max-total-mb", "inf", "{garbage}"], ["max-total-mb"]),
               (["--results=", "{garbage}"], ["--results"])]
    cases += [(["bundle", "import", *argv], names) for argv, names in imports]
    exports = [(["nosuch-run", "{tmp}/o.pt"], ["RUN_OR_FILE"]), (["{file}", "{tmp}/o.pt"], ["source", "RUN_OR_FILE"]),
               (["{garbage}", "{tmp}/o.pt"], ["source", "RUN_OR_FILE"]), (["{tmp}", "{tmp}/o.exe"], ["path", "OUT"]),
               (["{file}", "{tmp}/o.pt", "--format", "bogus"], ["format"]), (["{file}"], ["OUT"]), ([], ["RUN_OR_FILE"]),
               (["nosuch-run", "{tmp}/o.pt", "--results", "{file}"], ["results", "RUN_OR_FILE"]), (["", "{tmp}/o.pt"], ["RUN_OR_FILE"])]
    cases += [(["export", *argv], names) for argv, names in exports]
    cases += [(["bundle"], ["verb"]), (["bundle", "bogus"], ["bogus"]), (["bogus"], ["bogus"]), ([], ["command"])]
    reproduce = [(["--preset", "bogus"], ["preset"]), (["--only", "bogus"], ["only"]), (["--device", "tpu"], ["device"]),
                 (["--root", "{tmp}/nowhere"], ["root", "nowhere"]), (["--root", "{file}"], ["root"]), (["--preset", ""], ["preset"]),
                 (["--only", "laperm", "--preset", "full-cifar10"], ["preset"]), (["--train-missing=yes"], ["--train-missing"]),
                 (["--device", "cuda:7" if HAS_CUDA else "cuda"], ["device"])]
    cases += [(["reproduce", *argv], names) for argv, names in reproduce]
    return cases


CLI_DRILL = _train_cases() + _scale_cases()


def _fill(argv: list[str], tmp: Path) -> list[str]:
    (tmp / "a_file").write_text("not a folder")
    (tmp / "empty.tar.gz").write_bytes(b"")
    (tmp / "garbage.zip").write_bytes(b"PK\x03\x04 not really a zip")
    known = {"{file}": tmp / "a_file", "{empty}": tmp / "empty.tar.gz", "{garbage}": tmp / "garbage.zip"}
    return [str(known[a]) if a in known else a.replace("{tmp}", str(tmp)) for a in argv]


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("argv, names", CLI_DRILL, ids=[" ".join(a) for a, _ in CLI_DRILL])
def test_cli_drill_one_line_exit_2_nothing_written(tmp_path, monkeypatch, capsys, argv, names):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("RANDWEIGHTS_RESULTS", str(work / "results"))
    argv = _fill(argv, work)
    before = _tree(work)
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and out == "", (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("randweights: error: "), err
    assert any(n in lines[0] for n in names), (names, lines[0])
    assert _tree(work) == before, "something was written"


# ------------------------------------------------------------------------------------------ the Python API
def _mlp():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))


def _lenet():
    return models.build("lenet-300-100", (1, 28, 28), 10)


BAD_NUMBERS = [math.nan, math.inf, -1, "0.5", None, True]
APPLY_NUMBERS = {
    edge_popup.apply: {"keep_fraction": [*BAD_NUMBERS, 0, 1.5]},
    supermask_bernoulli.apply: {"keep_fraction": [*BAD_NUMBERS, 0, 1]},
    slot_machines.apply: {"num_slots": [*BAD_NUMBERS, 0, 2.5], "candidate_bits": [12, "8", None]},
}


def _api_cases():
    cases = []
    for fn, arguments in APPLY_NUMBERS.items():
        for arg, values in arguments.items():
            for v in values:
                cases.append((f"{fn.__module__.split('.')[-1]}.apply {arg}={v!r}", lambda fn=fn, arg=arg, v=v: fn(_lenet(), **{arg: v}), arg))
        for bad_model in ("model", None, 3, torch.nn.ReLU(), torch.zeros(3)):
            cases.append((f"{fn.__module__.split('.')[-1]}.apply model={type(bad_model).__name__}", lambda fn=fn, m=bad_model: fn(m), "model"))
    for arg, values in {"sync_period": [-1, math.nan, 2.5, "3", None], "steps_per_epoch": [0, -1, math.nan, "5"]}.items():
        for v in values:
            cases.append((f"LaPerm {arg}={v!r}", lambda arg=arg, v=v: laperm.LaPerm(torch.optim.SGD(_mlp().parameters(), lr=0.1),
                                                                                      [_mlp()[1].weight], **{arg: v}), arg))
    cases.append(("LaPerm inner=str", lambda: laperm.LaPerm("opt", []), "inner"))
    for v in (2, -0.1, 0, math.nan, "0.3", None):
        cases.append((f"imp_step prune_fraction={v!r}", lambda v=v: _imp(prune_fraction=v), "prune_fraction"))
    for v in (0, -1, 1.5, "2"):
        cases.append((f"imp_step round_index={v!r}", lambda v=v: _imp(round_index=v), "round_index"))
    for bad_model in ("m", None, 3):
        cases.append((f"pruning.apply model={bad_model!r}", lambda m=bad_model: pruning.apply(m), "model"))
    for v in ([math.nan], ["a"], [-1.0], [math.inf]):
        cases.append((f"slot bounds={v!r}", lambda v=v: slot_machines.apply(_mlp(), bounds=v), "bounds"))
    for arch, width in (("mlp-256-256", 1e6), ("mlp-256-256", 1e300), ("bogus", 1.0), ("mlp-256-256", math.nan), ("mlp-256-256", -1)):
        cases.append((f"models.build {arch} width={width}", lambda a=arch, w=width: models.build(a, (1, 28, 28), 10, width=w),
                      "arch" if arch == "bogus" else "width"))
    for method, settings, name in [("bogus", {}, "method"), ("dense", {"bogus": 1}, "setting"), ("edge-popup", {"keep_fraction": 2}, "keep_fraction"),
                                   ("dense", {"dataset": "imagenet"}, "dataset"), ("dense", {"epochs": -1}, "epochs"),
                                   ("slot", {"selection": "bogus"}, "selection"), ("laperm", {"sync_schedule": "x"}, "sync_schedule"),
                                   ("laperm", {"layer_sparsity": "2,3"}, "layer_sparsity"), ("imp", {"rounds": -1}, "rounds"),
                                   ("dense", {"precision": "fp16"}, "precision"), ("dense", {"sampling": "bogus"}, "sampling")]:
        cases.append((f"make_config {method} {settings}", lambda m=method, s=settings: make_config(m, **s), name))
    for device in ("tpu", 7, "cuda:7" if HAS_CUDA else "cuda", ""):
        cases.append((f"get_or_run device={device!r}", lambda d=device: runs.get_or_run(make_config("dense", subset=100), device=d), "device"))
    cases.append(("get_or_run config=dict", lambda: runs.get_or_run({"method": "dense"}), "config"))
    smoke = plan.plan("smoke", CHAPTERS, ["empirical_size"])
    for preset, only, name in (("bogus", None, "preset"), ("smoke", ["bogus"], "only"), ("", None, "preset"),
                               ("full-cifar10", None, "preset"), (3, None, "preset")):
        cases.append((f"plan.plan {preset!r} {only}", lambda p=preset, o=only: plan.plan(p, CHAPTERS, o), name))
    for out, name in (("x.exe", "OUT"), ("x", "OUT")):
        cases.append((f"bundles.export out={out}", lambda o=out: bundles.export("smoke", o, CHAPTERS), name))
    cases.append(("bundles.export preset", lambda: bundles.export("bogus", "x.tar.gz", CHAPTERS), "preset"))
    for member, total in ((0, 1), (1, 0), (-5, 1)):
        cases.append((f"bundles.import_bundle caps {member},{total}",
                      lambda m=member, t=total: bundles.import_bundle("x.tar.gz", max_member_bytes=m, max_total_bytes=t), "max"))
    cases.append(("get_or_run_all configs=[dict]", lambda: runs.get_or_run_all([{"method": "dense"}]), "configs[0]"))
    cases.append(("get_or_run_all device", lambda: runs.get_or_run_all([smoke[0].config], device="tpu"), "device"))
    cases.append(("load_network config=str", lambda: runs.load_network("dense-81a0b6a98eb2"), "config"))
    for kw, name in (({"retries": -1}, "retries"), ({"device": "tpu"}, "device"), ({"root": ""}, "results")):
        cases.append((f"sweeps.run_plan {kw}", lambda kw=kw: sweeps.run_plan([e.config for e in smoke], None, **kw), name))
    for args, name in ((("bogus",), "--executor"), (("local", 0), "--workers"), (("local", None, "tcp://h:1"), "--scheduler"),
                       (("local", None, None, "gpu"), "--partition"), (("slurm", None, None, None, -1), "--gpus-per-job"),
                       (("slurm", None, None, None, None, 0), "--time-limit")):
        cases.append((f"sweeps.make_executor {args}", lambda a=args: sweeps.make_executor(*a), name))
    return cases


def _imp(**kw):
    m = pruning.apply(_mlp())
    return pruning.imp_step(m, pruning.get_masks(m), kw.pop("round_index", 1), **kw)


API_DRILL = _api_cases()


@pytest.mark.parametrize("case", API_DRILL, ids=[c[0] for c in API_DRILL])
def test_api_drill_one_line_naming_the_argument(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RANDWEIGHTS_RESULTS", str(tmp_path / "results"))
    _, call, parameter = case
    with pytest.raises((ConfigError, TypeError)) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and parameter in message.split(":")[0], message
    assert not any(tmp_path.iterdir()), "something was written"


def test_the_drill_covers_every_train_flag_of_every_method():
    flags = {a.split("=")[0] for argv, _ in CLI_DRILL if argv[:1] == ["train"] for a in argv if a.startswith("--")}
    for method in NAMES:
        for cls in (DataConfig, ModelConfig, TrainConfig, get(method).config):
            assert {cli.flag_of(f) for f in dataclasses.fields(cls)} <= flags
    assert len(CLI_DRILL) >= 173 and len(API_DRILL) >= 99


def test_numpy_numbers_stay_accepted_by_the_api():
    assert edge_popup.kept_fractions(edge_popup.apply(_lenet(), keep_fraction=np.float64(0.5))) == pytest.approx([0.5] * 3, abs=1e-3)
