"""Equivalence with the official code: our methods on the inputs of the golden fixtures, compared with what the
official implementations computed on them.

The fixtures (``tests/golden/<method>.npz`` with ``<method>.json``) are written by ``tests/golden/generate.py``,
which runs the official code (Edge-Popup and the Bernoulli supermask: allenai/hidden-networks; Slot Machines:
maxwell-aladago/slot-machines; LaPerm: ihsuy/Train-by-Reconnect, in TensorFlow; IMP: phiandark/SiftingFeatures)
on small fixed inputs and records each repository's commit. :func:`compare` runs our side and returns one
:class:`Comparison` per thing compared; the golden tests (``tests/test_golden.py``) assert on them and the book's
appendix "Equivalence with the official code" renders them (:func:`markdown`), so the page shows what the tests
check. The fixtures belong to the source tree, not the installed package: :func:`fixtures_folder` finds them
from the working directory up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .methods import edge_popup, laperm, pruning, slot_machines, supermask_bernoulli, transform

METHODS = ("edge_popup", "supermask_bernoulli", "slot_machines", "laperm", "pruning")
TITLES = {"edge_popup": "Edge-Popup", "supermask_bernoulli": "Bernoulli supermask", "slot_machines": "Slot Machines",
          "laperm": "LaPerm", "pruning": "IMP (iterative magnitude pruning)"}
GRADIENT_ATOL = 1e-7  # float32 gradients computed in a different order of the same products
PS_FREQUENCY_ATOL = 0.025  # 5 standard errors of a difference of two frequencies from 20,000 draws each


@dataclass(frozen=True)
class Comparison:
    """One thing compared: ``difference`` (in the unit ``measure`` names) passes when at most ``limit``."""

    method: str
    key: str  # short name of the comparison within the method ("masks", "gradients", ...)
    compared: str
    inputs: str
    tolerance: str
    measure: str
    difference: float
    limit: float
    repository: str
    commit: str
    sources: str
    ported: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.difference <= self.limit)

    def record(self) -> dict:
        """A plain dict (JSON-ready), ``passed`` included."""
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True)
class Fixture:
    method: str
    meta: dict
    arrays: dict[str, np.ndarray]

    def tensor(self, name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(self.arrays[name]))

    def comparison(self, key: str, compared: str, inputs: str, tolerance: str, measure: str, difference: float,
                   limit: float) -> Comparison:
        meta = self.meta
        return Comparison(self.method, key, compared, inputs, tolerance, measure, float(difference), float(limit), meta["repository"],
                          meta["commit"], "; ".join(meta["sources"]), meta.get("ported"))


# ---------------------------------------------------------------------------------------------- the fixtures
def fixtures_folder(start: Path | str | None = None) -> Path:
    """``tests/golden`` of the source tree: in ``start`` (default: the working directory) or a folder above it
    (the book's pages run in ``book/``)."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "tests" / "golden"
        if (candidate / f"{METHODS[0]}.json").is_file():
            return candidate
    raise ConfigError("start", str(here), "a folder of the source tree (its tests/golden holds the golden fixtures; the installed package has none)")


def load(method: str, folder: Path | str | None = None) -> Fixture:
    """The fixture of ``method`` (one of :data:`METHODS`)."""
    if method not in METHODS:
        raise ConfigError("method", method, ", ".join(METHODS))
    root = Path(folder) if folder is not None else fixtures_folder()
    meta = json.loads((root / f"{method}.json").read_text())
    with np.load(root / f"{method}.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return Fixture(method, meta, arrays)


def _mismatches(ours: list[torch.Tensor], official: list[torch.Tensor]) -> int:
    return sum(int((a.to(b.dtype) != b).sum()) for a, b in zip(ours, official, strict=True))


def _grad(p: torch.Tensor) -> torch.Tensor:
    if p.grad is None:
        raise RuntimeError("no gradient reached a score tensor")
    return p.grad


def _max_abs(ours: list[torch.Tensor], official: list[torch.Tensor]) -> float:
    return max(float((a - b).abs().max()) for a, b in zip(ours, official, strict=True))


# ---------------------------------------------------------------------------------------------- the nets
def _conv_fc_net(fixture: Fixture) -> nn.Sequential:
    """Conv2d -> ReLU -> reshape to (C, 1, 1) -> 1x1 Conv2d (hidden-networks' fully connected layer), no biases,
    holding the fixture's weights."""
    w1, w2 = fixture.tensor("weight1"), fixture.tensor("weight2")
    net = nn.Sequential(nn.Conv2d(w1.shape[1], w1.shape[0], w1.shape[2], bias=False), nn.ReLU(), nn.Flatten(),
                        nn.Unflatten(1, (w2.shape[1], 1, 1)), nn.Conv2d(w2.shape[1], w2.shape[0], 1, bias=False), nn.Flatten())
    with torch.no_grad():
        transform.tensor(net[0]).copy_(w1)
        transform.tensor(net[4]).copy_(w2)
    return net


def _backward(net: nn.Module, fixture: Fixture) -> None:
    net.train()
    F.cross_entropy(net(fixture.tensor("x")), fixture.tensor("y")).backward()


# ---------------------------------------------------------------------------------------------- Edge-Popup
def _edge_popup(fixture: Fixture) -> list[Comparison]:
    k = fixture.meta["settings"]["keep_fraction"]
    net = edge_popup.apply(_conv_fc_net(fixture), k, init=None)
    scores = edge_popup.scores(net)
    with torch.no_grad():
        for i, s in enumerate(scores, 1):
            s.copy_(fixture.tensor(f"scores{i}"))
    _backward(net, fixture)
    maskers = [m for m in net.modules() if isinstance(m, edge_popup.TopKMask)]
    masks = [fixture.tensor(f"mask{i}") for i in (1, 2)]
    grads = [fixture.tensor(f"grad{i}") for i in (1, 2)]
    inputs = (f"a 3x3 conv (162 weights) and a 1x1 conv as FC layer (960 weights), keep_fraction {k}, the official "
              "init's frozen weights, seeded random scores (no ties), a batch of 4 seeded images")
    drawn = [edge_popup.init_weight_(torch.empty(w.shape), "scaled-signed-constant", k, torch.Generator().manual_seed(0), "code")
             for w in (fixture.tensor("weight1"), fixture.tensor("weight2"))]
    official_std = [fixture.tensor(f"weight{i}").abs() for i in (1, 2)]
    init_gap = max(float(((d.abs() - o) / o).abs().max()) for d, o in zip(drawn, official_std))
    sizes, fractions = fixture.arrays["count_sizes"], fixture.arrays["count_fractions"]
    ours_counts = np.array([[edge_popup.kept_count(int(n), float(f)) for f in fractions] for n in sizes])
    count_gap = int((ours_counts != fixture.arrays["official_counts"]).sum())
    return [
        fixture.comparison("masks", "top-k masks of |scores|", inputs, "exact", "entries that differ",
                           _mismatches([m.mask() for m in maskers], masks), 0),
        fixture.comparison("gradients", "gradients of the scores (straight-through, through |S|)", inputs, f"absolute {GRADIENT_ATOL:g}",
                           "max |difference|", _max_abs([_grad(s) for s in scores], grads), GRADIENT_ATOL),
        fixture.comparison("init", "frozen weights' magnitude, scaled signed-constant init with the code's fan (1 - k) * fan_in "
                           "(scaled_fan='code')", f"the same two layers, k = {k}", "relative 1e-6", "max relative difference",
                           init_gap, 1e-6),
        fixture.comparison("kept-count", "number of weights kept per layer (ours round(k n); official n - int((1 - k) n))",
                           f"layer sizes {', '.join(str(int(n)) for n in sizes)} at k = {', '.join(f'{f:g}' for f in fractions)}",
                           "exact", "(size, k) pairs that differ", count_gap, 0),
    ]


def _supermask_bernoulli(fixture: Fixture) -> list[Comparison]:
    seed = int(fixture.arrays["seed"])
    net = supermask_bernoulli.apply(_conv_fc_net(fixture), 0.5, init=None, generator=torch.Generator().manual_seed(seed))
    scores = supermask_bernoulli.scores(net)
    with torch.no_grad():
        for i, s in enumerate(scores, 1):
            s.copy_(fixture.tensor(f"scores{i}"))
    _backward(net, fixture)  # draws one sample per layer from the generator, in layer order, as the official forward
    replay = torch.Generator().manual_seed(seed)
    samples = [m.sample(replay) for m in supermask_bernoulli.masks(net)]
    inputs = (f"a 3x3 conv and a 1x1 conv as FC layer, seeded scores N(0, 2^2), the official global generator seeded "
              f"{seed} and ours a generator seeded {seed}, a batch of 4 seeded images")
    return [
        fixture.comparison("masks", "sampled masks M = [U < sigmoid(S)]", inputs, "exact", "entries that differ",
                           _mismatches(samples, [fixture.tensor(f"mask{i}") for i in (1, 2)]), 0),
        fixture.comparison("gradients", "gradients of the scores (straight-through to sigmoid(S))", inputs, f"absolute {GRADIENT_ATOL:g}",
                           "max |difference|", _max_abs([_grad(s) for s in scores], [fixture.tensor(f"grad{i}") for i in (1, 2)]), GRADIENT_ATOL),
    ]


# ---------------------------------------------------------------------------------------------- Slot Machines
def _slot_net(fixture: Fixture) -> nn.Sequential:
    codes1, codes2 = fixture.tensor("codes1"), fixture.tensor("codes2")
    _, out1, in1, kh, _ = codes1.shape
    _, out2, in2 = codes2.shape
    return nn.Sequential(nn.Conv2d(in1, out1, kh, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(in2, out2, bias=False))


def _slot_machines(fixture: Fixture) -> list[Comparison]:
    bounds = [float(fixture.arrays["bound1"]), float(fixture.arrays["bound2"])]
    num_slots = int(fixture.arrays["codes1"].shape[0])
    net = slot_machines.apply(_slot_net(fixture), num_slots, "greedy", candidate_init="code", score_init="code",
                              generator=torch.Generator().manual_seed(0))
    layers = slot_machines.slots(net)
    init_bounds = fixture.arrays["init_bounds"]  # per layer: (-b, b) of the candidates, (0, b) of the scores
    candidate_gap = max(abs(s.bound - float(init_bounds[2 * i][1])) for i, s in enumerate(layers))
    score_gap = max(max(abs(1 - float(s.scores.detach().max()) / float(init_bounds[2 * i + 1][1])), float(s.scores.detach().min() < 0))
                    for i, s in enumerate(layers))
    net = slot_machines.apply(_slot_net(fixture), num_slots, "greedy", candidate_init="code", score_init="code",
                              generator=torch.Generator().manual_seed(0), bounds=bounds)
    layers = slot_machines.slots(net)
    with torch.no_grad():
        for i, s in enumerate(layers, 1):
            s.codes.copy_(fixture.tensor(f"codes{i}"))
            s.scores.copy_(fixture.tensor(f"scores{i}"))
    _backward(net, fixture)
    inputs = (f"a 3x3 conv and a linear layer, K = {num_slots}, the official init's scores, candidates at the official "
              "bound on our 8-bit grid, a batch of 4 seeded images")
    ps = _sampled_frequencies(fixture)
    draws = int(fixture.arrays["ps_draws"])
    return [
        fixture.comparison("candidate-bound", "candidate bound sqrt(6 / (fan_in + fan_out)) (candidate_init='code')",
                           f"a 3x3 conv (3 to 4 channels) and a linear layer (36 to 5), K = {num_slots}",
                           "exact", "max |difference|", candidate_gap, 0),
        fixture.comparison("score-init", "score init U(0, b) in every layer (score_init='code'): largest score against b",
                           "the same two layers (432 and 720 scores)", "within 5 % below b, none negative",
                           "max |1 - max(S) / b|", score_gap, 0.05),
        fixture.comparison("greedy", "greedy selection (GS): the candidate chosen per connection", inputs, "exact", "connections that differ",
                           _mismatches([s.index().squeeze(0) for s in layers], [fixture.tensor(f"index{i}") for i in (1, 2)]), 0),
        fixture.comparison("gradients", "gradients of the scores (straight-through, GS)", inputs, f"absolute {GRADIENT_ATOL:g}", "max |difference|",
                           _max_abs([_grad(s.scores) for s in layers], [fixture.tensor(f"grad{i}") for i in (1, 2)]), GRADIENT_ATOL),
        fixture.comparison("probabilistic", "probabilistic selection (PS): how often each candidate is drawn",
                           f"6 connections x 4 candidates with softmax probabilities from 0.05 to 0.7, {draws:,} draws each "
                           "(official: multinomial of the softmax; ours: Gumbel-max)",
                           f"absolute {PS_FREQUENCY_ATOL:g} (5 standard errors)", "max |frequency difference|",
                           float((ps - fixture.tensor("ps_frequencies").double()).abs().max()), PS_FREQUENCY_ATOL),
    ]


def _sampled_frequencies(fixture: Fixture) -> torch.Tensor:
    """How often our PS sampler draws each candidate, over the fixture's number of draws (all drawn at once)."""
    scores = fixture.tensor("ps_scores")
    draws = int(fixture.arrays["ps_draws"])
    repeated = scores.unsqueeze(1).expand(scores.shape[0], draws, *scores.shape[1:]).contiguous()
    index = slot_machines.sample_index(repeated, torch.Generator().manual_seed(3)).squeeze(0)
    return F.one_hot(index, scores.shape[0]).double().mean(0).movedim(-1, 0)


# ---------------------------------------------------------------------------------------------- LaPerm
def _torch_layout(array: np.ndarray) -> torch.Tensor:
    """A Keras tensor in PyTorch's layout: Dense (in, out) -> (out, in), Conv2D (kh, kw, in, out) -> (out, in, kh, kw)."""
    t = torch.from_numpy(np.array(array))
    if t.dim() == 2:
        t = t.T
    elif t.dim() == 4:
        t = t.permute(3, 2, 0, 1)
    return t.contiguous()


def _laperm(fixture: Fixture) -> list[Comparison]:
    names = sorted(k[: -len("_initial")] for k in fixture.arrays if k.endswith("_initial"))
    params = [nn.Parameter(_torch_layout(fixture.arrays[f"{n}_initial"])) for n in names]
    opt = laperm.LaPerm(torch.optim.SGD(params, lr=0.0), params, sync_period=1)
    with torch.no_grad():
        for p, n in zip(params, names):
            p.copy_(_torch_layout(fixture.arrays[f"{n}_current"]))
    opt.sync()
    official = [_torch_layout(fixture.arrays[f"{n}_synced"]) for n in names]
    shapes = ", ".join(f"{n} {tuple(fixture.arrays[f'{n}_initial'].shape)}" for n in names)
    inputs = (f"Keras-layout tensors ({shapes}; rows = output units), initial values U(-1, 1), current values N(0, 1), "
              "seeded, no ties; the wide kernel takes our numpy-sort path")
    return [fixture.comparison("sync", "weights after a sync (each row's initial values in the rank order of its current values)",
                               inputs, "exact", "entries that differ", _mismatches([p.detach() for p in params], official), 0)]


# ---------------------------------------------------------------------------------------------- IMP
def _pruning(fixture: Fixture) -> list[Comparison]:
    settings = fixture.meta["settings"]
    conv = fixture.tensor("round1_conv_weight")
    fc, out = fixture.tensor("round1_fc_weight"), fixture.tensor("round1_out_weight")
    kh, _, c_in, c_out = conv.shape
    net = nn.Sequential(nn.Conv2d(c_in, c_out, kh, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(*fc.shape), nn.ReLU(), nn.Linear(*out.shape))
    pruning.attach_masks(net)
    differ = 0
    for r in range(1, settings["rounds"] + 1):
        with torch.no_grad():
            transform.tensor(net[0], "weight_orig").copy_(_torch_layout(fixture.arrays[f"round{r}_conv_weight"]))
            transform.tensor(net[3], "weight_orig").copy_(_torch_layout(fixture.arrays[f"round{r}_fc_weight"]))
            transform.tensor(net[3], "bias_orig").copy_(fixture.tensor(f"round{r}_fc_bias"))
            transform.tensor(net[5]).copy_(_torch_layout(fixture.arrays[f"round{r}_out_weight"]))
            transform.tensor(net[5], "bias").copy_(fixture.tensor(f"round{r}_out_bias"))
        masks = pruning.imp_step(net, pruning.get_masks(net), r, settings["prune_ratio"])
        pruning.set_masks(net, masks)
        official = [_torch_layout(fixture.arrays[f"round{r}_conv_mask"]), _torch_layout(fixture.arrays[f"round{r}_fc_weight_mask"]),
                    fixture.tensor(f"round{r}_fc_bias_mask")]
        ours = [masks[0][0], masks[1][0], masks[1][1]]
        differ += _mismatches([m for m in ours if m is not None], official)
    inputs = (f"a 3x3 conv (no bias), a hidden linear layer with biases and an output layer (not pruned), "
              f"{settings['rounds']} rounds at prune fraction {settings['prune_ratio']} with new seeded weights each round")
    return [fixture.comparison("masks", "masks after each round (weights and biases of a layer ranked together by |value|, pruned "
                               "entries stay pruned)", inputs, "exact", "entries that differ", differ, 0)]


COMPARE: dict[str, Callable[[Fixture], list[Comparison]]] = {
    "edge_popup": _edge_popup, "supermask_bernoulli": _supermask_bernoulli, "slot_machines": _slot_machines,
    "laperm": _laperm, "pruning": _pruning,
}


def compare(method: str, folder: Path | str | None = None) -> list[Comparison]:
    """Run our implementation of ``method`` on its fixture's inputs and compare with the official outputs."""
    fixture = load(method, folder)
    torch.manual_seed(0)  # nothing compared depends on the global generator; this keeps unseeded draws repeatable
    return COMPARE[method](fixture)


def compare_all(folder: Path | str | None = None) -> list[Comparison]:
    root = Path(folder) if folder is not None else fixtures_folder()
    return [c for method in METHODS for c in compare(method, root)]


# ---------------------------------------------------------------------------------------------- the page
def _cell(text: str) -> str:
    """Text for a Markdown table cell: its own ``|`` escaped."""
    return text.replace("|", "\\|")


def _result(c: Comparison) -> str:
    verdict = "equal" if c.passed else "**differs**"
    return f"{verdict} ({c.measure}: {c.difference:.3g})"


def markdown(results: list[Comparison]) -> str:
    """Per method: a paragraph naming the repository and the commit run, then a table with one row per comparison
    (compared, inputs, tolerance, result)."""
    parts = []
    for method in METHODS:
        rows = [c for c in results if c.method == method]
        if not rows:
            continue
        first = rows[0]
        name = first.repository.removeprefix("https://github.com/")
        ran = f"ported to PyTorch: {first.ported}" if first.ported else "run as released"
        parts.append(f"**{TITLES[method]}.** Official code: [{name}]({first.repository}) at commit "
                     f"[`{first.commit[:7]}`]({first.repository}/tree/{first.commit}) ({first.sources}; {ran}).")
        table = ["| Compared | Inputs | Tolerance | Result |", "|---|---|---|---|"]
        table += [f"| {_cell(c.compared)} | {_cell(c.inputs)} | {_cell(c.tolerance)} | {_cell(_result(c))} |" for c in rows]
        parts.append("\n".join(table))
    return "\n\n".join(parts) + "\n"


def summary(results: list[Comparison]) -> str:
    """One sentence: how many comparisons agree within their tolerance."""
    failed = [c for c in results if not c.passed]
    text = f"{len(results) - len(failed)} of {len(results)} comparisons agree with the official code within their tolerance"
    if failed:
        text += "; differing: " + "; ".join(f"{TITLES[c.method]}, {c.compared}" for c in failed)
    return text + "."
