"""`randweights train`: the JSON contract, and one-line errors (exit 2, nothing written) for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from randweights import cli

ROOT = Path(__file__).resolve().parents[1]


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


def _train_help() -> str:
    return cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()


def test_version_is_the_package_version():
    from importlib.metadata import version

    import randweights

    out = run_cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"randweights {randweights.__version__}"
    assert version("randweights") == randweights.__version__  # one source: pyproject reads __init__


def _sections(text: str) -> dict[str, str]:
    """``train --help`` cut into its titled groups: {title: body}."""
    out, title = {}, None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            title = line[:-1]
            out[title] = ""
        elif title:
            out[title] += line + "\n"
    return out


def test_train_help_is_grouped_by_section_and_method_with_defaults_and_choices():
    from randweights.methods import METHODS

    groups = _sections(_train_help())
    for title in ("data (which images)", "model (which network)", "train (how to optimize)"):
        assert title in groups
    for name in METHODS:
        assert f"method {name}" in groups
    assert "--dataset" in groups["data (which images)"] and "--epochs" not in groups["data (which images)"]
    assert "--epochs" in groups["train (how to optimize)"]
    data = " ".join(groups["data (which images)"].split())
    from randweights.config import DATASETS

    assert f"(default: mnist; allowed: one of {', '.join(sorted(DATASETS))})" in data
    slot = " ".join(groups["method slot"].split())
    assert "--slots INT K: fixed random candidate values per connection (default: 8; allowed: a number in [1, inf])" in slot
    # a flag shared by two methods is listed once, and the second method says it takes it too, with its own default
    bern = " ".join(groups["method supermask-bernoulli"].split())
    assert "--keep-fraction: initial expected fraction kept" in bern and "allowed: a number in (0, 1)" in bern


def test_every_train_flag_has_help_and_a_default():
    import re

    text = " ".join(_train_help().split())
    flags = set(re.findall(r"\[(--[a-z0-9-]+)", text)) - {"--method", "--results", "--device", "--help"}
    assert len(flags) > 40
    for flag in flags:
        assert re.search(re.escape(flag) + r"(, --no-[a-z0-9-]+)?( [A-Z]+)? [^-\[].*?\(default: ", text), flag


def test_reproduce_outside_a_checkout_is_one_line_with_how_to_get_the_notebooks(tmp_path):
    out = subprocess.run([sys.executable, "-m", "randweights.cli", "reproduce", "--no-build"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "git clone https://github.com/randweights/randweights" in lines[0] and "--root DIR" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_reproduce_prints_each_chapter_as_it_starts_and_ends(monkeypatch, capsys):
    from randweights import reproduce

    seen = []

    def fake_execute(name, root, preset, device=None):
        seen.append(capsys.readouterr().out)  # what was printed before this chapter ran
        if name == "slot_machines":
            raise RuntimeError("boom")

    monkeypatch.setattr(reproduce, "execute", fake_execute)
    monkeypatch.setattr(reproduce, "mark_failed", lambda *args: None)  # the failed page's banner is tested elsewhere
    monkeypatch.setattr(reproduce, "write_status", lambda *args: None)  # nothing executed: no status (tested elsewhere)
    code = reproduce.reproduce(preset="smoke", only=["edge_popup", "slot_machines"], build=False, root=reproduce.repo_root())
    out = capsys.readouterr().out
    assert code == 1
    assert "edge_popup (1/2, preset smoke): started" in seen[0]
    assert "edge_popup (1/2): done in" in seen[1] and "slot_machines (2/2, preset smoke): started" in seen[1]
    assert "slot_machines (2/2): FAILED in" in out



def test_console_script_answers_version_without_importing_the_package():
    """The console script (_randweights_launcher.main) reads the version as text: neither randweights nor torch
    is imported, so `randweights --version` does not wait for torch."""
    import randweights

    code = ("import sys, _randweights_launcher as launcher; code = launcher.main(['--version']); "
            "print(sorted(m for m in ('randweights', 'torch') if m in sys.modules), code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"randweights {randweights.__version__}", "[] 0"]


def test_console_script_and_python_m_run_the_same_command_line(tmp_path):
    for command in ([sys.executable, str(ROOT / "_randweights_launcher.py")], [sys.executable, "-m", "randweights"]):
        bad = subprocess.run([*command, "train", "--method", "magic", "--results", str(tmp_path)],
                             capture_output=True, text=True, cwd=ROOT)
        assert bad.returncode == 2 and bad.stderr.startswith("randweights: error: method: got 'magic'"), bad.stderr
        assert len(bad.stderr.splitlines()) == 1
    version = subprocess.run([sys.executable, "-m", "randweights", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert version.returncode == 0 and version.stdout.startswith("randweights ")
    assert not any(tmp_path.iterdir())


def test_a_missing_run_with_training_off_is_one_line_not_a_traceback(tmp_path):
    args = ["train", "--method", "dense", "--arch", "lenet-300-100", "--epochs", "1", "--results", str(tmp_path / "results")]
    out = run_cli(*args, env={"RANDWEIGHTS_TRAIN": "0"})
    assert out.returncode == 1
    assert out.stderr.startswith("randweights: error: dense-") and out.stderr.count("\n") == 1, out.stderr
    assert "no stored record and training is off (RANDWEIGHTS_TRAIN=0)" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("record.json"))
