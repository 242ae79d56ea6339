"""The loss terms of Gatys et al., as pure functions of tensors.

Normalisations (chosen so that a weight means the same thing at every image size and layer width):

* ``gram_matrix`` divides F·Fᵀ by C·H·W (as in seeds 000 and 004), so it is an average over positions
  and channels, independent of the image size.
* ``content_loss`` and ``style_loss`` are means of squared differences. The paper's content loss is
  ½·Σ(F−P)², i.e. C·H·W/2 times ours; its per-layer style loss E_l = 1/(4N²M²)·Σ(G−A)² with raw
  Grams is N²/4 times ours (N = channels, M = positions). The weights in ``Config`` absorb this.
* ``tv_loss`` is the mean absolute difference of neighbouring pixels (seed 004's form).
"""

from __future__ import annotations

import torch


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations of (B, C, H, W) features: (B, C, C) = F·Fᵀ / (C·H·W)."""
    b, c, h, w = features.shape
    return _product(features) / (c * h * w)


def _product(features: torch.Tensor) -> torch.Tensor:
    """F·Fᵀ over positions, (B, C, C), without copying channels-last features into NCHW order."""
    b, c, h, w = features.shape
    if features.is_contiguous(memory_format=torch.channels_last):
        flat = features.permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, M, C), a view
    else:
        flat = features.reshape(b, c, h * w).transpose(1, 2)
    return _GramProduct.apply(flat)


class _GramProduct(torch.autograd.Function):
    """flatᵀ·flat for flat (B, M, C), whose backward is one product: d flat = flat·(dG + dGᵀ).

    Autograd's own backward of the product takes two, plus copies of transposed views and their sum:
    2.8x slower for the five style layers of a 512 px image (bfloat16, in isolation), 3-8 % of a step.
    """

    @staticmethod
    def forward(ctx, flat: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(flat)
        return torch.bmm(flat.transpose(1, 2), flat)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (flat,) = ctx.saved_tensors
        # Under autocast the product (and so grad) may be bfloat16 where flat is float32 (masked Grams).
        return torch.bmm(flat, (grad + grad.transpose(1, 2)).to(flat.dtype))


def guided_gram_matrix(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gram matrix of (B, C, H, W) features inside a region (Gatys et al. 2017, section 4).

    ``mask`` (B or 1, 1, H, W) in [0, 1] weights every position; dividing by C·Σmask² instead of
    C·H·W makes the result an average over the region, so a mask of ones gives ``gram_matrix``.
    """
    c = features.shape[1]
    area = mask.square().reshape(mask.shape[0], -1).sum(1).clamp(min=1e-8)  # (B or 1,)
    return _product(features * mask) / (c * area[:, None, None])


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the image's features and the photo's."""
    if features.dim() == 4 and features.is_contiguous(memory_format=torch.channels_last):
        # Taken as channels-last features lie in memory, (B, H, W, C): over the (B, C, H, W) view the
        # mean's gradient comes back in that order, and every operation from there to the features
        # mixes the two layouts (5 % of a 512 px step in bfloat16, on an Intel CPU with AMX).
        features, target = features.permute(0, 2, 3, 1), target.permute(0, 2, 3, 1)
    return torch.mean((features - target) ** 2)


def style_loss(features: torch.Tensor, target_gram: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared difference between the Gram matrix of ``features`` and the painting's.

    With a ``mask``, the Gram matrix is the guided one of that region (``guided_gram_matrix``)."""
    gram = gram_matrix(features) if mask is None else guided_gram_matrix(features, mask)
    return torch.mean((gram - target_gram) ** 2)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation of (B, C, H, W) pixels: mean |vertical| + mean |horizontal| differences."""
    vertical = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    horizontal = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    return vertical + horizontal
