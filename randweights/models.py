"""Plain torch models used across the chapters. Methods transform these; they never need their own copies.

Every builder has the signature ``(input_shape, num_classes, width, bias, affine_bn) -> nn.Module``.
``width`` multiplies every hidden width and channel count (int truncation, at least 1); the output layer keeps
``num_classes`` units. Edge-Popup's nets (Conv-2/4/6/8, LeNet-300-100) have no normalization at all.

The small vision transformers ``vit-p4-d{1,2,4,6}`` (:class:`PatchViT`; no paper of the five has one) cut the
image into 4x4 patches (MNIST 28x28: 7x7 = 49 patches, CIFAR-10 32x32: 8x8 = 64), embed them with a Conv2d,
prepend a class token and add a positional embedding, then run ``d`` pre-norm encoder blocks (LayerNorm,
``nn.MultiheadAttention`` with 4 heads, LayerNorm, Linear-GELU-Linear MLP of twice the width) and classify the
class token with a Linear head. Width 1 is 64 features. ``affine_bn`` gives the LayerNorms a learnable scale and
shift (default: none, as the papers' non-affine BatchNorm).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from .config import ModelConfig, register_arch
from .errors import ConfigError


def _w(n: int, width: float) -> int:
    return max(1, int(n * width))


def mlp(input_shape, num_classes: int, hidden: tuple[int, ...], width=1.0, bias=False) -> nn.Sequential:
    """Flatten, then Linear-ReLU blocks, then a Linear classifier."""
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = 1
    for d in input_shape:
        fan_in *= d
    for h in hidden:
        layers += [nn.Linear(fan_in, _w(h, width), bias=bias), nn.ReLU()]
        fan_in = _w(h, width)
    layers.append(nn.Linear(fan_in, num_classes, bias=bias))
    return nn.Sequential(*layers)


def lenet_300_100(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> nn.Sequential:
    """LeNet-300-100: 784-300-100-10 (Edge-Popup's "FC" net)."""
    return mlp(input_shape, num_classes, (300, 100), width, bias)


def conv_net(depth: int) -> Callable[..., nn.Sequential]:
    """Conv-2/4/6/8 of Frankle & Carbin as used by Edge-Popup: pairs of 3x3 convs (64, 128, 256, 512 channels,
    padding 1) each followed by 2x2 max-pooling, then FC 256-256-num_classes."""
    if depth not in (2, 4, 6, 8):
        raise ValueError(f"depth: got {depth}, allowed: 2, 4, 6, 8")

    def build(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> nn.Sequential:
        channels, size, _ = input_shape
        layers: list[nn.Module] = []
        for stage in range(depth // 2):
            out = _w(64 * 2**stage, width)
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=bias), nn.ReLU()]
            layers += [nn.Conv2d(out, out, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2)]
            channels, size = out, size // 2
        layers.append(nn.Flatten())
        head = mlp((channels, size, size), num_classes, (256, 256), width, bias)
        return nn.Sequential(*layers, *list(head)[1:])

    build.__doc__ = f"Conv-{depth} (see conv_net)."
    return build


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, affine_bn: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out, affine=affine_bn)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, affine=affine_bn)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out, affine=affine_bn))

    def forward(self, x):
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


def resnet18(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> nn.Sequential:
    """CIFAR ResNet-18: 3x3 stem, four stages of two BasicBlocks (64..512 channels), global average pooling,
    linear classifier. BatchNorm is non-affine unless ``affine_bn`` (Edge-Popup's cResNet18)."""
    c = [_w(64 * 2**i, width) for i in range(4)]
    layers: list[nn.Module] = [nn.Conv2d(input_shape[0], c[0], 3, 1, 1, bias=False), nn.BatchNorm2d(c[0], affine=affine_bn), nn.ReLU()]
    c_in = c[0]
    for stage, c_out in enumerate(c):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(c_in, c_out, stride, affine_bn))
            c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes, bias=bias)]
    return nn.Sequential(*layers)


def fcn_net(hidden: tuple[int, ...] = (1024, 1024, 1024)) -> Callable[..., nn.Sequential]:
    """The FCN of Pellegrini & Biroli (2021), Sec. 2: every block is BatchNorm1d on the block INPUT, then an
    affine map, then ReLU; the output block is BatchNorm1d then Linear to the classes. ``f1024:f1024:f1024:x``
    is the default; ``width`` scales the hidden sizes. The paper's run has biases and learnable BN scale and
    shift: pass ``bias=True, affine_bn=True``. Masks are attached by :mod:`randweights.methods.pruning`."""

    def build(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> nn.Sequential:
        fan_in = 1
        for d in input_shape:
            fan_in *= d
        layers: list[nn.Module] = [nn.Flatten()]
        for h in hidden:
            layers += [nn.BatchNorm1d(fan_in, affine=affine_bn), nn.Linear(fan_in, _w(h, width), bias=bias), nn.ReLU()]
            fan_in = _w(h, width)
        layers += [nn.BatchNorm1d(fan_in, affine=affine_bn), nn.Linear(fan_in, num_classes, bias=bias)]
        return nn.Sequential(*layers)

    build.__doc__ = f"FCN {'-'.join(map(str, hidden))} with BatchNorm on each block input (see fcn_net)."
    return build


# ---------------------------------------------------------------------------------------------- LaPerm's nets
def f1_net(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> nn.Sequential:
    """LaPerm's F1 (Qiu & Suda 2020, Sec. 5.5): Flatten -> Linear(784, 10), a logistic regression."""
    return mlp(input_shape, num_classes, (), width, bias)


def f2_net(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> nn.Sequential:
    """LaPerm's F2 (Sec. 5.5): 784-128-64-10 with ReLU."""
    return mlp(input_shape, num_classes, (128, 64), width, bias)


def laperm_conv7(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> nn.Sequential:
    """LaPerm's Conv7 for MNIST (Sec. 5.1): 3x3/32, 3x3/32, 5x5/32 stride 2, 3x3/64, 3x3/64, 5x5/64 stride 2,
    4x4/128 ('valid' unless strided), dense; ReLU, dropout 0.4 after each strided conv and before the dense."""
    import torch

    a, b, d = _w(32, width), _w(64, width), _w(128, width)
    convs = [nn.Conv2d(input_shape[0], a, 3, bias=bias), nn.ReLU(), nn.Conv2d(a, a, 3, bias=bias), nn.ReLU(),
             nn.Conv2d(a, a, 5, 2, 2, bias=bias), nn.ReLU(), nn.Dropout(0.4),
             nn.Conv2d(a, b, 3, bias=bias), nn.ReLU(), nn.Conv2d(b, b, 3, bias=bias), nn.ReLU(),
             nn.Conv2d(b, b, 5, 2, 2, bias=bias), nn.ReLU(), nn.Dropout(0.4),
             nn.Conv2d(b, d, 4, bias=bias), nn.ReLU(), nn.Flatten()]
    with torch.no_grad():
        fan_in = nn.Sequential(*convs)(torch.zeros(1, *input_shape)).shape[1]
    return nn.Sequential(*convs, nn.Dropout(0.4), nn.Linear(fan_in, num_classes, bias=bias))


def laperm_vgg(stages: tuple[tuple[int, ...], ...], dense: tuple[int, ...], dropout_first: tuple[bool, ...] = (),
               pool_dropout: float = 0.0) -> Callable[..., nn.Sequential]:
    """LaPerm's CIFAR nets Conv2/4/13 (Sec. 5.2), layer for layer as the official notebooks build them: stages of
    3x3 'same' convs, each conv -> ReLU -> BatchNorm (dropout 0.3 in the first stage, 0.4 later, between the
    convs of a stage), 2x2 max-pooling after each stage (then dropout ``pool_dropout`` after the last one: Conv13's
    0.5); then dense blocks dense -> ReLU -> dropout 0.5 -> BatchNorm where ``dropout_first`` says so (Conv2/4's
    first block), else dense -> ReLU -> BatchNorm -> dropout 0.5; and the classifier."""

    def build(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> nn.Sequential:
        channels, size, _ = input_shape
        layers: list[nn.Module] = []
        for s, stage in enumerate(stages):
            for i, out in enumerate(stage):
                out = _w(out, width)
                layers += [nn.Conv2d(channels, out, 3, padding=1, bias=bias), nn.ReLU(), nn.BatchNorm2d(out, affine=affine_bn)]
                if i < len(stage) - 1:
                    layers.append(nn.Dropout(0.3 if s == 0 else 0.4))
                channels = out
            layers.append(nn.MaxPool2d(2))
            size //= 2
        if pool_dropout:
            layers.append(nn.Dropout(pool_dropout))
        fan_in = channels * size * size
        layers.append(nn.Flatten())
        for b, h in enumerate(dense):
            h = _w(h, width)
            norm, drop = nn.BatchNorm1d(h, affine=affine_bn), nn.Dropout(0.5)
            first = dropout_first[b] if b < len(dropout_first) else False
            layers += [nn.Linear(fan_in, h, bias=bias), nn.ReLU(), *((drop, norm) if first else (norm, drop))]
            fan_in = h
        layers.append(nn.Linear(fan_in, num_classes, bias=bias))
        return nn.Sequential(*layers)

    return build


class KerasBlock(nn.Module):
    """Block of the Keras-examples CIFAR ResNet v1: conv-BN-ReLU-conv-BN plus the input (through a 1x1 strided
    convolution without BN when the shape changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, bias: bool, affine_bn: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(c_out, affine=affine_bn)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=bias)
        self.bn2 = nn.BatchNorm2d(c_out, affine=affine_bn)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=bias)

    def forward(self, x):
        out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
        return (out + self.shortcut(x)).relu()


def resnet_cifar(n: int) -> Callable[..., nn.Sequential]:
    """CIFAR ResNet v1 of depth 6n+2 (He et al. 2016, Sec. 4.2; LaPerm's "ResNet50" is n = 8): 16/32/64
    channels, n blocks per stage, global average pooling, dense classifier."""

    def build(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> nn.Sequential:
        c = [_w(16 * 2**i, width) for i in range(3)]
        layers: list[nn.Module] = [nn.Conv2d(input_shape[0], c[0], 3, 1, 1, bias=bias), nn.BatchNorm2d(c[0], affine=affine_bn), nn.ReLU()]
        c_in = c[0]
        for stage, c_out in enumerate(c):
            for block in range(n):
                layers.append(KerasBlock(c_in, c_out, 2 if stage > 0 and block == 0 else 1, bias, affine_bn))
                c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes, bias=bias)]
        return nn.Sequential(*layers)

    build.__doc__ = f"CIFAR ResNet-{6 * n + 2} (see resnet_cifar)."
    return build


def mlp_256_256(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> nn.Sequential:
    """784-256-256-10 ReLU MLP (empirical-size chapter, figure C7: pieces along segments between images)."""
    return mlp(input_shape, num_classes, (256, 256), width, bias)


def slot_conv_net(depth: int) -> Callable[..., nn.Sequential]:
    """Conv-2/4/6 of Slot Machines (Aladago & Torresani 2021, Table 1; official code): like :func:`conv_net`
    but the first four convs are unpadded (Conv-2/4/6 flatten to 64x14x14 / 128x5x5 / 256x2x2 on CIFAR) and the
    classifier is Dropout(0.5)-FC256-ReLU-Dropout(0.5)-FC256-ReLU-FC."""
    if depth not in (2, 4, 6):
        raise ValueError(f"depth: got {depth}, allowed: 2, 4, 6")

    def build(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> nn.Sequential:
        channels, size, _ = input_shape
        layers: list[nn.Module] = []
        for stage in range(depth // 2):
            out, pad = _w(64 * 2**stage, width), 0 if stage < 2 else 1
            for _ in range(2):
                layers += [nn.Conv2d(channels, out, 3, padding=pad, bias=bias), nn.ReLU()]
                channels, size = out, size - 2 + 2 * pad
            layers.append(nn.MaxPool2d(2))
            size //= 2
        fc, fan_in = _w(256, width), channels * size * size
        layers += [nn.Flatten(), nn.Dropout(0.5), nn.Linear(fan_in, fc, bias=bias), nn.ReLU(), nn.Dropout(0.5)]
        layers += [nn.Linear(fc, fc, bias=bias), nn.ReLU(), nn.Linear(fc, num_classes, bias=bias)]
        return nn.Sequential(*layers)

    build.__doc__ = f"Slot Machines' Conv-{depth} (see slot_conv_net)."
    return build


def vgg19(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> nn.Sequential:
    """CIFAR VGG-19 of Slot Machines (Table 1): 2x64, M, 2x128, M, 4x256, M, 4x512, M, 4x512 3x3 convs (padding
    1), each followed by BatchNorm (non-affine unless ``affine_bn``) and ReLU; 2x2 average pooling; FC to classes."""
    plan: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
    layers: list[nn.Module] = []
    channels = input_shape[0]
    for item in plan:
        if isinstance(item, str):  # "M"
            layers.append(nn.MaxPool2d(2))
            continue
        out = _w(item, width)
        layers += [nn.Conv2d(channels, out, 3, padding=1, bias=bias), nn.BatchNorm2d(out, affine=affine_bn), nn.ReLU()]
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes, bias=bias)]
    return nn.Sequential(*layers)


class ViTBlock(nn.Module):
    """Pre-norm transformer encoder block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, hidden: int, bias: bool, affine: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.attn = nn.MultiheadAttention(dim, heads, bias=bias, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden, bias=bias), nn.GELU(), nn.Linear(hidden, dim, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class PatchViT(nn.Module):
    """A small vision transformer (see the module docstring). The class token starts at zero (as torchvision's
    ViT) and the positional embedding is drawn N(0, 1): as loud as the patch tokens, so that a frozen random
    positional embedding still tells the positions apart (torchvision's N(0, 0.02) is meant to be learned)."""

    def __init__(self, input_shape, num_classes: int, depth: int, width: float = 1.0, bias: bool = False,
                 affine: bool = False, patch: int = 4, heads: int = 4):
        super().__init__()
        c, h, w = input_shape
        if h % patch or w % patch:
            raise ConfigError("input_shape", tuple(input_shape), f"images whose sides are multiples of the patch size {patch}")
        dim = heads * _w(16, width)
        self.patch = nn.Conv2d(c, dim, patch, patch, bias=bias)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, (h // patch) * (w // patch) + 1, dim))
        self.blocks = nn.Sequential(*[ViTBlock(dim, heads, 2 * dim, bias, affine) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, elementwise_affine=affine)
        self.head = nn.Linear(dim, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with parametrize.cached():  # an attention reads in_proj_weight 3 times: a method's mask is computed once
            tokens = self.patch(x).flatten(2).transpose(1, 2)
            tokens = torch.cat([self.class_token.expand(len(x), -1, -1), tokens], dim=1) + self.pos_embedding
            return self.head(self.norm(self.blocks(tokens))[:, 0])


def vit(depth: int) -> Callable[..., PatchViT]:
    def build(input_shape, num_classes, width=1.0, bias=False, affine_bn=False) -> PatchViT:
        return PatchViT(input_shape, num_classes, depth, width, bias, affine_bn)

    return build


BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "fcn": fcn_net((1024, 1024, 1024)),
    "lenet-300-100": lenet_300_100,
    "mlp-256-256": mlp_256_256,  # empirical size (Chen et al. 2016)
    "conv2": conv_net(2),
    "conv4": conv_net(4),
    "conv6": conv_net(6),
    "conv8": conv_net(8),
    "resnet18": resnet18,
    "f1": f1_net,  # LaPerm (Qiu & Suda 2020) from here on
    "f2": f2_net,
    "laperm-conv7": laperm_conv7,
    "laperm-conv2": laperm_vgg(((64, 64),), (256, 256), dropout_first=(True, False)),
    "laperm-conv4": laperm_vgg(((64, 64), (128, 128)), (256, 256), dropout_first=(True, False)),
    "laperm-conv13": laperm_vgg(((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3), (512,), pool_dropout=0.5),
    "resnet20-cifar": resnet_cifar(3),
    "resnet50-cifar": resnet_cifar(8),
    "slot-conv2": slot_conv_net(2),  # Slot Machines (Aladago & Torresani 2021)
    "slot-conv4": slot_conv_net(4),
    "slot-conv6": slot_conv_net(6),
    "vgg19": vgg19,
    "vit-p4-d1": vit(1),  # small vision transformers (beyond the papers)
    "vit-p4-d2": vit(2),
    "vit-p4-d4": vit(4),
    "vit-p4-d6": vit(6),
}


for _name, _builder in BUILDERS.items():
    register_arch(_name, _builder)
ARCHS = tuple(BUILDERS)


MAX_PARAMETERS = 2**31  # 8 GiB in fp32 for the weights alone: far above every preset (the largest: ~140 M)


def parameter_count(arch: str, input_shape, num_classes: int, width: float = 1.0, bias: bool = False,
                    affine_bn: bool = False) -> int:
    """Parameters of the network :func:`build` would make, counted on the ``meta`` device (nothing allocated)."""
    if arch not in BUILDERS:
        raise ConfigError("arch", arch, "one of " + ", ".join(BUILDERS))
    try:
        with torch.device("meta"):
            net = BUILDERS[arch](tuple(input_shape), num_classes, width=width, bias=bias, affine_bn=affine_bn)
    except (RuntimeError, OverflowError, ValueError, TypeError, MemoryError) as err:
        raise ConfigError("width", width, f"a width {arch} can be built with ({type(err).__name__})") from None
    return sum(p.numel() for p in net.parameters())


def check_size(arch: str, input_shape, num_classes: int, width: float = 1.0, bias: bool = False,
               affine_bn: bool = False) -> int:
    """A ConfigError naming ``width`` when the network would hold more than :data:`MAX_PARAMETERS` parameters
    (counted before anything is allocated); else its parameter count (-1: width <= 1, not counted)."""
    if arch not in BUILDERS:
        raise ConfigError("arch", arch, "one of " + ", ".join(BUILDERS))
    if isinstance(width, bool) or not isinstance(width, numbers.Real) or not (math.isfinite(width) and width > 0):
        raise ConfigError("width", width, "a finite number > 0")
    if not width > 1:  # every architecture at width <= 1 is far below the limit (a test checks): no need to count
        return -1
    count = parameter_count(arch, input_shape, num_classes, width, bias, affine_bn)
    if count > MAX_PARAMETERS:
        raise ConfigError("width", width, f"a width giving {arch} at most {MAX_PARAMETERS} parameters "
                          f"(this one gives {count:.3g}, {4 * count / 2**30:.0f} GiB in fp32)")
    return count


def build(arch: str, input_shape, num_classes: int, width: float = 1.0, bias: bool = False, affine_bn: bool = False) -> nn.Module:
    """The network ``arch`` (see the module's docstring); one too large to build is refused first
    (:func:`check_size`)."""
    check_size(arch, input_shape, num_classes, width, bias, affine_bn)
    return BUILDERS[arch](tuple(input_shape), num_classes, width=width, bias=bias, affine_bn=affine_bn)


def build_for(model: ModelConfig, input_shape, num_classes: int, bias: bool | None = None) -> nn.Module:
    """The plain model a :class:`~randweights.config.ModelConfig` describes, for inputs of ``input_shape`` and
    ``num_classes`` classes (``bias`` overrides the config's where a method needs biases), its BatchNorm layers
    set as the config says (:func:`set_batchnorm`)."""
    net = build(model.arch, input_shape, num_classes, model.width, model.bias if bias is None else bias, model.affine_bn)
    set_batchnorm(net, model.bn_momentum, model.bn_first_batch)
    return net


def set_batchnorm(net: nn.Module, momentum: float = 0.1, first_batch: bool = False) -> nn.Module:
    """Give every BatchNorm layer of ``net`` the running-statistics ``momentum`` (PyTorch's convention:
    ``running = (1 - momentum) * running + momentum * batch``). ``first_batch``: the first training batch after
    the net is built or :func:`rearm_first_batch` is called (IMP's rewind does, with the reset of the running
    statistics) sets the running statistics outright (momentum 1) if they are fresh (``num_batches_tracked`` 0,
    not a restored checkpoint's): the FCN paper's code seeds its moving averages with the first batch of every
    round."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum
            setattr(m, "randweights_bn_momentum", momentum)  # plain attributes (setattr: not a Module field for mypy)
            if first_batch and not hasattr(m, "randweights_first_batch"):
                m.register_forward_pre_hook(_first_batch_momentum)
                setattr(m, "randweights_first_batch", True)  # armed: the next training batch checks
    return net


def rearm_first_batch(net: nn.Module) -> None:
    """After ``reset_running_stats``: the next training batch of every layer set up by :func:`set_batchnorm` with
    ``first_batch`` seeds its running statistics again."""
    for m in net.modules():
        if hasattr(m, "randweights_first_batch"):
            setattr(m, "randweights_first_batch", True)


def _first_batch_momentum(module: nn.Module, inputs) -> None:
    """Forward pre-hook of :func:`set_batchnorm`: momentum 1 for the first training batch of fresh statistics,
    the configured momentum after it (the count is read once per arming, not every step)."""
    if not module.training:
        return
    tracked = getattr(module, "num_batches_tracked")
    fresh = getattr(module, "randweights_first_batch") and module.track_running_stats and int(tracked) == 0
    setattr(module, "randweights_first_batch", False)
    setattr(module, "momentum", 1.0 if fresh else getattr(module, "randweights_bn_momentum"))


def count_weights(model: nn.Module) -> int:
    """Weights of Linear and Conv2d layers (biases excluded), the count the papers report, and of a
    transformer's weight matrices: Embedding weights and attention input projections."""
    total = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)))
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention):
            total += sum(t.numel() for n in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")
                         if isinstance(t := getattr(m, n, None), torch.Tensor))
    return total
