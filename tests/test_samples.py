"""The demo's built-in inputs: the shipped photo and the painted style image."""

import numpy as np
import pytest

from impasto.imageio import read_image
from impasto.samples import draw_swirls, sample_photo_path, sample_style_image


@pytest.fixture(scope="module")
def swirls():
    return sample_style_image()  # draw_swirls() with its defaults


def test_sample_photo_ships_with_matplotlib():
    path = sample_photo_path()
    assert path.is_file() and path.name == "grace_hopper.jpg"
    assert read_image(path).shape == (3, 600, 512)


def test_swirls_size(swirls):
    assert swirls.mode == "RGB" and swirls.size == (768, 576)


def test_swirls_deterministic_per_seed():
    a = np.asarray(draw_swirls(192, 144, seed=0)).astype(int)
    assert a.shape == (144, 192, 3)
    assert np.array_equal(a, np.asarray(draw_swirls(192, 144, seed=0)))
    assert np.abs(a - np.asarray(draw_swirls(192, 144, seed=1))).mean() > 20


def test_swirls_look_like_a_night_painting(swirls):
    a = np.asarray(swirls).astype(float)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    assert a.std() > 50  # high contrast, not a smooth gradient
    assert np.abs(np.diff(a.mean(axis=2), axis=1)).mean() > 7  # textured strokes, pixel to pixel
    assert ((b > r + 20) & (b >= g)).mean() > 0.35  # mostly blue sky
    assert ((r > 180) & (g > 130) & (b < 120)).mean() > 0.01  # with yellow stars
    q = a.astype(int) // 8
    assert len(np.unique(q[..., 0] * 1024 + q[..., 1] * 32 + q[..., 2])) > 3000  # many mixed colours
