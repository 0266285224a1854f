"""Slot Machines (Aladago & Torresani, 2021): pick one of K fixed random values for every connection.

Every connection (i, j) of a Linear / Conv layer owns K frozen random *candidate* values W_ij1..W_ijK and K
trainable *quality scores* s_ij1..s_ijK (Sec. 3). The forward pass uses one candidate per connection:

* greedy selection (GS): k* = argmax_k s_ijk;
* probabilistic sampling (PS): k* ~ Categorical(softmax(s_ij.)), drawn anew at every training step (Gumbel-max:
  argmax_k (s_ijk + G_ijk) with G = -log(-log U), U ~ U(0, 1), which is exactly a softmax sample).

Gradients reach the scores by the paper's straight-through rule (Sec. 3): the selection is treated as
identity on the one-hot selector, so ``dL/ds_ijk = dL/dw_ij * W_ijk`` for every candidate, for GS and PS alike
(PS does not go through the softmax Jacobian, as in the official code). Evaluation always uses the greedy
(argmax) selection, also for PS, as the authors' checkpoint export does.

Cost per connection. Candidates are stored as integer codes on a symmetric grid, ``W = code * bound / L``
(``L = 127`` for 8-bit codes, ``32767`` for 16-bit), i.e. the candidate distribution is the uniform distribution
on 255 (or 65535) evenly spaced values in [-bound, bound]; the stored codes ARE the candidates, nothing is
rounded later. With the default 8-bit codes a connection costs ``K`` bytes of candidates + ``4K`` bytes of fp32
scores, and during SGD training ``4K`` more for the score gradient and ``4K`` for momentum: ``13K`` bytes against
``12`` for a dense weight (value, gradient, momentum), within the ``(K + 1)``-fold budget up to K = 12 (16-bit
codes: ``14K`` bytes, up to K = 6). The layer's own weight is replaced by a 0-size stub. No K-fold
one-hot float tensor is ever built: the forward gathers the chosen code by index (``n`` values), the backward
writes the ``K x n`` score gradient directly; greedy selection uses ``K x n`` one-byte temporaries and PS a
``K x n`` float noise tensor. Candidates and scores are stored slot-axis first, shape ``(K, *weight.shape)``, so
every per-slot slice is contiguous.

Initialization (Sec. 4 and the official code). Candidates: U(-b, b) with ``b = sqrt(2 / (fan_in + fan_out))``
("Glorot uniform bounded by the Glorot-normal std", the paper's wording, ``candidate_init="paper"``) or the
standard Glorot-uniform bound ``sqrt(6 / (fan_in + fan_out))`` of the official code (``"code"``). Scores:
U(0, lambda * b) with lambda = 1 for conv and 0.1 for fully connected layers (paper, ``score_init="paper"``) or
lambda = 1 everywhere (code). The two candidate bounds differ by sqrt(3); greedy selection does not care about a
layer-wide scale, but the loss does.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..bits import index_bits, pack_uint, unpack_uint
from ..config import MethodConfig
from ..errors import ConfigError, check_choice, check_range
from . import transform
from .edge_popup import MASKABLE
from .registry import Codec, Method, Trainer, register

SELECTIONS = ("greedy", "probabilistic")
CANDIDATE_INITS = ("paper", "code")
SCORE_INITS = ("paper", "code")
CANDIDATE_BITS = (8, 16)
FINETUNE_FROM = ("separate", "same-run")
FINETUNE_SCHEDULES = ("cosine", "constant", "exponential")
_LEVELS = {8: (127, torch.int8), 16: (32767, torch.int16)}


@dataclass(frozen=True)
class SlotMachineConfig(MethodConfig):
    """Settings of a slot machine. Defaults follow the paper (Sec. 4, Table 1): K = 8, greedy selection."""

    name = "slot"
    num_slots: int = field(default=8, metadata={"flag": "slots", "help": "K: fixed random candidate values per connection"})  # K candidates per connection
    selection: str = field(default="greedy", metadata={"help": "how a connection picks its candidate: the highest score or a sample"})
    finetune_epochs: int = field(default=0, metadata={"help": "afterwards train the selected weights as a plain network for this many epochs (0: none)"})  # > 0: afterwards train the selected weights as a plain network for this many epochs
    finetune_lr: float = field(default=0.01, metadata={"help": "learning rate of the finetuning"})  # the official code's learned-weights lr, used for finetuning
    candidate_init: str = field(default="paper", metadata={"help": "candidate bound: sqrt(2/(fan_in+fan_out)) (paper) or sqrt(6/(fan_in+fan_out)) (code)"})  # bound sqrt(2/(fi+fo)) (paper) or sqrt(6/(fi+fo)) (code)
    score_init: str = field(default="paper", metadata={"help": "score init U(0, lambda*b): lambda 1 conv / 0.1 FC (paper) or 1 everywhere (code)"})  # U(0, lambda*b), lambda 1 conv / 0.1 FC (paper) or 1 everywhere (code)
    candidate_bits: int = field(default=8, metadata={"help": "bits per stored candidate code (8: 255 levels, 16: 65535 levels)"})  # storage of the candidate codes (8: 255 levels, 16: 65535 levels)
    # finetuning starts from an `epochs`-epoch run whose schedule ends there ("separate"), or from the epoch-`epochs`
    # state of the run planned for epochs + finetune_epochs ("same-run": the paper's and the code's checkpoints)
    finetune_from: str = field(default="separate", metadata={"help": "finetune from a separate run whose schedule ended (separate) or from the same run's state at that epoch (same-run)"})
    finetune_schedule: str | None = field(default=None, metadata={"help": "lr schedule of the finetuning: none (the run's, sgdr decaying once as cosine) or one of cosine, constant (the released code), exponential"})

    def __post_init__(self):
        check_range("num_slots", self.num_slots, low=1)
        check_choice("selection", self.selection, SELECTIONS)
        check_range("finetune_epochs", self.finetune_epochs, low=0)
        check_range("finetune_lr", self.finetune_lr, low=0, low_open=True)
        check_choice("candidate_init", self.candidate_init, CANDIDATE_INITS)
        check_choice("score_init", self.score_init, SCORE_INITS)
        check_choice("finetune_from", self.finetune_from, FINETUNE_FROM)
        if self.finetune_schedule is not None:
            check_choice("finetune_schedule", self.finetune_schedule, FINETUNE_SCHEDULES)
        if self.candidate_bits not in CANDIDATE_BITS:
            raise ConfigError("candidate_bits", self.candidate_bits, "8 or 16")
        if self.num_slots > _LEVELS[self.candidate_bits][0]:
            check_range("num_slots", self.num_slots, low=1, high=_LEVELS[self.candidate_bits][0])

    def default_lr(self, arch: str) -> float:
        """The paper's learning rates: GS 0.2 for K <= 8 and 0.1 above, PS 25 (Sec. 4)."""
        if self.selection == "probabilistic":
            return 25.0
        return 0.2 if self.num_slots <= 8 else 0.1


# ---------------------------------------------------------------------------------------------- selection
def greedy_index(scores: torch.Tensor) -> torch.Tensor:
    """GS: ``argmax_k s_kij`` over the leading slot axis (ties -> lowest k), kept as an axis of size 1 for
    ``gather``.

    Computed as ``K - max_k((s_k == max s) * (K - k))`` in uint8: on a CPU the value-only reductions are
    vectorized while ``argmax(0)`` / ``max(0).indices`` are not (about 2x / 10x slower for LeNet's first layer)."""
    k = scores.shape[0]
    if k > 255:
        return scores.max(0, keepdim=True).indices
    best = scores.amax(0, keepdim=True)
    weights = torch.arange(k, 0, -1, dtype=torch.uint8, device=scores.device).view(k, *([1] * (scores.dim() - 1)))
    rank = ((scores == best) * weights).amax(0, keepdim=True)
    return (k - rank.long())


def sample_index(scores: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """PS: one draw from ``softmax_k(s_kij)`` per connection by the Gumbel-max trick (no softmax, no reshaping):
    ``argmax_k (s_k - log(-log U_k))``."""
    noise = torch.rand(scores.shape, generator=generator, dtype=scores.dtype, device=scores.device)
    noise.log_().neg_().log_()
    return greedy_index(scores - noise)


class _SelectCandidate(torch.autograd.Function):
    """Forward: ``w = W[k*]`` by index. Backward: ``dL/ds_k = dL/dw * W_k`` for every k (straight through)."""

    @staticmethod
    def forward(ctx, scores, codes, index, scale):
        ctx.save_for_backward(codes)
        ctx.scale = scale
        return codes.gather(0, index).squeeze(0).to(scores.dtype).mul_(scale)

    @staticmethod
    def backward(ctx, grad_w):
        (codes,) = ctx.saved_tensors
        grad = codes.to(grad_w.dtype)
        grad.mul_(grad_w * ctx.scale)  # broadcast over the leading slot axis
        return grad, None, None, None


class SlotSelect(nn.Module):
    """Parametrization ``W -> candidates[k*(S)]``: K frozen candidates (integer codes, a buffer) and K
    trainable scores per entry of ``W``. The incoming ``W`` is ignored (the layer keeps only a 0-size stub)."""

    codes: torch.Tensor  # a buffer (int8 or int16 codes)

    def __init__(
        self,
        shape: torch.Size,
        fans: tuple[int, int],
        num_slots: int,
        selection: str = "greedy",
        candidate_init: str = "paper",
        score_init: str = "paper",
        candidate_bits: int = 8,
        is_conv: bool = False,
        generator: torch.Generator | None = None,
        bound: float | None = None,
    ):
        super().__init__()
        check_choice("selection", selection, SELECTIONS)
        levels, dtype = _LEVELS[candidate_bits]
        fan_in, fan_out = fans
        if bound is None:  # else: the caller's bound (candidate_init=None: the spread of the existing weights)
            bound = math.sqrt((2.0 if candidate_init == "paper" else 6.0) / (fan_in + fan_out))
        lam = 1.0 if (score_init == "code" or is_conv) else 0.1
        full = (num_slots, *shape)
        codes = torch.randint(-levels, levels + 1, full, generator=generator, dtype=torch.int32).to(dtype)
        self.register_buffer("codes", codes)
        self.scores = nn.Parameter(torch.rand(full, generator=generator).mul_(lam * bound))
        self.scale = bound / levels  # candidate value = code * scale
        self.bound = bound
        self.selection = selection
        self.track = False  # count per-step selection changes (for the exploration statistics)
        self.changes: float | torch.Tensor = 0.0
        self.steps = 0
        self._last: torch.Tensor | None = None
        self._cache: tuple[int, torch.Tensor] | None = None

    @property
    def num_slots(self) -> int:
        return self.codes.shape[0]

    def candidates(self) -> torch.Tensor:
        """All K candidate values per entry, shape ``(K, *weight.shape)`` (built on demand, never stored)."""
        return self.codes.to(self.scores.dtype) * self.scale

    def index(self, sample: bool = False) -> torch.Tensor:
        """Index of the selected candidate (leading axis of size 1): argmax, or a softmax sample if ``sample``."""
        with torch.no_grad():
            return sample_index(self.scores) if sample else greedy_index(self.scores)

    def selected(self) -> torch.Tensor:
        """The greedy (evaluation / export) weight, no gradient."""
        with torch.no_grad():
            return self.codes.gather(0, greedy_index(self.scores)).squeeze(0).to(self.scores.dtype) * self.scale

    def train(self, mode: bool = True) -> SlotSelect:
        """Switching mode (``model.eval()`` at the start of every evaluation) drops the cached selection: fused
        optimizers update scores in place without bumping their version counter."""
        self._cache = None
        return super().train(mode)

    def forward(self, _stub: torch.Tensor) -> torch.Tensor:
        if not self.training and not torch.is_grad_enabled():  # frozen scores: reuse the selection
            version = self.scores._version
            if self._cache is None or self._cache[0] != version:
                self._cache = (version, self.selected())
            return self._cache[1]
        index = self.index(sample=self.training and self.selection == "probabilistic")
        if self.track and self.training:
            self._count(index)
        return _SelectCandidate.apply(self.scores, self.codes, index, self.scale)

    def _count(self, index: torch.Tensor) -> None:
        small = index.to(torch.int16 if self.num_slots < 2**15 else torch.int32)
        if self._last is not None:
            self.changes = self.changes + (small != self._last).float().mean()  # a tensor: no device sync per step
            self.steps += 1
        self._last = small


# ---------------------------------------------------------------------------------------------- apply
def _fans(layer: nn.Module, parameter: str = "weight") -> tuple[int, int]:
    return nn.init._calculate_fan_in_and_fan_out(transform.tensor(layer, parameter))


def apply(
    model: nn.Module,
    num_slots: int = 8,
    selection: str = "greedy",
    candidate_init: str | None = "paper",
    score_init: str = "paper",
    candidate_bits: int = 8,
    generator: torch.Generator | None = None,
    include: transform.Selector = None,
    exclude: transform.Selector = None,
    bounds: list[float] | None = None,
    learn: transform.Selector = None,
) -> nn.Module:
    """Freeze every parameter and turn each selected weight matrix (Linear/Conv/Embedding weight, attention
    ``in_proj_weight``) into a slot machine (in place; returns ``model``). ``include`` / ``exclude``: module or
    layer names, globs or a predicate (default: every layer); ``learn``: parameters that stay trainable, as in
    :func:`randweights.methods.edge_popup.apply`.

    Biases and BatchNorm parameters (the papers' nets have none that learn) stay frozen. The layer's own weight
    is replaced by a 0-size stub so that it costs no memory; ``layer.weight`` yields the selected weights.
    ``candidate_init=None`` draws each layer's candidates around its EXISTING weights' scale: uniform on
    ``[-b, b]`` with ``b = sqrt(3) * std(W)`` (the same spread as the given weights; the given values themselves
    are not candidates). ``bounds`` overrides b per selected layer (how a stored slot machine is rebuilt)."""
    num_slots = SlotMachineConfig(num_slots=num_slots, selection=selection, candidate_init=candidate_init or "paper",
                                  score_init=score_init, candidate_bits=candidate_bits).num_slots  # the config's checks
    transform.check_untransformed(model)
    chosen = transform.select_tensors(model, MASKABLE, include, exclude)
    transform.require_layers(model, chosen, MASKABLE)
    if bounds is None and candidate_init is None:
        bounds = [math.sqrt(3.0) * float(transform.tensor(layer, p).detach().float().std()) for _, layer, p in chosen]
    if bounds is not None:
        try:
            bounds = [float(b) for b in bounds]
        except (TypeError, ValueError):
            raise ConfigError("bounds", bounds, "a list of numbers > 0, one per selected layer") from None
        if len(bounds) != len(chosen):
            raise ConfigError("bounds", len(bounds), f"one bound per selected layer ({len(chosen)})")
        bad = [b for b in bounds if not (math.isfinite(b) and b > 0)]
        if bad:
            raise ConfigError("bounds", bad[0], "finite bounds > 0, one per selected layer")
    learned = transform.freeze(model, learn)
    replay = transform.generator_record(generator)
    used = []
    with transform.drawing(generator) as g:
        for i, (_, layer, p) in enumerate(chosen):
            weight = transform.tensor(layer, p)
            shape, fans = weight.shape, _fans(layer, p)
            slot = SlotSelect(shape, fans, num_slots, selection, candidate_init or "paper", score_init, candidate_bits,
                              is_conv=weight.dim() > 2, generator=g, bound=None if bounds is None else bounds[i])
            slot.to(weight.device)
            used.append(slot.bound)
            setattr(layer, p, nn.Parameter(weight.new_empty(0), requires_grad=False))
            parametrize.register_parametrization(layer, p, slot, unsafe=True)
    settings = {"num_slots": num_slots, "selection": selection, "candidate_init": candidate_init, "score_init": score_init,
                "candidate_bits": candidate_bits, "bounds": used}
    transform.tag(model, "slot", [n for n, _, _ in chosen], frozen_weights=replay, **settings, **learned)
    return model


def slots(model: nn.Module) -> list[SlotSelect]:
    return [m for m in model.modules() if isinstance(m, SlotSelect)]


def slot_layers(model: nn.Module) -> list[tuple[str, nn.Module, SlotSelect]]:
    """``(layer name, module, parametrization)`` of every slot-machine tensor, in model order (the layer name as
    in :func:`randweights.methods.transform.tensor_id`)."""
    out = []
    for name, module in model.named_modules():
        for tensor in transform.tensor_names(module) if parametrize.is_parametrized(module) else ():
            if parametrize.is_parametrized(module, tensor):
                out += [(transform.tensor_id(name, module, tensor), module, p) for p in module.parametrizations[tensor]
                        if isinstance(p, SlotSelect)]
    return out


def scores(model: nn.Module) -> list[nn.Parameter]:
    return [s.scores for s in slots(model)]


def selections(model: nn.Module) -> list[torch.Tensor]:
    """Greedy index per connection of every layer (int tensors shaped like the weights)."""
    return [s.index().squeeze(0) for s in slots(model)]


def selected_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The selected network as a plain state dict: loads into the un-transformed model (``models.build``).

    Every slot layer contributes ``<layer>.weight`` (``.in_proj_weight``) = its greedy selection; everything
    else (biases, BatchNorm buffers) is copied. No score, code or parametrization key appears."""
    out: dict[str, torch.Tensor] = {}
    chosen = {transform.tensor_key(model, name): slot.selected() for name, _, slot in slot_layers(model)}
    for key, value in model.state_dict().items():
        if ".parametrizations." not in key:
            out[key] = value.detach().clone()
    for key, weight in chosen.items():
        out[key] = weight.clone()
    return out


def to_dense(model: nn.Module) -> nn.Module:
    """Replace every slot layer's weight by an ordinary trainable Parameter holding its greedy selection (the
    paper's "finetuned slot machines" start, Sec. 4.4) and make every parameter trainable. In place."""
    for name, layer, slot in slot_layers(model):
        weight = slot.selected().clone()
        tensor = transform.locate(model, name)[2]
        parametrize.remove_parametrizations(layer, tensor, leave_parametrized=False)
        setattr(layer, tensor, nn.Parameter(weight))
    for p in model.parameters():
        p.requires_grad_(True)
    transform.tag(model, "dense", [])  # plain trainable weights from now on
    return model


# ---------------------------------------------------------------------------------------------- statistics
def change_fraction(before: list[torch.Tensor], after: list[torch.Tensor]) -> float:
    """Fraction of all connections whose selected index differs between two snapshots."""
    changed = sum(int((a != b).sum()) for a, b in zip(before, after))
    total = sum(a.numel() for a in after)
    return changed / max(1, total)


def value_histograms(model: nn.Module, bins: int = 51) -> list[dict]:
    """Per layer: histogram of the selected values and of all candidates, in units of the layer's bound b (the
    paper's selected-weight distribution figure). Counted on the integer codes, with bins aligned to the grid
    (51 divides both 255 and 65535 levels), so every bin holds the same number of levels."""
    out = []
    for name, layer, slot in slot_layers(model):
        levels = _LEVELS[8 if slot.codes.dtype == torch.int8 else 16][0]
        lo, hi = -levels - 0.5, levels + 0.5
        chosen = slot.codes.gather(0, slot.index()).float()
        pool = slot.codes.float()
        edges = torch.linspace(lo, hi, bins + 1) / levels
        out.append({
            "layer": name,
            "shape": list(chosen.shape[1:]),
            "edges": edges.tolist(),
            "selected": torch.histc(chosen, bins, lo, hi).tolist(),
            "candidates": torch.histc(pool, bins, lo, hi).tolist(),
            "mean_abs_selected": float(chosen.abs().mean()) / levels,
            "mean_abs_candidates": float(pool.abs().mean()) / levels,
        })
    return out


def training_memory_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Bytes of training state: parameters, buffers, gradients and optimizer state (after at least one step)."""
    tensors = list(model.parameters()) + list(model.buffers())
    total = sum(t.numel() * t.element_size() for t in tensors)
    total += sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    if optimizer is not None:
        for st in optimizer.state.values():
            total += sum(v.numel() * v.element_size() for v in st.values() if torch.is_tensor(v))
    return total


# ---------------------------------------------------------------------------------------------- run
def make_optimizer(params, cfg, trainer: Trainer) -> torch.optim.Optimizer:
    """The trainer's optimizer (:func:`randweights.train.make_optimizer`), but SGD uses PyTorch's fused kernel
    where it exists: the same update (momentum, weight decay) in one pass over the K-fold score tensors instead of
    several, which is most of a slot machine's extra cost per step on a CPU."""
    if cfg.train.optimizer != "sgd":
        return trainer.make_optimizer(params, cfg)
    params = [p for p in params if p.requires_grad]
    kwargs = {"lr": cfg.lr, "momentum": cfg.train.momentum, "weight_decay": cfg.weight_decay}
    try:
        return torch.optim.SGD(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):  # fused SGD not available for this device / dtype
        return torch.optim.SGD(params, **kwargs)


def prepare(model: nn.Module, cfg) -> list[nn.Parameter]:
    m = cfg.method
    generator = torch.Generator().manual_seed(cfg.train.seed)
    apply(model, m.num_slots, m.selection, m.candidate_init, m.score_init, m.candidate_bits, generator, learn=transform.learn_of(model, cfg))
    return scores(model) + transform.learned(model)


def run(cfg, splits, device: torch.device, trainer: Trainer):
    """Train the scores; record the selected network's test accuracy and per-epoch selection changes; then,
    if ``finetune_epochs > 0``, train the selected weights as a plain network (``to_dense``) and record both.
    With the trainer's ``checkpoint`` both phases save every epoch (with the selection tracking, and during
    finetuning the score phase's results) and a killed run resumes in the phase it reached."""
    checkpoint = trainer.checkpoint
    model = trainer.build_model(cfg, splits)
    params = prepare(model, cfg)
    model.to(device)
    resumed_phase = checkpoint.resumed_phase if checkpoint is not None else None
    resumed = checkpoint.resumed_method_state if checkpoint is not None else None
    if resumed_phase != "finetune":
        metrics = _train_scores(model, params, cfg, splits, device, trainer, resumed)
    else:
        assert resumed is not None  # a run resumed in its finetune phase has its method state
        metrics = resumed["metrics"]
    if cfg.method.finetune_epochs > 0:
        to_dense(model)
        ft_cfg = cfg.replace(lr=cfg.method.finetune_lr)
        if cfg.method.finetune_schedule is not None:
            ft_cfg = ft_cfg.replace(schedule=cfg.method.finetune_schedule)
        elif cfg.train.schedule == "sgdr":  # the restarts belong to the score phase; finetuning decays once
            ft_cfg = ft_cfg.replace(schedule="cosine")
        optimizer = trainer.make_optimizer(model.parameters(), ft_cfg)
        if checkpoint is not None:
            checkpoint.method_state = lambda: {"metrics": metrics}
        metrics["finetune_history"] = trainer.fit(model, optimizer, ft_cfg, splits, device, epochs=cfg.method.finetune_epochs,
                                                  checkpoint=checkpoint, phase="finetune")
        metrics["finetuned_test_accuracy"] = trainer.evaluate(model, splits.test, device, precision=cfg.train.precision)["accuracy"]
    return model, metrics


def _train_scores(model, params, cfg, splits, device, trainer: Trainer, resumed) -> dict:
    checkpoint = trainer.checkpoint
    layers = slots(model)
    for s in layers:
        s.track = True
    previous = selections(model)  # at the end of the previous epoch
    if resumed is not None:  # also the last step's selections, for the first step-to-step comparison
        previous = [p.to(device) for p in resumed["previous"]]
        for s, last in zip(layers, resumed["last"], strict=True):
            s._last = None if last is None else last.to(device)
    if checkpoint is not None:
        checkpoint.method_state = lambda: {"previous": previous, "last": [s._last for s in layers]}
    optimizer = make_optimizer(params, cfg, trainer)

    def on_epoch(epoch: int, row: dict) -> None:
        nonlocal previous
        current = selections(model)
        row["selection_changed"] = change_fraction(previous, current)  # vs the end of the previous epoch
        row["step_swaps"] = float(sum(s.changes for s in layers)) / max(1, sum(s.steps for s in layers))
        for s in layers:
            s.changes, s.steps = 0.0, 0
        previous = current

    planned = cfg.train.epochs + cfg.method.finetune_epochs if cfg.method.finetune_from == "same-run" else None
    # with finetuning the switch epoch is fixed by design: the validation choice (select_epoch) is the finetuning's
    history = trainer.fit(model, optimizer, cfg, splits, device, on_epoch=on_epoch, checkpoint=checkpoint, phase="scores",
                          schedule_epochs=planned, select=cfg.method.finetune_epochs == 0)
    for s in layers:
        s.track, s._last = False, None
    selected = trainer.evaluate(model, splits.test, device, precision=cfg.train.precision)
    return {
        "history": history,
        "selected_test_accuracy": selected["accuracy"],
        "selected_test_loss": selected["loss"],
        "value_histograms": value_histograms(model),
        "selection_changed_per_epoch": [r["selection_changed"] for r in history],
        "step_swaps_per_epoch": [r["step_swaps"] for r in history],
    }


# ---------------------------------------------------------------------------------------------- compact form
def pack(model: nn.Module, **_) -> tuple[dict, dict, list[str]]:
    """For :mod:`randweights.compact`: each connection's chosen candidate in ``ceil(log2 K)`` bits."""
    tag = transform.require_tag(model)
    bits = index_bits(tag["num_slots"])
    arrays = {f"slot/{n}": pack_uint(transform.masker(model, n, SlotSelect).index().squeeze(0), bits) for n in tag["layers"]}
    return {"index_bits": bits}, arrays, [transform.tensor_key(model, n) for n in tag["layers"]]


def unpack(model: nn.Module, header: dict, arrays: dict) -> None:
    """Inverse of :func:`pack` on a plain model: the candidates are drawn again from the stored generator with
    the stored bounds, and every connection takes its stored choice."""
    s = header["settings"]
    scratch = copy.deepcopy(model)
    apply(scratch, s["num_slots"], s["selection"], s["candidate_init"], s["score_init"], s["candidate_bits"],
          transform.replay_generator(header["frozen_weights"]), include=header["layers"], bounds=s["bounds"])
    transform.check_drawn(header, drawn(scratch, header["layers"]))
    for name in header["layers"]:
        slot = transform.masker(scratch, name, SlotSelect)
        index = unpack_uint(arrays[f"slot/{name}"], s["index_bits"], slot.codes.shape[1:]).unsqueeze(0)
        weight = slot.codes.gather(0, index).squeeze(0).to(slot.scores.dtype) * slot.scale
        transform.set_tensor(model, transform.tensor_key(model, name), weight)


def drawn(model: nn.Module, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Every candidate value of each slot-machine layer (what its compact file draws again from the seed)."""
    names = transform.require_tag(model)["layers"] if names is None else names
    return {n: transform.masker(model, n, SlotSelect).candidates() for n in names}


METHOD = register(Method("slot", SlotMachineConfig, "Slot Machines", Codec(pack, unpack, drawn=drawn), run=run))
