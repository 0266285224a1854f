"""A run store you can trust: old records load, run keys are pinned, damaged records are moved aside and
recomputed, records are strict JSON with provenance, and a bad results folder fails before any data is read."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import randweights
from randweights import ConfigError, cli, make_config, report, runs, store

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "records"

# ------------------------------------------------------------------------------------------ old records load
# Records written by earlier code and committed: each must load forever after, without training, under the run
# key today's code computes for the same settings. Never regenerate them; add a new folder for a new format.
OLD_RECORDS = [
    # before commit 201f34f added LaPerm's in_degree and logit_scale: filled in with their defaults on load
    ("format1-359f392", make_config("laperm", subset=200, epochs=1, batch_size=100, sync_period=5), 0.3745,
     {"in_degree": "binomial", "logit_scale": 1.0}),
    # format 1 (no checksum, no provenance), the code the issue was filed on
    ("format1-ed66eb8", make_config("edge-popup", keep_fraction=0.3, subset=200, epochs=1, batch_size=100), 0.1077, {}),
    # format 2: checksum and provenance
    ("format2-87282a7", make_config("slot", num_slots=4, subset=200, epochs=1, batch_size=100, seed=7), 0.4968,
     {"git_commit": "87282a750ac897f4f85f4653a6c590c5d35b3eaa", "record_format": 2}),
]


@pytest.fixture
def no_training(monkeypatch):
    import randweights.train

    monkeypatch.setattr(randweights.train, "run", lambda *a, **k: pytest.fail("trained, but a stored record was expected"))


@pytest.mark.parametrize("folder, cfg, accuracy, filled", OLD_RECORDS, ids=[o[0] for o in OLD_RECORDS])
def test_a_committed_old_record_loads_without_training(tmp_path, no_training, folder, cfg, accuracy, filled):
    source = FIXTURES / folder / cfg.run_id
    assert source.is_dir(), f"run key changed: {cfg.run_id} is not in {FIXTURES / folder}"
    shutil.copytree(FIXTURES / folder, tmp_path, dirs_exist_ok=True)
    before = (tmp_path / cfg.run_id / "record.json").read_bytes()
    record = runs.get_or_run(cfg, root=tmp_path)
    assert record["test_accuracy"] == accuracy and record["run_id"] == cfg.run_id
    for key, value in filled.items():
        assert record[key] == value, key
    assert record["config"] == cfg.to_dict()  # settings added later are filled in ...
    assert (tmp_path / cfg.run_id / "record.json").read_bytes() == before  # ... in memory: the file is unchanged
    assert sorted(p.name for p in (tmp_path / cfg.run_id).iterdir()) == ["config.json", "record.json"]


PINNED_RUN_IDS = [  # OpenLTH's test_desc: if one changes, every stored run of that kind is orphaned
    (("dense", {}), "dense-b7a589ab0c99"),
    (("edge-popup", {}), "edge-popup-6fc493dd761b"),
    (("edge-popup", dict(keep_fraction=0.3, arch="conv4", dataset="cifar10", epochs=5)), "edge-popup-581639384968"),
    (("slot", dict(num_slots=16, selection="probabilistic")), "slot-004e8b9b6ff8"),
    (("laperm", dict(sync_period=250, arch="f1", init_sparsity=0.5)), "laperm-e7e23afdec09"),
    (("imp", dict(rounds=10, prune_fraction=0.2, pixel_shuffle_seed=3)), "imp-a4c9974fa822"),
    (("supermask-bernoulli", dict(keep_fraction=0.5, lr=200.0, seed=4)), "supermask-bernoulli-aafa70902b8d"),
]


@pytest.mark.parametrize("settings, run_id", PINNED_RUN_IDS, ids=[p[1] for p in PINNED_RUN_IDS])
def test_run_ids_are_pinned(settings, run_id):
    method, kwargs = settings
    assert make_config(method, **kwargs).run_id == run_id


@pytest.mark.parametrize(
    "a, b",
    [
        (dict(keep_fraction=1), dict(keep_fraction=1.0)),
        (dict(seed=np.int64(3)), dict(seed=3)),
        (dict(subset=np.int32(500)), dict(subset=500)),
        (dict(keep_fraction=np.float64(0.3)), dict(keep_fraction=0.3)),
        (dict(width=2), dict(width=2.0)),
        (dict(lr=np.int64(1)), dict(lr=1.0)),
        (dict(augment=np.bool_(True)), dict(augment=True)),
    ],
)
def test_equal_settings_give_one_run_id(a, b):
    left, right = make_config("edge-popup", **a), make_config("edge-popup", **b)
    assert left.run_id == right.run_id and left == right
    assert json.dumps(left.to_dict()) == json.dumps(right.to_dict())  # numpy scalars normalized: JSON-able


def test_cli_and_api_find_the_same_run():
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--method", "edge-popup", "--keep-fraction", "1.0", "--subset", "500", "--width", "2"])
    assert cli.config_from_args(args).run_id == make_config("edge-popup", keep_fraction=1, subset=500, width=2).run_id


# ------------------------------------------------------------------------------------------ damaged records
GOOD = FIXTURES / "format2-87282a7"
SLOT = OLD_RECORDS[2][1]


def _edit(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=1))


def _unsigned(path: Path, change) -> None:  # a format-1 record (no checksum, no provenance) whose content disagrees
    _edit(path, lambda r: ([r.pop(k) for k in ("checksum", *store.PROVENANCE_FIELDS)], change(r)))


DAMAGES = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(os.urandom(300)),
    "not an object": lambda p: p.write_text("[1, 2, 3]"),
    "edited accuracy": lambda p: _edit(p, lambda r: r.update(test_accuracy=0.99)),
    "edited history": lambda p: _edit(p, lambda r: r["history"][0].update(train_loss=0.01)),
    "NaN accuracy": lambda p: p.write_text(p.read_text().replace('"test_accuracy": 0.4968', '"test_accuracy": NaN')),
    "flat field disagrees with settings": lambda p: _unsigned(p, lambda r: r.update(num_slots=8)),
    "lr disagrees with settings": lambda p: _unsigned(p, lambda r: r.update(lr=0.5)),
    "settings of another run": lambda p: _unsigned(p, lambda r: r["config"]["train"].update(seed=8)),
    "checksum removed from a format-2 record": lambda p: _edit(p, lambda r: r.pop("checksum")),
    "checksum and format removed": lambda p: _edit(p, lambda r: (r.pop("checksum"), r.pop("record_format"))),
    "accuracy out of range": lambda p: _unsigned(p, lambda r: r.update(test_accuracy=1.5)),
    "null accuracy": lambda p: _unsigned(p, lambda r: r.update(test_accuracy=None)),
}


@pytest.fixture
def fake_training(monkeypatch):
    """train.run replaced by one that returns the committed record's numbers (and counts its calls)."""
    import randweights.train

    calls = []
    good = json.loads((GOOD / SLOT.run_id / "record.json").read_text())
    for key in ("checksum", "record_format", "randweights_version", "git_commit", "git_dirty"):
        good.pop(key)

    def fake_run(cfg, device=None, **kwargs):
        calls.append(cfg.run_id)
        return None, {**good, "run_id": cfg.run_id, "config": cfg.to_dict(), **cfg.flat(), "lr": cfg.lr, "weight_decay": cfg.weight_decay}

    monkeypatch.setattr(randweights.train, "run", fake_run)
    return calls


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_record_is_moved_aside_named_in_one_warning_and_recomputed(tmp_path, fake_training, caplog, damage):
    shutil.copytree(GOOD, tmp_path, dirs_exist_ok=True)
    path = tmp_path / SLOT.run_id / "record.json"
    DAMAGES[damage](path)
    damaged = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="randweights"):
        record = runs.get_or_run(SLOT, root=tmp_path)
    assert fake_training == [SLOT.run_id]  # recomputed once
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and "\n" not in warnings[0]
    aside = list(path.parent.glob("record.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged and aside[0].name in warnings[0]
    assert store.read_record(path, SLOT) == (record, None)  # the new record verifies
    assert record["test_accuracy"] == 0.4968
    runs.get_or_run(SLOT, root=tmp_path)
    assert fake_training == [SLOT.run_id]  # and is used from then on


def test_a_sweep_over_damaged_records_finishes_in_a_real_process(tmp_path, mnist):
    """Three real runs, one truncated, one garbage, one edited; a fresh process sweeps them: three warnings, each
    naming its file, three recomputed records that verify, and the sweep's exit code 0."""
    cfgs = [make_config("dense", subset=100, epochs=1, batch_size=50, seed=s) for s in (0, 1, 2)]
    first = runs.get_or_run_all(cfgs, root=tmp_path)
    paths = [tmp_path / c.run_id / "record.json" for c in cfgs]
    DAMAGES["truncated"](paths[0])
    DAMAGES["garbage"](paths[1])
    DAMAGES["edited accuracy"](paths[2])
    script = textwrap.dedent(
        f"""
        import json
        from randweights import make_config, runs
        cfgs = [make_config("dense", subset=100, epochs=1, batch_size=50, seed=s) for s in (0, 1, 2)]
        print(json.dumps([r["test_accuracy"] for r in runs.get_or_run_all(cfgs, root={str(tmp_path)!r})]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, proc.stderr
    for line, path in zip(lines, paths):
        assert str(path) in line and "moved aside" in line
    assert json.loads(proc.stdout) == [r["test_accuracy"] for r in first]  # same seed, same numbers
    for cfg, path in zip(cfgs, paths):
        assert store.read_record(path, cfg)[1] is None
        assert len(list(path.parent.glob("record.json.corrupt-*"))) == 1


# ------------------------------------------------------------------------------------------ how records are written
def test_records_are_strict_json_group_readable_with_provenance_and_no_stale_temp_files(tmp_path, monkeypatch):
    import randweights.train

    cfg = make_config("dense", epochs=1)
    folder = tmp_path / cfg.run_id
    folder.mkdir(parents=True)
    stale = folder / ".record.json.k1ll3d.tmp"  # left by a write that was killed
    stale.write_text("{")
    other = folder / ".model.pt.abc.tmp"  # another file's temporary file is not ours to remove
    other.write_text("x")
    monkeypatch.setattr(randweights.train, "run", lambda cfg, device=None, **kwargs: (None, {
        "run_id": cfg.run_id, **cfg.flat(), "test_accuracy": 0.5, "test_loss": float("nan"), "train_loss": float("inf"),
        "history": [{"epoch": 1, "train_loss": float("nan")}], "shape": (3, 4), "count": np.int64(7), "sizes": np.array([1.5, np.nan]), "config": cfg.to_dict()}))
    record = runs.get_or_run(cfg, root=tmp_path)
    text = (folder / "record.json").read_text()
    stored = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in the record"))
    assert stored == record
    assert stored["test_loss"] is None and stored["train_loss"] is None and stored["history"][0]["train_loss"] is None
    assert stored["shape"] == [3, 4] and stored["count"] == 7 and stored["sizes"] == [1.5, None]
    for name in ("record.json", "config.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name
    assert not stale.exists() and other.exists()
    assert stored["randweights_version"] == randweights.__version__ and stored["record_format"] == 2
    assert stored["checksum"] == store.checksum(stored)
    if (ROOT / ".git").exists() and shutil.which("git"):
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        if head:  # git may refuse a checkout owned by another user: then no commit is recorded, and that is fine
            assert stored["git_commit"] == head and isinstance(stored["git_dirty"], bool)


def test_every_method_writes_a_record_that_verifies(tmp_path, mnist):
    """A record whose own fields disagreed with its settings would be recomputed forever: check each method's."""
    tiny = dict(subset=100, epochs=1, batch_size=50)
    cfgs = [make_config("dense", **tiny), make_config("edge-popup", **tiny), make_config("supermask-bernoulli", **tiny),
            make_config("slot", **tiny), make_config("laperm", **tiny), make_config("imp", rounds=1, rewind_step=0, **tiny)]
    for cfg in cfgs:
        record = runs.get_or_run(cfg, root=tmp_path)
        assert store.check_record(json.loads((tmp_path / cfg.run_id / "record.json").read_text()), cfg) is None, cfg.run_id
        assert runs.get_or_run(cfg, root=tmp_path) == record


# ------------------------------------------------------------------------------------------ fail before training
def _bad_results(kind: str, tmp_path: Path) -> Path:
    if kind == "a file":
        (tmp_path / "results").write_text("not a folder")
        return tmp_path / "results"
    if kind == "under a file":
        (tmp_path / "file").write_text("not a folder")
        return tmp_path / "file" / "results"
    if kind == "unwritable":
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        return folder / "results"
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs here")
    return Path("/sys/randweights-results")  # sysfs: nobody, root included, may create a folder there


@pytest.mark.parametrize("kind", ["a file", "under a file", "unwritable", "in a read-only system folder"])
def test_a_bad_results_folder_fails_before_any_data_is_read(tmp_path, kind):
    """The data folder does not exist: had anything been loaded, the error would be about the data."""
    results = _bad_results(kind, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "randweights.cli", "train", "--method", "edge-popup", "--results", str(results)],
        capture_output=True, text=True, env={**os.environ, "RANDWEIGHTS_DATA": str(tmp_path / "no-data-here")},
    )
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("randweights: error: results:") and str(results) in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not Path("/sys/randweights-results").exists()


def test_the_api_checks_the_results_folder_before_training(tmp_path, no_training):
    (tmp_path / "results").write_text("")
    with pytest.raises(ConfigError, match="^results: .*a folder"):
        runs.get_or_run(make_config("dense"), root=tmp_path / "results")


def test_a_failed_run_leaves_no_folder_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("RANDWEIGHTS_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(randweights.DatasetNotFound):
        runs.get_or_run(make_config("dense", epochs=1), root=tmp_path / "deep" / "results")
    assert list(tmp_path.iterdir()) == []


def test_what_ran_tables_show_the_code_that_trained_each_group(tmp_path, no_training):
    for folder, *_ in OLD_RECORDS:
        shutil.copytree(FIXTURES / folder, tmp_path, dirs_exist_ok=True)
    records = [runs.get_or_run(cfg, root=tmp_path) for _, cfg, _, _ in OLD_RECORDS]
    table = report.what_ran(runs.frame(records), ["method"], runs=("run_id", "size"))
    assert table.loc["slot", "code"] == "0.1.0 @ 87282a750a"
    assert table.loc["laperm", "code"] == table.loc["edge-popup", "code"] == "not recorded"
    # a frame without provenance columns (an analysis's rows) is looked up in the store by run_id
    rows = runs.frame(records)[["run_id", "method", "test_accuracy"]]
    assert report.what_ran(rows, ["method"], root=tmp_path, accuracy=("test_accuracy", "first")).loc["slot", "code"] == "0.1.0 @ 87282a750a"
    assert store.code_label({"randweights_version": "0.2.0", "git_commit": "abcdef0123456789", "git_dirty": True}) == "0.2.0 @ abcdef0123 +changes"
