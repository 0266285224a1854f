"""benchmarks/gpu.py on the CPU with tiny sizes: the epoch table and the budgeted Fig. 3 loop (no GPU here)."""

from __future__ import annotations

import pytest
from conftest import benchmark_module


@pytest.fixture(scope="module")
def gpu():
    with benchmark_module("gpu") as module:
        yield module


def test_epoch_times_for_each_network_and_method(gpu, mnist):
    rows = gpu.time_epochs("cpu", archs=("lenet-300-100",), subset=256)
    assert [(r["arch"], r["method"]) for r in rows] == [("lenet-300-100", m) for m in ("dense", "edge-popup", "slot")]
    assert all(r["epoch_seconds"] > 0 and r["train_images"] == 256 for r in rows)
    cfg = gpu.epoch_config("resnet18", "slot")
    assert (cfg.train.batch_size, cfg.data.augment, cfg.method.num_slots, cfg.data.subset) == (256, True, 8, None)


def test_the_fig3_loop_runs_what_fits_and_keeps_the_records(gpu, tmp_path, mnist):
    full = gpu.fig3_conv4_configs()
    assert full and {(c.model.arch, c.data.dataset, c.train.epochs) for c in full} == {("conv4", "cifar10", 100)}
    tiny = [gpu.epoch_config("lenet-300-100", "edge-popup", subset=256, keep_fraction=k) for k in (0.1, 0.3, 0.5, 0.7)]
    records = gpu.fill_budget(tiny, seconds_per_epoch=100.0, budget_seconds=250.0, root=tmp_path, device="cpu")
    assert [r["keep_fraction"] for r in records] == [0.1, 0.3]  # a third would be predicted at 300 s > 250 s
    assert sorted(p.parent.name for p in tmp_path.glob("*/record.json")) == sorted(r["run_id"] for r in records)


def test_without_cuda_it_is_skipped(gpu, capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert gpu.main(["--out", str(tmp_path / "gpu.json")]) == 0
    assert "skipped" in capsys.readouterr().out and not (tmp_path / "gpu.json").exists()
