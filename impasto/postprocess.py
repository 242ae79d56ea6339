"""Light finishing of a result: pure functions of an image tensor (3, H, W) in [0, 1]."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import ConfigError

# How different two colours (Euclidean distance in RGB, pixels in 0..1) must be before the filter
# stops mixing them: small enough that strokes and edges survive, large enough to average noise.
RANGE_SIGMA = 0.1


def denoise(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Remove fine pixel noise with a bilateral filter: a Gaussian blur of ``sigma`` pixels that only
    averages neighbours of similar colour, so edges stay sharp. ``sigma`` 0 returns a copy."""
    if sigma < 0:
        raise ConfigError(f"denoise needs sigma >= 0, not {sigma}")
    if sigma == 0:
        return image.clone()
    _, height, width = image.shape
    radius = max(1, math.ceil(2 * sigma))
    padded = F.pad(image[None], (radius,) * 4, mode="replicate")[0]  # (3, H + 2r, W + 2r)
    total = torch.zeros_like(image)
    weights = torch.zeros_like(image[0])  # (H, W)
    # One shifted copy at a time: memory stays at a few images whatever the radius.
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            neighbour = padded[:, radius + dy:radius + dy + height, radius + dx:radius + dx + width]
            distance2 = (neighbour - image).square().sum(0)  # (H, W)
            weight = math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)) * torch.exp(
                -distance2 / (2 * RANGE_SIGMA * RANGE_SIGMA))
            total += weight * neighbour
            weights += weight
    return (total / weights).clamp_(0.0, 1.0)  # weights >= the centre's 1, never zero
