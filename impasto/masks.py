"""Spatial control (Gatys et al. 2017, section 4): masks that give each painting a region of the photo.

A mask is an image the photo's shape: white where its painting's style goes, black where it does not
(grey blends). It is read once, then for every size of the run resized to the photo, its edges
softened (so regions meet without a seam) and shrunk again to each VGG layer's resolution, where it
weights the positions of a guided Gram matrix (``losses.guided_gram_matrix``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Union

import torch
import torch.nn.functional as F

from .errors import ImageError
from .imageio import read_image, same_aspect, source_name

MaskSource = Union[str, os.PathLike, torch.Tensor]

# σ of the Gaussian that softens mask edges, as a fraction of the long edge: wide enough to hide the
# seam between two styles, narrow enough that the regions stay where they were drawn.
EDGE_BLUR = 0.01


def read_mask(source: MaskSource, photo: torch.Tensor, *, what: str = "mask") -> torch.Tensor:
    """A mask file (or tensor) as (H, W) values in [0, 1] at its own size, checked against the photo.

    Raises ImageError naming the file when it cannot be read, its aspect ratio is not the photo's,
    or it is all black (a style with nowhere to go).
    """
    name = source_name(source, what)
    image = read_image(source, what=name, background=0.0)  # transparent: no style there
    height, width = image.shape[1:]
    photo_height, photo_width = photo.shape[1:]
    if not same_aspect(height, width, photo_height, photo_width):
        raise ImageError(f"{name}: a mask must have the photo's shape; it is {width}x{height}, "
                         f"the photo {photo_width}x{photo_height}")
    mask = image.mean(0)  # any colour counts by its brightness
    if mask.max() < 0.5 / 255:
        raise ImageError(f"{name}: the mask is all black, so its style has no region (white marks where it goes)")
    return mask


def read_masks(sources: Sequence[MaskSource], photo: torch.Tensor) -> list[torch.Tensor]:
    """Every mask of a run, in the order of the paintings they belong to."""
    return [read_mask(source, photo, what=f"mask {i + 1}") for i, source in enumerate(sources)]


def fit_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W) mask resized to height × width with softened edges, as (1, 1, height, width)."""
    resized = F.interpolate(mask[None, None], size=(height, width), mode="bilinear", align_corners=False,
                            antialias=height < mask.shape[0])
    return gaussian_blur(resized, max(1.0, EDGE_BLUR * max(height, width))).clamp(0.0, 1.0)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, H, W) blurred by a Gaussian of ``sigma`` pixels (separable; edges reflected)."""
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, image.shape[2] - 1, image.shape[3] - 1)  # reflect padding needs a smaller pad
    if radius < 1:
        return image.clone()
    offsets = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-offsets**2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = image.shape[1]
    padded = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def layer_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A (1, 1, H, W) mask shrunk to a layer's height × width (bilinear, antialiased: a tent filter)."""
    if tuple(mask.shape[2:]) == (height, width):
        return mask
    return F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
