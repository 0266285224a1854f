"""Write the golden fixtures: what the official implementations compute on small fixed inputs.

The official code is RUN here, imported from checkouts of the public repositories; nothing of it is copied into
the package or imported by the tests. Each method gets ``tests/golden/<method>.npz`` (the inputs and the official
outputs) and ``tests/golden/<method>.json`` (the repository, its commit, the files run, the settings, the library
versions). ``randweights.equivalence`` compares our implementation with them (tests/test_golden.py and the
book's appendix "Equivalence with the official code").

Usage::

    python tests/golden/generate.py --official DIR --tf-python PYTHON

DIR holds checkouts of the four repositories under their own names:

* ``hidden-networks``     https://github.com/allenai/hidden-networks (PyTorch): Edge-Popup, Bernoulli supermask
* ``slot-machines``       https://github.com/maxwell-aladago/slot-machines (PyTorch): Slot Machines
* ``Train-by-Reconnect``  https://github.com/ihsuy/Train-by-Reconnect (TensorFlow): LaPerm
* ``SiftingFeatures``     https://github.com/phiandark/SiftingFeatures (numpy masks, TensorFlow training): IMP

Each commit is read with ``git -C DIR/NAME rev-parse HEAD``; a folder that is not a git work tree needs
``--commit NAME=SHA``. LaPerm's sync is TensorFlow code: PYTHON is an interpreter with TensorFlow and tqdm
installed (``python -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu tqdm``); it runs
``tests/golden/laperm_tf.py`` on the inputs written here. This script itself needs torch, numpy and pyyaml
(hidden-networks' ``args.py`` imports yaml).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPOSITORIES = {
    "hidden-networks": "https://github.com/allenai/hidden-networks",
    "slot-machines": "https://github.com/maxwell-aladago/slot-machines",
    "Train-by-Reconnect": "https://github.com/ihsuy/Train-by-Reconnect",
    "SiftingFeatures": "https://github.com/phiandark/SiftingFeatures",
}
EDGE_POPUP_K = 0.3  # kept fraction; != 0.5, so the released code's scaled fan (1 - k) differs from the paper's k
COUNT_SIZES = (96, 108, 162, 960, 1728, 4096)  # layer sizes of the kept-count comparison
COUNT_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
PS_DRAWS = 20000  # probabilistic selections drawn to compare their frequencies
IMP_ROUNDS = 3


# ---------------------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def on_path(folder: Path, argv: list[str] | None = None):
    """Import from ``folder`` (and with ``sys.argv`` = ``argv``: hidden-networks parses it on import)."""
    saved_path, saved_argv = list(sys.path), list(sys.argv)
    sys.path.insert(0, str(folder))
    if argv is not None:
        sys.argv = argv
    try:
        yield
    finally:
        sys.path[:], sys.argv[:] = saved_path, saved_argv


def commit_of(folder: Path, given: dict[str, str], name: str) -> str:
    if name in given:
        return given[name]
    done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{folder}: not a git work tree; give --commit {name}=SHA")
    return done.stdout.strip()


def versions(**extra: str) -> dict[str, str]:
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__, **extra}


def write(method: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    np.savez_compressed(HERE / f"{method}.npz", **{k: np.asarray(v) for k, v in arrays.items()})
    (HERE / f"{method}.json").write_text(json.dumps(meta, indent=2) + "\n")
    size = (HERE / f"{method}.npz").stat().st_size
    print(f"{method}: {len(arrays)} arrays, {size / 1024:.1f} kB")


def provenance(name: str, commit: str, sources: list[str], **extra) -> dict:
    return {"repository": REPOSITORIES[name], "commit": commit, "sources": sources, **extra}


# ---------------------------------------------------------------------------------------------- Edge-Popup
def edge_popup(folder: Path, commit: str) -> None:
    """hidden-networks' SubnetConv (utils/conv_type.py, GetSubnet on |scores|) with the weights of its
    builder's signed-constant init with scale_fan (utils/builder.py), on a conv layer and a 1x1 conv used as a
    fully connected layer (as models/frankle.py does)."""
    with on_path(folder, ["generate.py"]):
        import args as hn_args  # noqa: E402  (parses sys.argv: no options, defaults)
        import utils.builder as hn_builder  # noqa: E402
        import utils.conv_type as hn_conv

    k = EDGE_POPUP_K
    options = hn_args.args
    options.init, options.scale_fan, options.prune_rate = "signed_constant", True, k
    options.mode, options.nonlinearity = "fan_in", "relu"
    torch.manual_seed(0)
    layers = [hn_conv.SubnetConv(3, 6, 3, bias=False), hn_conv.SubnetConv(96, 10, 1, bias=False)]
    builder = hn_builder.Builder(conv_layer=hn_conv.SubnetConv, bn_layer=torch.nn.BatchNorm2d)
    for layer in layers:
        builder._init_conv(layer)  # the official init of the frozen weights
        layer.set_prune_rate(k)
    x, y = torch.randn(4, 3, 6, 6), torch.randint(0, 10, (4,))
    logits = layers[1](F.relu(layers[0](x)).reshape(4, 96, 1, 1)).flatten(1)
    F.cross_entropy(logits, y).backward()
    arrays: dict[str, np.ndarray] = {"x": x.numpy(), "y": y.numpy(), "logits": logits.detach().numpy()}
    for i, layer in enumerate(layers, 1):
        arrays[f"weight{i}"] = layer.weight.detach().numpy()
        arrays[f"scores{i}"] = layer.scores.detach().numpy()
        arrays[f"mask{i}"] = hn_conv.GetSubnet.apply(layer.clamped_scores, k).detach().numpy().astype(bool)
        arrays[f"grad{i}"] = layer.scores.grad.numpy()
    counts = np.zeros((len(COUNT_SIZES), len(COUNT_FRACTIONS)), dtype=np.int64)
    for i, n in enumerate(COUNT_SIZES):
        for j, fraction in enumerate(COUNT_FRACTIONS):
            counts[i, j] = int(hn_conv.GetSubnet.apply(torch.rand(n), fraction).sum())
    arrays.update(count_sizes=np.array(COUNT_SIZES), count_fractions=np.array(COUNT_FRACTIONS), official_counts=counts)
    meta = provenance("hidden-networks", commit, ["utils/conv_type.py (SubnetConv, GetSubnet)", "utils/builder.py (Builder._init_conv)"],
                      settings={"keep_fraction": k, "init": "signed_constant", "scale_fan": True, "mode": "fan_in", "nonlinearity": "relu",
                                "layers": "Conv2d(3, 6, 3) -> ReLU -> reshape (96, 1, 1) -> Conv2d(96, 10, 1), no biases", "seed": 0},
                      ported=None, versions=versions())
    write("edge_popup", arrays, meta)


def supermask_bernoulli(folder: Path, commit: str) -> None:
    """hidden-networks' SampleSubnetConv (utils/conv_type.py): M = [U < sigmoid(S)] with U = rand_like from the
    global generator, gradient straight through the sample to sigmoid(S)."""
    with on_path(folder, ["generate.py"]):
        import args as hn_args  # noqa: E402
        import utils.conv_type as hn_conv

    hn_args.args.score_init_constant = None
    torch.manual_seed(1)
    layers = [hn_conv.SampleSubnetConv(3, 6, 3, bias=False), hn_conv.SampleSubnetConv(96, 10, 1, bias=False)]
    with torch.no_grad():
        for layer in layers:
            layer.weight.normal_(0, math.sqrt(2.0 / layer.weight[0].numel()))
            layer.scores.normal_(0, 2.0)  # sigmoid(S) spread over (0, 1)
    x, y = torch.randn(4, 3, 6, 6), torch.randint(0, 10, (4,))
    seed = 7
    torch.manual_seed(seed)
    masks = [hn_conv.StraightThroughBinomialSample.apply(layer.clamped_scores).detach() for layer in layers]
    torch.manual_seed(seed)  # the forward draws the same samples, layer by layer
    logits = layers[1](F.relu(layers[0](x)).reshape(4, 96, 1, 1)).flatten(1)
    F.cross_entropy(logits, y).backward()
    arrays: dict[str, np.ndarray] = {"x": x.numpy(), "y": y.numpy(), "logits": logits.detach().numpy(), "seed": np.array(seed)}
    for i, (layer, mask) in enumerate(zip(layers, masks), 1):
        arrays[f"weight{i}"] = layer.weight.detach().numpy()
        arrays[f"scores{i}"] = layer.scores.detach().numpy()
        arrays[f"mask{i}"] = mask.numpy().astype(bool)
        arrays[f"grad{i}"] = layer.scores.grad.numpy()
    meta = provenance("hidden-networks", commit, ["utils/conv_type.py (SampleSubnetConv, StraightThroughBinomialSample)"],
                      settings={"sample_seed": seed, "layers": "Conv2d(3, 6, 3) -> ReLU -> reshape (96, 1, 1) -> Conv2d(96, 10, 1), no biases",
                                "scores": "N(0, 2^2)"},
                      ported=None, versions=versions())
    write("supermask_bernoulli", arrays, meta)


# ---------------------------------------------------------------------------------------------- Slot Machines
@contextlib.contextmanager
def recording_uniform(calls: list[tuple[float, float]]):
    """Record the bounds of every ``Tensor.uniform_`` call (the official init's bounds)."""
    original = torch.Tensor.uniform_

    def uniform_(self, a=0.0, b=1.0, *rest, **kw):
        calls.append((float(a), float(b)))
        return original(self, a, b, *rest, **kw)

    torch.Tensor.uniform_ = uniform_  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.uniform_ = original  # type: ignore[method-assign]


def slot_machines(folder: Path, commit: str) -> None:
    """maxwell-aladago/slot-machines: Linear / Conv2d (linear.py, conv2d.py) with GreedySelection and
    ProbabilisticSelection (selection_engine.py). Candidates and scores are stored slot-axis LAST there; the
    fixture stores them slot-axis first (ours). The candidate values are put on our 8-bit grid
    (code * bound / 127) so that both sides hold the same values."""
    with on_path(folder):
        import conv2d as sm_conv2d  # noqa: E402
        import linear as sm_linear
        import selection_engine as sm_select

    K = 4
    torch.manual_seed(2)
    bounds: list[tuple[float, float]] = []
    with recording_uniform(bounds):
        conv = sm_conv2d.Conv2d(3, 4, K, 3)
        lin = sm_linear.Linear(36, 5, K)
    # per layer: weight.uniform_(-std, std), score.uniform_(0, std)
    arrays: dict[str, np.ndarray] = {"init_bounds": np.array(bounds, dtype=np.float64)}
    for i, layer in enumerate((conv, lin), 1):
        std = bounds[2 * (i - 1)][1]
        codes = torch.randint(-127, 128, (K, *layer.weight.shape[:-1]), dtype=torch.int8)
        with torch.no_grad():
            layer.weight.copy_((codes.to(torch.float32) * (std / 127)).movedim(0, -1))
        arrays[f"codes{i}"] = codes.numpy()
        arrays[f"scores{i}"] = layer.score.detach().movedim(-1, 0).numpy()
        arrays[f"bound{i}"] = np.array(std)
    x, y = torch.randn(4, 3, 5, 5), torch.randint(0, 5, (4,))
    logits = lin(F.relu(conv(x)))
    F.cross_entropy(logits, y).backward()
    arrays.update(x=x.numpy(), y=y.numpy(), logits=logits.detach().numpy())
    for i, layer in enumerate((conv, lin), 1):
        onehot = sm_select.GreedySelection.apply(layer.score.detach())
        arrays[f"index{i}"] = onehot.argmax(-1).numpy()
        arrays[f"grad{i}"] = layer.score.grad.movedim(-1, 0).numpy()
    # probabilistic selection: frequencies of each candidate over many draws of the official sampler
    logp = torch.log(torch.tensor([[0.55, 0.25, 0.15, 0.05], [0.05, 0.15, 0.25, 0.55], [0.4, 0.3, 0.2, 0.1],
                                   [0.1, 0.6, 0.1, 0.2], [0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]]))
    ps_scores = (logp + 0.3).reshape(2, 3, K)  # (out, in, K): any shift leaves the softmax unchanged
    torch.manual_seed(3)
    counts = torch.zeros(2, 3, K)
    for _ in range(PS_DRAWS):
        counts += sm_select.ProbabilisticSelection.apply(ps_scores)
    arrays.update(ps_scores=ps_scores.movedim(-1, 0).numpy(), ps_frequencies=(counts / PS_DRAWS).movedim(-1, 0).numpy(),
                  ps_draws=np.array(PS_DRAWS))
    meta = provenance("slot-machines", commit, ["selection_engine.py (GreedySelection, ProbabilisticSelection)", "linear.py", "conv2d.py"],
                      settings={"num_slots": K, "layers": "Conv2d(3, 4, 3) -> ReLU -> flatten -> Linear(36, 5), no biases",
                                "candidates": "official bound, values on our 8-bit grid (code * bound / 127)",
                                "probabilistic_draws": PS_DRAWS},
                      ported=None, versions=versions())
    write("slot_machines", arrays, meta)


# ---------------------------------------------------------------------------------------------- LaPerm
def laperm(folder: Path, commit: str, tf_python: str) -> None:
    """Train-by-Reconnect's LaPerm (train_by_reconnect/LaPerm.py: sort_theta, apply_synchronization), run in
    TensorFlow by tests/golden/laperm_tf.py on Keras-layout tensors: initial values theta_0, current values
    theta_t, and the synced theta_t."""
    rng = np.random.RandomState(4)
    shapes = {"dense_kernel": (10, 6), "dense_bias": (6,), "conv_kernel": (3, 3, 2, 4), "wide_kernel": (80, 64)}
    arrays: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        arrays[f"{name}_initial"] = rng.uniform(-1, 1, shape).astype(np.float32)
        arrays[f"{name}_current"] = rng.normal(0, 1, shape).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(inputs, **arrays)
        done = subprocess.run([tf_python, str(HERE / "laperm_tf.py"), str(folder), str(inputs), str(outputs)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"laperm_tf.py failed:\n{done.stderr[-3000:]}")
        synced = dict(np.load(outputs))
        tf_version = synced.pop("tensorflow_version").item()
    arrays.update({f"{name}_synced": synced[name] for name in shapes})
    meta = provenance("Train-by-Reconnect", commit, ["train_by_reconnect/LaPerm.py (LaPerm.sort_theta, LaPerm.apply_synchronization)"],
                      settings={"layout": "Keras: Dense kernel (in, out), Conv2D kernel (kh, kw, in, out), bias (out,)",
                                "skip_bias": False, "tensors": {k: list(v) for k, v in shapes.items()}},
                      ported=None, versions=versions(tensorflow=str(tf_version)))
    write("laperm", arrays, meta)


# ---------------------------------------------------------------------------------------------- IMP
def pruning(folder: Path, commit: str) -> None:
    """SiftingFeatures' IMP masks (src/Utils.py: archparse, make_mask, get_mask; numpy), three rounds at
    prune_ratio 0.3 with new random 'trained' weights per round, output layer not pruned (prune = T:T:F, as
    inputs/basic.ini)."""
    with on_path(folder / "src"):
        import Utils as sf_utils  # noqa: E402

    data = SimpleNamespace(c=2, h=6, w=6, ncl=5)
    arch = sf_utils.archparse("c3,4:f10:x", "T:T:F", data)
    np.random.seed(5)
    ratios = np.zeros(2)
    mask = sf_utils.make_mask(arch, ratios)
    rng = np.random.RandomState(6)
    arrays: dict[str, np.ndarray] = {}
    for r in range(1, IMP_ROUNDS + 1):
        trained = [[rng.normal(0, 1, (3, 3, 2, 4)).astype(np.float32)]]
        for fan_in, fan_out in ((64, 10), (10, 5)):
            trained.append([rng.normal(0, 1, (fan_in, fan_out)).astype(np.float32), rng.normal(0, 0.3, fan_out).astype(np.float32),
                            np.ones(fan_in, np.float32), np.zeros(fan_in, np.float32)])
        ratios += 0.3 * (1 - ratios)
        mask = sf_utils.get_mask(trained, arch, ratios, mask)
        arrays.update({f"round{r}_conv_weight": trained[0][0], f"round{r}_fc_weight": trained[1][0], f"round{r}_fc_bias": trained[1][1],
                       f"round{r}_out_weight": trained[2][0], f"round{r}_out_bias": trained[2][1],
                       f"round{r}_conv_mask": mask[0][0].astype(bool), f"round{r}_fc_weight_mask": mask[1][0].astype(bool),
                       f"round{r}_fc_bias_mask": mask[1][1].astype(bool)})
    meta = provenance("SiftingFeatures", commit, ["src/Utils.py (archparse, make_mask, get_mask)"],
                      settings={"arch": "c3,4:f10:x", "prune": "T:T:F", "input": [2, 6, 6], "classes": 5, "prune_ratio": 0.3,
                                "rounds": IMP_ROUNDS, "layout": "TensorFlow: conv (kh, kw, in, out), dense (in, out)"},
                      ported=None, versions=versions())
    write("pruning", arrays, meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="folder holding the four official checkouts")
    parser.add_argument("--tf-python", required=True, help="a Python interpreter with TensorFlow (LaPerm)")
    parser.add_argument("--commit", action="append", default=[], metavar="NAME=SHA", help="commit of a checkout that is not a git work tree")
    parser.add_argument("--only", nargs="*", default=None, help="methods to write (default: all)")
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.commit)
    folders = {name: args.official / name for name in REPOSITORIES}
    commits = {name: commit_of(folder, given, name) for name, folder in folders.items()}
    jobs = {
        "edge_popup": lambda: edge_popup(folders["hidden-networks"], commits["hidden-networks"]),
        "supermask_bernoulli": lambda: supermask_bernoulli(folders["hidden-networks"], commits["hidden-networks"]),
        "slot_machines": lambda: slot_machines(folders["slot-machines"], commits["slot-machines"]),
        "laperm": lambda: laperm(folders["Train-by-Reconnect"], commits["Train-by-Reconnect"], args.tf_python),
        "pruning": lambda: pruning(folders["SiftingFeatures"], commits["SiftingFeatures"]),
    }
    for name, job in jobs.items():
        if args.only is None or name in args.only:
            job()


if __name__ == "__main__":
    main()
