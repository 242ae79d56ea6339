"""Colour preservation (Gatys et al. 2017, section 5): pure functions of (3, H, W) RGB images in [0, 1].

Two ways to keep the photo's colours while taking the painting's strokes:

* luminance-only transfer: optimise a grey image (the YIQ luminance Y in all three channels, which
  VGG-19 takes as RGB), after matching the painting's luminance mean and spread to the photo's, then
  put the photo's chroma (I, Q) back on the result (``luminance``, ``match_luminance``,
  ``with_chroma_of``);
* colour histogram matching: before the run, give the painting the photo's colour mean and
  covariance with an affine map of its RGB values (``match_color``).
"""

from __future__ import annotations

import torch

# NTSC RGB -> YIQ; rows give Y, I, Q. The inverse is computed, not typed, so the two agree exactly.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.595716, -0.274453, -0.321263],
                            [0.211456, -0.522591, 0.311135]], dtype=torch.float64)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)

# Added to covariance eigenvalues: a flat painting (a channel with no spread) must not divide by 0.
_EPS = 1e-5


def _apply(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """A 3×3 colour matrix applied to every pixel of a (3, H, W) image."""
    return torch.einsum("ij,jhw->ihw", matrix.to(image.dtype).to(image.device), image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB -> (3, H, W) YIQ (Y in [0, 1]; I and Q signed)."""
    return _apply(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) YIQ -> (3, H, W) RGB (not clamped)."""
    return _apply(_YIQ_TO_RGB, image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """The luminance Y of an RGB image, repeated in three channels so VGG-19 can read it."""
    return rgb_to_yiq(image)[:1].expand(3, -1, -1).clone()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The luminance of RGB ``style``, shifted and scaled to the mean and spread of ``content``'s, as grey.

    Without this, a dark painting would darken the photo even though only its strokes are wanted.
    """
    y_style, y_content = rgb_to_yiq(style)[0], rgb_to_yiq(content)[0]
    scaled = (y_style - y_style.mean()) * (_spread(y_content) / (_spread(y_style) + _EPS)) + y_content.mean()
    return scaled.clamp(0.0, 1.0).expand(3, -1, -1).clone()


def _spread(values: torch.Tensor) -> torch.Tensor:
    """Standard deviation; 0 for a single value (a 1×1 image), where torch's sample estimate is NaN."""
    return values.std() if values.numel() > 1 else values.new_zeros(())


def with_chroma_of(grey: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The luminance of ``grey`` (any of its channels) with the I, Q chroma of ``content`` (same size)."""
    yiq = rgb_to_yiq(content)
    yiq[0] = grey[0]
    return yiq_to_rgb(yiq).clamp(0.0, 1.0)


def _matrix_power(cov: torch.Tensor, power: float) -> torch.Tensor:
    """cov^power for a symmetric positive semi-definite 3×3 matrix, by eigendecomposition."""
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag((values.clamp(min=0) + _EPS) ** power) @ vectors.T


def mean_and_covariance(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The colour mean (3,) and covariance (3, 3) of a (3, H, W) image, in float64."""
    pixels = image.reshape(3, -1).double()  # (3, N)
    mean = pixels.mean(1)
    centred = pixels - mean[:, None]
    return mean, centred @ centred.T / pixels.shape[1]


def match_color(style: torch.Tensor, content: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
    """``style`` recoloured to the RGB mean and covariance of ``content`` (Gatys et al. 2017, eq. 6–7).

    x' = Σc^½ Σs^-½ (x − μs) + μc, with symmetric square roots: of the affine maps that match the two
    moments this one rotates colours least. Values leaving [0, 1] are clipped unless ``clamp`` is False.
    """
    return recolor(style, *mean_and_covariance(content), clamp=clamp)


def recolor(image: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
    """``image`` mapped to the colour ``mean`` (3,) and covariance (3, 3) by ``match_color``'s transform."""
    mu_s, cov_s = mean_and_covariance(image)
    transform = _matrix_power(cov, 0.5) @ _matrix_power(cov_s, -0.5)
    pixels = image.reshape(3, -1).double()  # (3, N)
    out = (transform @ (pixels - mu_s[:, None]) + mean[:, None]).reshape(image.shape).to(image.dtype)
    return out.clamp(0.0, 1.0) if clamp else out


def blended_mean_and_covariance(images: list[torch.Tensor], weights: list[float]
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The colour mean and covariance of the images' pixels pooled in the proportions ``weights``
    (normalised): the palette of a style blend. One image with weight left is its own statistics."""
    kept = [(w / sum(weights), image) for w, image in zip(weights, images) if w > 0]
    if len(kept) == 1:
        return mean_and_covariance(kept[0][1])
    moments = [(w, *mean_and_covariance(image)) for w, image in kept]
    mean = sum(w * m for w, m, _ in moments)
    second = sum(w * (c + torch.outer(m, m)) for w, m, c in moments)
    return mean, second - torch.outer(mean, mean)
