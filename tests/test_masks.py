"""Spatial control: reading and checking masks, fitting them to each size, and a tiny masked run."""

import pytest
import torch
from PIL import Image

import impasto
from impasto.api import _scaled_styles, load_extractor
from impasto.imageio import read_image, resize_to_long_edge, save_image
from impasto.losses import gram_matrix, guided_gram_matrix
from impasto.masks import fit_mask, gaussian_blur, layer_mask, read_mask

LAYERS = ("relu1_1", "relu2_1", "relu3_1")


def _halves(path_left, path_right, height=72, width=96):
    left = torch.zeros(3, height, width)
    left[:, :, : width // 2] = 1.0
    save_image(left, path_left)
    save_image(1.0 - left, path_right)


def test_read_mask_is_brightness(tmp_path):
    photo = torch.rand(3, 30, 40)
    image = torch.zeros(3, 60, 80)
    image[:, :, 40:] = 1.0
    image[1, :10, :10] = 1.0  # green counts by its brightness, a third of white
    save_image(image, tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png", photo)
    assert mask.shape == (60, 80) and mask[:, 40:].min() == 1.0 and mask[20:, :40].max() == 0.0
    assert mask[0, 0].item() == pytest.approx(1 / 3)


def test_transparent_in_a_mask_means_no_style(tmp_path):
    strokes = torch.zeros(60, 80, 4, dtype=torch.uint8)
    strokes[:, 40:] = 255  # opaque white on the right, transparent on the left
    Image.fromarray(strokes.numpy()).save(tmp_path / "strokes.png")
    mask = read_mask(tmp_path / "strokes.png", torch.rand(3, 30, 40))
    assert mask[:, 40:].min() == 1.0 and mask[:, :40].max() == 0.0


@pytest.mark.parametrize("problem, message", [
    ("missing", "no such file"),
    ("not an image", "not an image file"),
    ("wrong shape", "must have the photo's shape; it is 50x50, the photo 40x30"),
    ("all black", "all black"),
])
def test_invalid_masks_name_the_file(tmp_path, problem, message):
    path = tmp_path / "mask.png"
    if problem == "not an image":
        path.write_text("hello")
    elif problem == "wrong shape":
        save_image(torch.ones(3, 50, 50), path)
    elif problem == "all black":
        save_image(torch.zeros(3, 30, 40), path)
    with pytest.raises(impasto.ImageError, match=message) as info:
        read_mask(path, torch.rand(3, 30, 40))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_stylize_checks_masks_before_painting(images, tmp_path):
    content, style = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    save_image(torch.zeros(3, 30, 40), tmp_path / "black.png")
    with pytest.raises(impasto.ImageError, match="black.png: the mask is all black"):
        impasto.stylize(content, style, impasto.Config(max_size=32, iterations=1, masks=(str(tmp_path / "black.png"),)))
    with pytest.raises(impasto.ConfigError, match=r"masks has 2 images for 1 style image \(one each\)"):
        impasto.stylize(content, style, impasto.Config(max_size=32, iterations=1, masks=("a.png", "b.png")))
    with pytest.raises(impasto.ConfigError, match="masks and style_blend cannot be combined"):
        impasto.Config(masks=("a.png", "b.png"), style_blend=(1.0, 1.0))


def test_fit_mask_softens_edges_only():
    mask = torch.zeros(40, 40)
    mask[:, 20:] = 1.0
    fitted = fit_mask(mask, 100, 100)  # σ = 1 px at 100 px
    assert fitted.shape == (1, 1, 100, 100)
    row = fitted[0, 0, 50]
    assert row[:40].max() < 1e-3 and row[60:].min() > 1 - 1e-3  # far from the edge: unchanged
    assert 0.1 < row[49].item() < 0.5 < row[50].item() < 0.9  # at the edge: a ramp, not a step
    assert torch.allclose(gaussian_blur(torch.ones(1, 1, 9, 9), 2.0), torch.ones(1, 1, 9, 9))
    shrunk = layer_mask(fitted, 25, 25)  # each layer's positions weighted by the share of the region they see
    assert shrunk.shape == (1, 1, 25, 25) and abs(shrunk.mean().item() - fitted.mean().item()) < 1e-3
    assert shrunk[0, 0, 12, :10].max() < 1e-3 and shrunk[0, 0, 12, 15:].min() > 1 - 1e-3
    assert 0.2 < shrunk[0, 0, 12, 12].item() < 0.8  # the edge's position sees both sides
    assert layer_mask(fitted, 100, 100) is fitted  # at its own size: as it is


def test_fit_mask_blurs_edges_by_a_gaussian_of_a_hundredth_of_the_long_edge():
    # A step blurred by the discrete Gaussian of σ = 1 px (weights exp(-k²/2) for k = -3..3, summing
    # to 2.5058): just right of the edge, (1 + 0.6065 + 0.1353 + 0.0111) / 2.5058 = 0.6995.
    step = torch.zeros(100, 100)
    step[:, 50:] = 1.0
    profile = torch.tensor([0.0, 0.0044, 0.0584, 0.3005, 0.6995, 0.9416, 0.9956, 1.0])
    assert torch.allclose(fit_mask(step, 100, 100)[0, 0, 50, 46:54], profile, atol=1e-4)
    assert torch.allclose(fit_mask(step[::2, ::2], 50, 50)[0, 0, 25, 21:29], profile, atol=1e-4)  # σ: 1 px at least
    wide = torch.zeros(200, 400)  # σ is a hundredth of the long edge: 4 px here, a wider ramp
    wide[:, 200:] = 1.0
    assert torch.allclose(fit_mask(wide, 200, 400)[0, 0, 100, [196, 199, 200, 203]],
                          torch.tensor([0.1896, 0.45, 0.55, 0.8104]), atol=1e-4)
    first_column = torch.zeros(100, 100)  # the border is mirrored, not repeated: the column alone is white
    first_column[:, 0] = 1.0
    mirrored = torch.tensor([0.3991, 0.2420, 0.0540, 0.0044])
    assert torch.allclose(fit_mask(first_column, 100, 100)[0, 0, 50, :4], mirrored, atol=1e-4)
    assert torch.allclose(gaussian_blur(torch.ones(1, 1, 4, 4), 2.0), torch.ones(1, 1, 4, 4))  # radius cut to 3


def test_masks_shrink_without_losing_fine_strokes():
    # A mask of 1-px lines, one column in four, covers a quarter of the picture at any size: shrunk
    # without averaging (antialiasing), it would sample only the black between them.
    lines = torch.zeros(400, 400)
    lines[:, ::4] = 1.0
    assert fit_mask(lines, 100, 100).mean().item() == pytest.approx(0.25, abs=0.01)
    assert layer_mask(lines[None, None, :100, :100], 25, 25).mean().item() == pytest.approx(0.25, abs=0.01)


def test_a_mask_with_one_white_or_nearly_black_pixel_has_a_region(tmp_path):
    photo = torch.rand(3, 30, 40)
    for level in (255, 1):
        pixels = torch.zeros(30, 40, 3, dtype=torch.uint8)
        pixels[15, 20] = level
        Image.fromarray(pixels.numpy()).save(tmp_path / "dot.png")
        assert read_mask(tmp_path / "dot.png", photo).max().item() == pytest.approx(level / 255)


def test_masked_regions_take_their_own_style(images, tmp_path):
    _halves(tmp_path / "left.png", tmp_path / "right.png")
    a, b = images / "style/starry_night.jpg", images / "style/the_scream.jpg"
    config = impasto.Config(max_size=48, scales=1, iterations=25, tolerance=0.0,
                            masks=(str(tmp_path / "left.png"), str(tmp_path / "right.png")))
    image = impasto.stylize(images / "content/golden_gate.jpg", [a, b], config).image
    extractor = load_extractor(None, "avg", LAYERS, "cpu")
    style_a, style_b = _scaled_styles([read_image(a), read_image(b)], image, 1.0)
    features, features_a, features_b = extractor(image[None]), extractor(style_a[None]), extractor(style_b[None])
    for layer in LAYERS:
        h, w = features[layer].shape[2:]
        left = torch.zeros(1, 1, h, w)
        left[..., : w // 2] = 1.0
        for mask, near, far in ((left, features_a, features_b), (1 - left, features_b, features_a)):
            gram = guided_gram_matrix(features[layer], mask)
            to_near = (gram - gram_matrix(near[layer])).square().mean()
            to_far = (gram - gram_matrix(far[layer])).square().mean()
            assert to_near < 0.5 * to_far, layer  # measured at 64 px: 10 to 30 times closer


def test_unmasked_area_stays_the_photo(images, tmp_path):
    # A mask covering only the left half: the right half keeps the photo far better than the left.
    _halves(tmp_path / "left.png", tmp_path / "right.png")
    config = impasto.Config(max_size=48, scales=1, iterations=20, tolerance=0.0, masks=(str(tmp_path / "left.png"),))
    image = impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg", config).image
    photo = resize_to_long_edge(read_image(images / "content/golden_gate.jpg"), 48)
    change = (image - photo).abs().mean(0)  # (H, W)
    assert change[:, 30:].mean() < 0.3 * change[:, :18].mean()
