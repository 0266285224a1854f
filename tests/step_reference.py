"""Writes ``fixtures/step_reference.json``: what every method computes, step by step, on fixed inputs, so that speed work
can be checked bit for bit against the implementation it replaces (``tests/test_step_reference.py``).

Two parts:

* ``steps``: a small conv net (its 12,544-weight layer takes Edge-Popup's carried-threshold path) trained for 12
  steps on one fixed random batch per method setting. Per step: the loss (``float.hex``) and the SHA-256 of each
  layer's selection (Edge-Popup's masks, the Bernoulli supermask's scores (which the sampled masks move), a slot machine's chosen candidates, LaPerm's
  weights after the step, and so its permutations); at the end the SHA-256 of every trained tensor.
* ``runs``: ``train.run`` of each method at the smoke size on MNIST (300 images, one epoch): the history rows,
  test accuracy and loss, and the SHA-256 of the trained state.

Floating-point results depend on the CPU's kernels (an Intel Xeon and an AMD EPYC differ in the last bits of the
first loss), so the file holds one reference per kind of CPU, under :func:`kind`: a digest of the dense case's
steps, which the throughput work did not touch. On a kind the file lacks, :func:`reference` writes one with the
code of :data:`WRITER` (``git archive`` of the package into a scratch folder, this script run on it), so the
comparison is always against the implementation before, on this CPU.

Run from the repository root (``RANDWEIGHTS_DATA`` must hold MNIST) with the package of commit 29ccd14 on
``PYTHONPATH``: ``python tests/step_reference.py [--out FILE]`` adds this CPU's kind to the file. The committed
entries were written by the code of commit 29ccd14, before the throughput changes of issue 23; rewrite them only
when a method's numbers are meant to change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from randweights import train
from randweights.config import make_config
from randweights.methods import edge_popup as ep
from randweights.methods import get
from randweights.methods import laperm as lp
from randweights.methods import slot_machines as sm
from randweights.methods import supermask_bernoulli as zb

PATH = Path(__file__).parent / "fixtures" / "step_reference.json"
WRITER = "29ccd14"  # the commit whose code wrote the references: the implementation before issue 23
STEPS = 12
STEP_CASES = {
    "dense": ("dense", {}),
    "edge-popup k=0.5": ("edge-popup", {"keep_fraction": 0.5}),
    "edge-popup k=0.05 scaled": ("edge-popup", {"keep_fraction": 0.05, "init": "scaled-signed-constant"}),
    "supermask-bernoulli": ("supermask-bernoulli", {}),
    "slot K=8 greedy": ("slot", {"num_slots": 8}),
    "slot K=4 probabilistic": ("slot", {"num_slots": 4, "selection": "probabilistic"}),
    "laperm k=3": ("laperm", {"sync_period": 3}),
}
RUN_CASES = {
    "dense": ("dense", {}),
    "edge-popup": ("edge-popup", {"keep_fraction": 0.5}),
    "supermask-bernoulli": ("supermask-bernoulli", {}),
    "slot greedy": ("slot", {"num_slots": 8}),
    "slot probabilistic": ("slot", {"num_slots": 8, "selection": "probabilistic"}),
    "laperm": ("laperm", {"sync_period": 5}),
    "imp": ("imp", {"rounds": 1, "rewind_step": 1}),
}
SMOKE = {"dataset": "mnist", "subset": 300, "epochs": 1}


def digest(tensor: torch.Tensor) -> str:
    t = tensor.detach().cpu().contiguous()
    return hashlib.sha256(str((tuple(t.shape), str(t.dtype))).encode() + t.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()[:24]


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 7 * 7, 32, bias=False), nn.ReLU(), nn.Linear(32, 10, bias=False))


def selections(model: nn.Module, method: str) -> list[str]:
    """SHA-256 of what each layer selected in the step just taken."""
    if method == "edge-popup":
        return [digest(m.mask()) for m in model.modules() if isinstance(m, ep.TopKMask)]
    if method == "supermask-bernoulli":
        return [digest(m.scores) for m in model.modules() if isinstance(m, zb.BernoulliMask)]  # moved by the sample
    if method == "slot":
        return [digest(m._last) for m in sm.slots(model)]
    if method == "laperm":
        return [digest(p) for p in lp.permutable_tensors(model)]
    return [digest(p) for p in model.parameters()]


def step_case(method: str, settings: dict) -> dict:
    torch.manual_seed(0)
    model = small_net()
    cfg = make_config(method, dataset="mnist", **settings)
    if method == "laperm":
        params = list(model.parameters())
        optimizer: torch.optim.Optimizer = lp.LaPerm(torch.optim.Adam(params, lr=1e-3), lp.permutable_tensors(model), settings["sync_period"])
    else:
        prepare = sm.prepare if method == "slot" else get(method).prepare
        params = prepare(model, cfg) if method != "dense" else list(model.parameters())
        optimizer = train.make_optimizer(params, cfg)
    for slot in sm.slots(model):
        slot.track = True  # keeps the last selection (slot._last)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 1, 14, 14, generator=g), torch.randint(0, 10, (64,), generator=g)
    out: dict = {"loss": [], "selected": []}
    model.train()
    for _ in range(STEPS):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        out["loss"].append(float(loss.detach()).hex())
        out["selected"].append(selections(model, method))
    out["trained"] = [digest(p) for p in params]
    return out


def run_case(method: str, settings: dict) -> dict:
    model, record = train.run(make_config(method, **SMOKE, **settings), "cpu")
    keys = ("train_loss", "train_accuracy", "lr")
    return {"history": [{k: row[k] for k in keys} for row in record.get("history", [])],
            "test_accuracy": record["test_accuracy"], "test_loss": record["test_loss"],
            "state": {k: digest(v) for k, v in model.state_dict().items()}}


def kind(dense_steps: dict) -> str:
    """The key of a CPU kind: a digest of the dense case's steps (its kernels' exact results)."""
    return hashlib.sha256(json.dumps(dense_steps, sort_keys=True).encode()).hexdigest()[:16]


def cpu_description() -> str:
    """This CPU in words, for the file's readers (not part of the key)."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}; torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"


def reference(scratch: Path) -> dict | None:
    """This CPU's reference: from the committed file, else written now by the code of :data:`WRITER` into
    ``scratch``. None where that code cannot be had (no git history here)."""
    stored = json.loads(PATH.read_text())["kinds"]
    key = kind(step_case("dense", {}))
    if key in stored:
        return stored[key]
    root = Path(__file__).resolve().parents[1]
    package = scratch / "writer"
    package.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(root), "archive", WRITER, "randweights"], capture_output=True)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(package)], input=archive.stdout, check=True)
    out = scratch / "reference.json"
    env = {**os.environ, "PYTHONPATH": str(package)}
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--out", str(out), "--empty"], env=env, check=True,
                   cwd=tempfile.gettempdir())
    return json.loads(out.read_text())["kinds"][key]


def main() -> None:
    parser = argparse.ArgumentParser(description="add this CPU's reference to the file (run with the package of WRITER)")
    parser.add_argument("--out", type=Path, default=PATH)
    parser.add_argument("--empty", action="store_true", help="start from an empty file, not --out's entries")
    args = parser.parse_args()
    steps = {name: step_case(*case) for name, case in STEP_CASES.items()}
    existing = {} if args.empty or not args.out.is_file() else json.loads(args.out.read_text())["kinds"]
    existing[kind(steps["dense"])] = {"cpu": cpu_description(), "steps": steps,
                                      "runs": {name: run_case(*case) for name, case in RUN_CASES.items()}}
    args.out.write_text(json.dumps({"writer": WRITER, "kinds": existing}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
