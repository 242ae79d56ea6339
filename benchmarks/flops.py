"""Analytic FLOP count of one objective evaluation (forward + backward to the pixels) of VGG-19."""

from __future__ import annotations

import impasto
from impasto.imageio import canvas_margin
from impasto.vgg import LAYER_NAMES


def step_flops(content_layers: tuple[str, ...], style_layers: tuple[str, ...], height: int, width: int) -> float:
    """FLOPs of one objective evaluation: the convolutions plus the Gram matrices of the style layers.

    A Gram matrix F·Fᵀ of F (C, M) costs 2·C²·M forward and, with impasto's one-product backward
    (``losses._GramProduct``), 2·C²·M more. Figures measured before version 0.5.0 counted autograd's
    two-product backward (6·C²·M in all): 2.2 % more FLOPs per step, so GFLOP/s 2.2 % higher.
    """
    flops = conv_flops((*content_layers, *style_layers), height, width)
    for name in style_layers:
        channels, positions = layer_shape(name, height, width)
        flops += 4 * channels**2 * positions
    return flops


def canvas_step_flops(config: impasto.Config, height: int, width: int) -> float:
    """FLOPs of one step of a run with ``config`` on a picture of ``height`` × ``width``: the network
    sees the canvas, the picture and its margin (``canvas_margin``) on every side."""
    margin = canvas_margin(config.margin, height, width)
    return step_flops((config.content_layer,), config.style_layers, height + 2 * margin, width + 2 * margin)


def layer_shape(name: str, height: int, width: int) -> tuple[int, int]:
    """(channels, positions) of a relu/conv layer's output."""
    block = int(name[4])
    scale = 2 ** (block - 1)
    return {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[block], (height // scale) * (width // scale)


def conv_flops(layers: tuple[str, ...], height: int, width: int) -> float:
    """FLOPs of the convolutions up to the deepest of ``layers``, forward and backward.

    The weights are frozen, so the backward pass computes only the gradient of each convolution's
    input: as many multiply-adds as the forward pass (the first convolution's input gradient is
    needed too, since the pixels are the parameter). A multiply-add counts as 2 FLOPs.
    """
    deepest = max(LAYER_NAMES.index(name) for name in layers)
    flops, channels, h, w = 0.0, 3, height, width
    widths = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
    for name in LAYER_NAMES[: deepest + 1]:
        if name.startswith("conv"):
            out = widths[int(name[4])]
            flops += 2 * channels * out * 9 * h * w
            channels = out
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
    return 2 * flops  # forward + input-gradient backward
