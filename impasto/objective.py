"""The objective of Gatys et al.: a weighted sum of content, style and total-variation terms.

The targets (the photo's content features and the painting's Gram matrices) are computed once when
the objective is built, never per step. Evaluating the objective returns the total loss and a named
breakdown such as ``{"content/relu4_2": …, "style/relu1_1": …, "tv": …}`` for front ends to show.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .color import luminance
from .errors import ImageError
from .imageio import (ImageSource, canvas_margin, margin_operator, read_image, resize, resize_operators,
                      with_margin, without_margin)
from .losses import content_loss, gram_matrix, style_loss, tv_loss
from .masks import layer_mask
from .vgg import VGGFeatures


def blend_grams(per_style: Sequence[dict[str, torch.Tensor]], blend: Sequence[float]) -> dict[str, torch.Tensor]:
    """Mix the Gram targets of several paintings with weights (normalised to sum to 1).

    Mixing Gram matrices, rather than summing one loss per painting, makes one target the image
    can reach exactly, and costs one Gram comparison per layer whatever the number of paintings.
    """
    total = float(sum(blend))
    return {
        layer: sum(weight / total * grams[layer] for weight, grams in zip(blend, per_style))
        for layer in per_style[0]
    }


class Objective:
    """α·content + β·Σ_l w_l·style_l + γ·tv, evaluated on an image (1, 3, H, W) in [0, 1]: the canvas,
    which is the picture with ``margin`` px more on each side.

    VGG-19's convolutions pad their inputs with zeros, so the pixels at the edge of what they see
    get gradients unlike all others: painted to the edge, a picture came out with a line along some
    edges, darker or lighter by up to 45 grey levels than the rows inside (benchmarks/bench_edges.py).
    On a canvas those rows fall in the margin, which the run paints and crops off; the content
    target there is the photo mirrored.
    """

    def __init__(
        self,
        extractor: VGGFeatures,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        *,
        content_layer: str,
        style_layer_weights: dict[str, float],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
        style_blend: Sequence[float] = (),
        masks: Sequence[torch.Tensor] | None = None,
        bfloat16: bool = False,
        grey: bool = False,
        margin: int = 0,
    ) -> None:
        """``content`` is the photo (1, 3, H, W), the picture's size; the canvas has ``margin`` px
        more on each side (``canvas_margin``: at most an eighth of the short edge).
        ``masks`` (one (1, 1, H, W) per painting, the photo's size) give each painting a region:
        its Gram target is then compared with the guided Gram of its region, not blended.
        ``bfloat16`` runs the image's forward and backward pass and its Gram products in bfloat16
        (autocast); the targets and the losses stay float32."""
        self.extractor, self.bfloat16, self.grey = extractor, bfloat16, grey
        self.picture_shape, self.device = tuple(content.shape[2:]), content.device
        self.margin = canvas_margin(margin, *self.picture_shape)
        content = with_margin(content, self.margin)
        masks = None if masks is None else [with_margin(mask, self.margin) for mask in masks]
        self.image_shape = tuple(content.shape[2:])  # the canvas: what it scores
        self.content_layer = content_layer
        total = sum(style_layer_weights.values())
        self.style_layer_weights = {layer: w / total for layer, w in style_layer_weights.items()}
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        with torch.no_grad():
            content_features = extractor(content)
            self.content_target = content_features[content_layer]
            per_style = [self._grams(extractor(style)) for style in styles]
        self.style_grams = blend_grams(per_style, style_blend or [1.0] * len(styles))
        # Per painting: its Gram targets, and at each style layer its mask and the mask's share of the
        # picture. The share weights the region's loss, so that one mask of ones gives exactly the
        # unmasked loss and a small region does not pull harder per pixel than a large one.
        self.regions = None if masks is None else [
            (grams, {layer: self._layer_region(mask, content_features[layer]) for layer in grams})
            for grams, mask in zip(per_style, masks)]

    @staticmethod
    def _layer_region(mask: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, float]:
        scaled = layer_mask(mask, *features.shape[2:])
        return scaled, float(scaled.square().mean())

    def _grams(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {layer: gram_matrix(features[layer]) for layer in self.style_layer_weights}

    def _style_term(self, features: torch.Tensor, layer: str) -> torch.Tensor:
        if self.regions is None:
            return style_loss(features, self.style_grams[layer])
        return sum(style_loss(features, grams[layer], regions[layer][0]) * regions[layer][1]
                   for grams, regions in self.regions)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss and its weighted terms by name (tensors, still attached to the graph) of a
        (1, 3, H, W) ``image`` of ``image_shape``: a canvas (``with_margin`` makes one of a picture)."""
        if image.dim() != 4 or image.shape[:2] != (1, 3) or tuple(image.shape[2:]) != self.image_shape:
            raise ImageError(f"objective: expected an image of shape (1, 3, {self.image_shape[0]}, "
                             f"{self.image_shape[1]}), got {tuple(image.shape)} (score() takes any picture)")
        if not image.is_floating_point():
            raise ImageError(f"objective: expected a float image in [0, 1], got {image.dtype} (score() takes any picture)")
        image = image.float()  # float64 or half in, as the network's weights are; the gradient flows back
        with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
            features = self.extractor(image)
            # The Gram products run in bfloat16 too: their inputs are bfloat16 values already and the
            # products accumulate in float32, so only each Gram entry is rounded (to 3 digits). That
            # made 512 px steps ~11 % faster with the same loss after 100 steps (4.926e4 vs 4.927e4).
            # The differences from the float32 targets, and the means, are float32 (no autocast op).
            content = features[self.content_layer].float()
            terms = {f"content/{self.content_layer}": self.content_weight * content_loss(content, self.content_target)}
            for layer, weight in self.style_layer_weights.items():
                terms[f"style/{layer}"] = self.style_weight * weight * self._style_term(features[layer], layer)
        if self.tv_weight:
            terms["tv"] = self.tv_weight * tv_loss(image)
        return sum(terms.values()), terms

    @torch.no_grad()
    def score(self, picture: ImageSource) -> dict[str, float]:
        """The weighted terms of a picture (any image ``read_image`` takes: a file, a (3, H, W)
        tensor …), resized to ``picture_shape`` if it is not of it, and made grey first when the run
        paints grey (``grey``: preserve_color "luminance"), as the run sees it; its canvas's margin
        is the picture mirrored."""
        picture = read_image(picture, what="picture to score")
        if self.grey:
            picture = luminance(picture)
        if tuple(picture.shape[1:]) != self.picture_shape:
            picture = resize(picture, *self.picture_shape)
        canvas = with_margin(picture[None].to(self.device, torch.float32), self.margin)
        return {name: float(value) for name, value in self(canvas)[1].items()}


class WithComposition:
    """A larger size's objective plus ``weight`` × the first size's objective on the picture shrunk to it.

    VGG-19 sees a fixed number of pixels, so at a print size its style layers see only small strokes
    and its content layer the photo's fine detail: left alone, the steps there paint the print less
    and less like the picture composed at the first size (shrunk back to that size, a 1536 px print's
    style term there rose from 4.2e4 after 25 steps to 7.5e4 after 100). Scoring the shrunk picture
    too keeps that look while the larger size adds detail. Its terms are named with the first size,
    e.g. ``style/relu1_1@512px``.
    """

    def __init__(self, objective: Objective, first: Objective, weight: float) -> None:
        self.objective, self.first, self.weight = objective, first, weight
        self.margin, self.image_shape = objective.margin, objective.image_shape  # its canvas is the objective's
        self.suffix = f"@{max(first.picture_shape)}px"
        self.operators: tuple[torch.Tensor, torch.Tensor] | None = None  # built at the first call

    def shrink(self, image: torch.Tensor) -> torch.Tensor:
        """The (1, 3, H, W) canvas's picture shrunk to the first size, and mirrored into the first
        size's canvas: impasto's antialiased ``resize`` and ``with_margin``, as matrix products, whose
        backward pass repeats to the last bit on CUDA (interpolate's and the mirroring's do not)."""
        picture = without_margin(image[0], self.margin)
        if self.operators is None:
            rows, columns = resize_operators(*picture.shape[1:], *self.first.picture_shape)
            rows, columns = (margin_operator(len(m), self.first.margin) @ m for m in (rows, columns))
            self.operators = rows.to(image.device), columns.T.contiguous().to(image.device)
        rows, columns_t = self.operators
        return (rows @ picture @ columns_t).clamp(0.0, 1.0)[None]  # clamping commutes with mirroring

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        shrunk = self.shrink(image)  # first: its operators are built before the big features exist
        loss, terms = self.objective(image)
        first_loss, first_terms = self.first(shrunk)
        terms.update({name + self.suffix: self.weight * value for name, value in first_terms.items()})
        return loss + self.weight * first_loss, terms
