"""The objective's targets: blended Grams, masked regions and the style weight."""

import pytest
import torch

from impasto.api import load_extractor
from impasto.errors import ImageError
from impasto.imageio import read_image, resize, resize_to_long_edge, with_margin, without_margin
from impasto.losses import content_loss, gram_matrix, style_loss, tv_loss
from impasto.objective import Objective, WithComposition, blend_grams

LAYERS = {"relu1_1": 1.0, "relu3_1": 1.0}


def _objective(content, styles, **options):
    extractor = load_extractor(None, "avg", ("relu4_2", *LAYERS), "cpu")
    defaults = dict(content_layer="relu4_2", style_layer_weights=LAYERS, content_weight=1.0, style_weight=10.0,
                    tv_weight=0.0)
    return Objective(extractor, content[None], [s[None] for s in styles], **{**defaults, **options})


def _image(path):
    return resize_to_long_edge(read_image(path), 40)


def test_blend_grams_by_hand():
    a, b = {"x": torch.tensor([2.0])}, {"x": torch.tensor([6.0])}
    assert torch.equal(blend_grams([a, b], [3.0, 1.0])["x"], torch.tensor([3.0]))  # (3·2 + 1·6) / 4


def test_blend_weights_one_zero_give_the_single_style(images):
    content = _image(images / "content/golden_gate.jpg")
    a, b = _image(images / "style/starry_night.jpg"), _image(images / "style/the_scream.jpg")
    single, blended = _objective(content, [a]), _objective(content, [a, b], style_blend=(1.0, 0.0))
    other = _objective(content, [a, b], style_blend=(0.0, 1.0))
    for layer in LAYERS:
        assert torch.allclose(blended.style_grams[layer], single.style_grams[layer], rtol=1e-6, atol=0)
        assert not torch.allclose(other.style_grams[layer], single.style_grams[layer], rtol=0.1)
    image = content[None].clone()
    assert torch.allclose(blended(image)[0], single(image)[0], rtol=1e-5)


def test_each_term_is_its_loss_times_its_weight(images):
    content, style = _image(images / "content/golden_gate.jpg"), _image(images / "style/starry_night.jpg")
    objective = _objective(content, [style], content_weight=3.0, style_weight=10.0, tv_weight=7.0,
                           style_layer_weights={"relu1_1": 2.0, "relu3_1": 1.0})
    image = torch.rand(1, *content.shape, generator=torch.Generator().manual_seed(0))
    loss, terms = objective(image)
    features, targets = objective.extractor(image), objective.extractor(content[None])
    style_features = objective.extractor(style[None])
    expected = {"content/relu4_2": 3.0 * content_loss(features["relu4_2"], targets["relu4_2"]),
                "tv": 7.0 * tv_loss(image)}
    for layer, share in (("relu1_1", 2 / 3), ("relu3_1", 1 / 3)):  # the layer weights, made to sum to 1
        expected[f"style/{layer}"] = 10.0 * share * style_loss(features[layer], gram_matrix(style_features[layer]))
    assert terms.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.allclose(terms[name], value, rtol=1e-5), name
    assert torch.allclose(loss, sum(expected.values()), rtol=1e-5)


def test_a_double_image_is_scored_as_float_with_its_gradient_and_whole_numbers_are_refused(images):
    content, style = _image(images / "content/golden_gate.jpg"), _image(images / "style/starry_night.jpg")
    objective = _objective(content, [style])
    image = torch.rand(1, *content.shape, generator=torch.Generator().manual_seed(0))
    as_double = image.double().requires_grad_(True)
    loss, _ = objective(as_double)
    (grad,) = torch.autograd.grad(loss, as_double)
    as_float = image.clone().requires_grad_(True)
    expected, _ = objective(as_float)
    assert loss.item() == expected.item() and grad.dtype == torch.float64
    assert torch.allclose(grad.float(), torch.autograd.grad(expected, as_float)[0])
    with pytest.raises(ImageError, match=r"objective: expected a float image in \[0, 1\], got torch.uint8"):
        objective((image * 255).to(torch.uint8))


def test_a_mask_of_ones_is_the_unmasked_objective(images):
    content, style = _image(images / "content/golden_gate.jpg"), _image(images / "style/starry_night.jpg")
    plain = _objective(content, [style])
    masked = _objective(content, [style], masks=[torch.ones(1, 1, *content.shape[1:])])
    image = torch.rand(1, *content.shape, generator=torch.Generator().manual_seed(0))
    loss, terms = masked(image)
    assert torch.allclose(loss, plain(image)[0], rtol=1e-5) and set(terms) == set(plain(image)[1])


def test_a_regions_style_terms_are_weighted_by_its_share_of_the_picture(images):
    # A mask of 0.5 everywhere: its Gram is the plain one, and its share (the mean of mask², 0.25)
    # weights each style term, so a region pulls no harder per pixel than the whole picture would.
    content, style = _image(images / "content/golden_gate.jpg"), _image(images / "style/starry_night.jpg")
    plain = _objective(content, [style])
    half = _objective(content, [style], masks=[torch.full((1, 1, *content.shape[1:]), 0.5)])
    image = torch.rand(1, *content.shape, generator=torch.Generator().manual_seed(0))
    plain_terms, half_terms = plain(image)[1], half(image)[1]
    for layer in LAYERS:
        term = f"style/{layer}"
        assert half_terms[term].item() == pytest.approx(0.25 * plain_terms[term].item(), rel=1e-4)
    assert half_terms["content/relu4_2"].item() == pytest.approx(plain_terms["content/relu4_2"].item(), rel=1e-6)


def test_bfloat16_features_give_nearly_the_float32_loss_and_gradient(images):
    content, style = _image(images / "content/golden_gate.jpg"), _image(images / "style/starry_night.jpg")
    image = torch.rand(1, *content.shape, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    results = []
    for bfloat16 in (False, True):
        objective = _objective(content, [style], bfloat16=bfloat16)
        loss, terms = objective(image)
        assert all(t.dtype == torch.float32 for t in terms.values())  # the losses stay float32
        results.append((loss, torch.autograd.grad(loss, image)[0]))
    (loss32, grad32), (loss16, grad16) = results
    assert torch.allclose(loss16, loss32, rtol=0.03) and not torch.equal(loss16, loss32)
    assert torch.cosine_similarity(grad16.flatten(), grad32.flatten(), dim=0) > 0.99


def test_the_composition_term_scores_the_picture_shrunk_to_the_first_size(images):
    photo, painting = read_image(images / "content/golden_gate.jpg"), read_image(images / "style/starry_night.jpg")
    small, big = (resize_to_long_edge(photo, size) for size in (40, 80))
    first = _objective(small, [resize_to_long_edge(painting, 40)])
    larger = _objective(big, [resize_to_long_edge(painting, 80)])
    composed = WithComposition(larger, first, 0.5)
    image = resize(resize_to_long_edge(painting, 80), *big.shape[1:])[None].requires_grad_(True)
    loss, terms = composed(image)
    shrunk = resize(image[0].detach(), *small.shape[1:])[None]  # impasto's antialiased shrink
    expected = larger(image)[0] + 0.5 * first(shrunk)[0]
    assert torch.allclose(loss, expected, rtol=1e-4)
    assert set(terms) == set(larger(image)[1]) | {f"{name}@40px" for name in first(shrunk)[1]}
    assert torch.allclose(sum(terms.values()), loss, rtol=1e-5)
    # The shrunk picture's term pulls the pixels too: the gradient is not the larger size's alone.
    alone = torch.autograd.grad(larger(image)[0], image)[0]
    together = torch.autograd.grad(loss, image)[0]
    assert (together - alone).abs().sum() > 0.05 * alone.abs().sum()


def test_the_canvas_is_the_picture_with_a_mirrored_margin(images):
    content = resize(read_image(images / "content/golden_gate.jpg"), 48, 64)
    style = _image(images / "style/starry_night.jpg")
    objective = _objective(content, [style], margin=5)
    assert objective.picture_shape == (48, 64) and objective.image_shape == (58, 74) and objective.margin == 5
    canvas = with_margin(content[None], 5)
    assert torch.equal(canvas[0, :, 5, 5:-5], content[:, 0]) and torch.equal(canvas[0, :, 4, 5:-5], content[:, 1])
    assert objective.score(content)["content/relu4_2"] == 0.0  # the target is the mirrored photo's features
    assert objective(canvas)[1]["content/relu4_2"] == 0.0
    # A picture scores as its mirrored canvas; the margin pixels count: painted otherwise, the terms differ.
    picture = resize(style, 48, 64)
    on_canvas = {name: float(value) for name, value in objective(with_margin(picture[None], 5))[1].items()}
    assert objective.score(picture) == pytest.approx(on_canvas, rel=1e-6)
    other = with_margin(picture[None], 5)
    other[..., :5] = 0.5
    assert objective(other)[1]["style/relu1_1"] != pytest.approx(on_canvas["style/relu1_1"], rel=1e-3)
    assert torch.equal(without_margin(canvas, 5), content[None])
    # At most an eighth of the short edge: on a thumbnail a margin would be most of the canvas.
    assert _objective(resize(content, 24, 32), [style], margin=8).margin == 3
    assert _objective(resize(content, 12, 16), [style], margin=8).image_shape == (14, 18)


def test_the_composition_term_shrinks_the_picture_not_the_margin(images):
    photo, painting = read_image(images / "content/golden_gate.jpg"), read_image(images / "style/starry_night.jpg")
    small, big = (resize_to_long_edge(photo, size) for size in (40, 80))
    first = _objective(small, [resize_to_long_edge(painting, 40)], margin=3)  # 30×40: at most 3
    larger = _objective(big, [resize_to_long_edge(painting, 80)], margin=6)
    composed = WithComposition(larger, first, 0.5)
    assert (composed.margin, composed.image_shape) == (6, (72, 92))
    picture = resize(resize_to_long_edge(painting, 80), *big.shape[1:])
    canvas = with_margin(picture[None], 6)
    canvas[..., :6] = 0.0  # a margin unlike the picture: the first size must not see it
    loss, _ = composed(canvas)
    shrunk = with_margin(resize(picture, *small.shape[1:])[None], 3)
    assert torch.allclose(loss, larger(canvas)[0] + 0.5 * first(shrunk)[0], rtol=1e-4)
