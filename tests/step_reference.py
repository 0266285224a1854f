"""Writes ``fixtures/step_reference.json``: what every method computes, step by step, on fixed inputs, so that speed work
can be checked bit for bit against the implementation it replaces (``tests/test_step_reference.py``).

Two parts:

* ``steps``: a small conv net (its 12,544-weight layer takes Edge-Popup's carried-threshold path) trained for 12
  steps on one fixed random batch per method setting. Per step: the loss (``float.hex``) and the SHA-256 of each
  layer's selection (Edge-Popup's masks, the Bernoulli supermask's scores (which the sampled masks move), a slot machine's chosen candidates, LaPerm's
  weights after the step, and so its permutations); at the end the SHA-256 of every trained tensor.
* ``runs``: ``train.run`` of each method at the smoke size on MNIST (300 images, one epoch): the history rows,
  test accuracy and loss, and the SHA-256 of the trained state.

Run from the repository root (``RANDWEIGHTS_DATA`` must hold MNIST): ``python tests/step_reference.py``.
The committed file was written by the code of commit 29ccd14, before the throughput changes of issue 23; rewrite
it only when a method's numbers are meant to change.
"""

from __future__ import annotations

import hashlib
import json
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


def main() -> None:
    reference = {"steps": {name: step_case(*case) for name, case in STEP_CASES.items()},
                 "runs": {name: run_case(*case) for name, case in RUN_CASES.items()}}
    PATH.write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
