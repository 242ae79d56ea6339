"""Light finishing of a result: pure functions of an image tensor (3, H, W) in [0, 1]."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from .errors import ConfigError

# How different two colours (Euclidean distance in RGB, pixels in 0..1) must be before the filter
# stops mixing them: small enough that strokes and edges survive, large enough to average noise.
RANGE_SIGMA = 0.1
NEIGHBOURS = [(dy, dx) for dy, dx in itertools.product((-1, 0, 1), repeat=2) if dy or dx]


def denoise(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Remove fine pixel noise with a bilateral filter: a Gaussian blur of ``sigma`` pixels that only
    averages neighbours of similar colour, so edges stay sharp. ``sigma`` 0 returns a copy."""
    if sigma < 0:
        raise ConfigError(f"denoise needs sigma >= 0, not {sigma}")
    if sigma == 0:
        return image.clone()
    radius = max(1, math.ceil(2 * sigma))
    padded = _padded(image, radius)
    total = torch.zeros_like(image)
    weights = torch.zeros_like(image[0])  # (H, W)
    # One shifted copy at a time: memory stays at a few images whatever the radius.
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            neighbour = _shifted(padded, dy, dx, radius)
            distance2 = (neighbour - image).square().sum(0)  # (H, W)
            weight = math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)) * torch.exp(
                -distance2 / (2 * RANGE_SIGMA * RANGE_SIGMA))
            total += weight * neighbour
            weights += weight
    return (total / weights).clamp_(0.0, 1.0)  # weights >= the centre's 1, never zero


def lone_pixels(image: torch.Tensor, levels: float) -> torch.Tensor:
    """(H, W) bool: the pixels of ``image`` (3, H, W) more than ``levels`` grey levels (of 255) off
    all 8 neighbours in some channel: coloured specks. Those on the border are never lone."""
    grey_levels = image * 255  # before the differences, so an 8-bit picture's come out whole numbers
    padded = _padded(grey_levels)
    nearest = torch.full_like(grey_levels, math.inf)
    for dy, dx in NEIGHBOURS:  # one difference at a time: five pictures' memory (0.5 GB at 4K)
        torch.minimum(nearest, (grey_levels - _shifted(padded, dy, dx)).abs_(), out=nearest)
    return (nearest > levels).any(0)


def despeckle(image: torch.Tensor, levels: float) -> torch.Tensor:
    """``image`` (3, H, W) with its lone pixels (``lone_pixels``) replaced by their 8 neighbours'
    median, channel by channel; every other pixel as it was. ``levels`` 0 returns a copy."""
    if levels < 0:
        raise ConfigError(f"despeckle needs levels >= 0, not {levels}")
    image = image.clone()
    if levels == 0:
        return image
    rows, columns = lone_pixels(image, levels).nonzero(as_tuple=True)
    padded = _padded(image)
    neighbours = torch.stack([padded[:, rows + 1 + dy, columns + 1 + dx] for dy, dx in NEIGHBOURS])  # (8, 3, n)
    image[:, rows, columns] = neighbours.median(0).values
    return image


def _padded(image: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """(3, H + 2r, W + 2r): the border pixels repeated ``radius`` times around."""
    return F.pad(image[None], (radius,) * 4, mode="replicate")[0]


def _shifted(padded: torch.Tensor, dy: int, dx: int, radius: int = 1) -> torch.Tensor:
    """Each pixel's neighbour at (dy, dx) (at most ``radius`` away), from ``_padded(image, radius)``."""
    return padded[:, radius + dy:padded.shape[1] - radius + dy, radius + dx:padded.shape[2] - radius + dx]
