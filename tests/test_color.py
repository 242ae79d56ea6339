"""Colour preservation: the colour maths by hand and on real images, and its effect on tiny runs."""

import pytest
import torch

import impasto
from impasto.color import (blended_mean_and_covariance, luminance, match_color, match_luminance, mean_and_covariance, rgb_to_yiq,
                           with_chroma_of, yiq_to_rgb)
from impasto.imageio import read_image, resize_to_long_edge

# float32: the same pictures on every CPU (precision "auto" picks bfloat16 only on some).
RUN = dict(max_size=48, scales=1, iterations=30, tolerance=0.0, precision="float32")


def _image(path, size=64):
    return resize_to_long_edge(read_image(path), size)


def _chroma(image: torch.Tensor) -> torch.Tensor:
    return rgb_to_yiq(image)[1:].reshape(2, -1)  # (2, N): I and Q


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over the I and Q channels of the Pearson correlation between two images' chroma."""
    x, y = _chroma(a), _chroma(b)
    return sum(torch.corrcoef(torch.stack([x[i], y[i]]))[0, 1].item() for i in range(2)) / 2


def test_yiq_by_hand_and_round_trip():
    white = torch.ones(3, 1, 1)
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert torch.allclose(rgb_to_yiq(white).flatten(), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)  # grey: no chroma
    assert torch.allclose(rgb_to_yiq(red).flatten(), torch.tensor([0.299, 0.595716, 0.211456]))
    pixels = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(pixels)), pixels, atol=1e-6)


def test_luminance_is_grey_and_chroma_comes_back():
    pixels = torch.rand(3, 4, 6, generator=torch.Generator().manual_seed(1))
    grey = luminance(pixels)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[0], grey[2])
    assert torch.allclose(grey[0], 0.299 * pixels[0] + 0.587 * pixels[1] + 0.114 * pixels[2])
    # Putting a picture's own chroma back on its own luminance gives the picture again.
    assert torch.allclose(with_chroma_of(grey, pixels), pixels, atol=1e-5)


def test_match_luminance_gives_the_photos_mean_and_spread(images):
    photo, painting = _image(images / "content/golden_gate.jpg"), _image(images / "style/starry_night.jpg")
    matched = match_luminance(painting, photo)[0]
    y_photo = rgb_to_yiq(photo)[0]
    assert abs(rgb_to_yiq(painting)[0].mean() - y_photo.mean()) > 0.05  # there was something to match
    assert matched.mean().item() == pytest.approx(y_photo.mean().item(), abs=0.01)
    assert matched.std().item() == pytest.approx(y_photo.std().item(), rel=0.05)


def test_luminance_matched_and_chroma_put_back_stay_within_0_and_1():
    # A bright photo's spread, given to a painting that is mostly black, would put its one white pixel
    # at 1.15; and white with a red photo's chroma would be (1.70, 0.70, 0.70): both are clipped.
    painting = torch.tensor([0.0, 0.0, 0.0, 1.0]).view(1, 2, 2).expand(3, 2, 2)
    photo = torch.tensor([0.7, 1.0, 1.0, 1.0]).view(1, 2, 2).expand(3, 2, 2)
    assert torch.allclose(match_luminance(painting, photo)[0], torch.tensor([[0.85, 0.85], [0.85, 1.0]]), atol=1e-4)
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert torch.allclose(with_chroma_of(torch.ones(3, 1, 1), red).flatten(), torch.tensor([1.0, 0.701, 0.701]),
                          atol=1e-3)


def test_one_pixel_images_have_no_spread():
    single, photo = torch.full((3, 1, 1), 0.3), torch.rand(3, 8, 8)
    assert torch.equal(match_luminance(photo, single), torch.full((3, 8, 8), rgb_to_yiq(single)[0, 0, 0].item()))
    # a one-pixel painting has no spread to scale: it becomes the photo's mean brightness
    assert torch.allclose(match_luminance(single, photo), rgb_to_yiq(photo)[0].mean().expand(3, 1, 1))


def test_match_color_gives_the_photos_mean_and_covariance(images):
    photo, painting = _image(images / "content/golden_gate.jpg"), _image(images / "style/starry_night.jpg")
    mean_c, cov_c = mean_and_covariance(photo)
    mean_s, cov_s = mean_and_covariance(painting)
    assert (cov_s - cov_c).abs().max() > 0.01  # the two differ to begin with
    mean, cov = mean_and_covariance(match_color(painting, photo, clamp=False))
    assert torch.allclose(mean, mean_c, atol=1e-6)
    assert torch.allclose(cov, cov_c, atol=2e-4)  # the eigenvalue guard adds 1e-5
    # Clipping to [0, 1] moves the pixels that left it: the spread shrinks by up to 10% here.
    mean, cov = mean_and_covariance(match_color(painting, photo))
    assert torch.allclose(mean, mean_c, atol=0.01) and torch.allclose(cov, cov_c, rtol=0.15, atol=0)


def test_a_blends_palette_pools_the_paintings_pixels(images):
    first, second = _image(images / "style/starry_night.jpg"), _image(images / "style/the_scream.jpg")
    second = torch.nn.functional.interpolate(second[None], size=first.shape[1:], mode="bilinear")[0]
    mean, cov = blended_mean_and_covariance([first, second], [2.0, 2.0])  # equal pixel counts, equal weights
    pooled_mean, pooled_cov = mean_and_covariance(torch.cat([first, second], dim=2))
    assert torch.allclose(mean, pooled_mean, atol=1e-9) and torch.allclose(cov, pooled_cov, atol=1e-9)
    assert (cov - mean_and_covariance(first)[1]).abs().max() > 0.01  # not the first painting's
    for weights, alone in (([1.0, 0.0], first), ([0.0, 3.0], second)):  # a weight of 0 drops a painting
        assert all(torch.equal(a, b) for a, b in zip(blended_mean_and_covariance([first, second], weights),
                                                       mean_and_covariance(alone)))


def test_match_color_by_hand():
    # Four pixels, channels uncorrelated (orthogonal ± patterns), each with spread ±0.1 about 0.5. The
    # content has the same patterns with spreads 0.2, 0.1, 0.05 about 0.5, 0.3, 0.7: the map is then
    # diag(2, 1, 0.5) plus a shift, and the recoloured style is the content pixel for pixel.
    patterns = torch.tensor([[-1.0, 1.0, -1.0, 1.0], [-1.0, -1.0, 1.0, 1.0], [-1.0, 1.0, 1.0, -1.0]])
    style = (0.5 + 0.1 * patterns).view(3, 2, 2)
    content = (torch.tensor([[0.5], [0.3], [0.7]]) + torch.tensor([[0.2], [0.1], [0.05]]) * patterns).view(3, 2, 2)
    assert torch.allclose(match_color(style, content), content, atol=1e-3)


@pytest.fixture(scope="module")
def runs(images):
    content, style = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    events = []
    results = {mode: impasto.stylize(content, style, impasto.Config(preserve_color=mode, **RUN),
                                     callback=events.append if mode == "luminance" else None).image
               for mode in ("none", "luminance", "histogram")}
    results["luminance preview"] = events[-1].image.cpu()  # events hold the pixels where the run is: a GPU's
    return results


def test_luminance_keeps_the_photos_chroma(images, runs):
    photo = resize_to_long_edge(read_image(images / "content/golden_gate.jpg"), 48)
    # Measured at 48 px, 30 steps: about 0.45 without preservation, 0.99 with it.
    assert _correlation(runs["none"], photo) < 0.7
    assert _correlation(runs["luminance"], photo) > 0.98
    assert (_chroma(runs["luminance"]) - _chroma(photo)).abs().mean() < 0.1 * (
        _chroma(runs["none"]) - _chroma(photo)).abs().mean()
    # The run optimises grey, but progress events show the picture in the photo's colours.
    assert _correlation(runs["luminance preview"], photo) > 0.98


def test_histogram_brings_the_colours_near_the_photos(images, runs):
    photo = resize_to_long_edge(read_image(images / "content/golden_gate.jpg"), 48)
    mean_photo, cov_photo = mean_and_covariance(photo)

    def distance(image):  # how far the colour statistics are from the photo's
        mean, cov = mean_and_covariance(image)
        return ((mean - mean_photo).norm() + (cov - cov_photo).norm()).item()

    assert distance(runs["histogram"]) < 0.7 * distance(runs["none"])  # measured: 0.13 against 0.25
    assert _correlation(runs["histogram"], photo) > _correlation(runs["none"], photo) + 0.05  # 0.531 against 0.473
