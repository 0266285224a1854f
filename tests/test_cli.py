"""`randweights train`: the JSON contract, and one-line errors (exit 2, nothing written) for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from randweights import cli


def run_cli(*args, env=None):
    import os

    return subprocess.run(
        [sys.executable, "-m", "randweights.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


BAD = [
    (["--method", "edge-popup", "--keep-fraction", "0"], "keep_fraction"),
    (["--method", "edge-popup", "--keep-fraction", "1.5"], "keep_fraction"),
    (["--method", "edge-popup", "--keep-fraction", "-0.2"], "keep_fraction"),
    (["--method", "magic"], "method"),
    (["--method", "dense", "--arch", "lenet-5"], "arch"),
    (["--method", "dense", "--dataset", "imagenet"], "dataset"),
    (["--method", "edge-popup", "--init", "gaussian"], "init"),
    (["--method", "dense", "--epochs", "-1"], "epochs"),
    (["--method", "dense", "--epochs", "three"], "--epochs"),
    (["--method", "dense", "--keep-fraction", "0.5"], "--keep-fraction"),
    (["--method", "dense", "--subset", "0"], "subset"),
]


@pytest.mark.parametrize("args, parameter", BAD)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, parameter, capsys):
    results = tmp_path / "results"
    code = cli.main(["train", *args, "--results", str(results)]) if "three" not in args else None
    if code is None:  # argparse type errors exit through SystemExit
        with pytest.raises(SystemExit) as exc:
            cli.main(["train", *args, "--results", str(results)])
        code = exc.value.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and parameter in err and "error" in err
    assert not results.exists()


def test_missing_data_is_one_line_naming_the_paths(tmp_path):
    proc = run_cli("train", "--method", "dense", "--results", str(tmp_path / "r"), env={"RANDWEIGHTS_DATA": str(tmp_path / "nowhere")})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nowhere" in lines[0] and "RANDWEIGHTS_DATA" in lines[0]
    assert not (tmp_path / "r").exists()


def test_train_prints_one_json_record_and_reuses_it(tmp_path, mnist):
    args = ["train", "--method", "edge-popup", "--keep-fraction", "0.3", "--subset", "500", "--epochs", "1", "--results", str(tmp_path)]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    record = json.loads(first.stdout)
    for key in ("run_id", "method", "arch", "dataset", "keep_fraction", "init", "epochs", "seed", "test_accuracy", "train_seconds"):
        assert key in record, key
    assert record["keep_fraction"] == 0.3 and 0 <= record["test_accuracy"] <= 1
    second = run_cli(*args)
    assert json.loads(second.stdout) == record


def test_every_method_flag_is_generated():
    parser = cli.build_parser()
    text = parser._subparsers._group_actions[0].choices["train"].format_help()
    for flag in ("--keep-fraction", "--init", "--width", "--epochs", "--subset", "--seed", "--results", "--arch", "--dataset"):
        assert flag in text
    assert "type=bool" not in text
