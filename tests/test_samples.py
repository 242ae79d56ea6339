"""The demo's built-in inputs: the shipped photo and the painted style image."""

import numpy as np
import pytest

from impasto.imageio import read_image
from impasto.samples import GOLD, _ramp, draw_swirls, sample_photo_path, sample_style_image


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


def test_a_palette_ramp_runs_from_its_first_colour_to_its_last():
    # t = 1 is the last colour exactly (not an index past the end); t = 0.125 is half way from the first to the second.
    out = _ramp(GOLD, np.array([0.0, 0.125, 1.0, 1.5]))
    assert np.array_equal(out, [GOLD[0], (GOLD[0] + GOLD[1]) / 2, GOLD[4], GOLD[4]])


def test_swirls_have_the_moon_stars_cypress_and_soft_brushwork(swirls):
    # Measured on the default painting (seed 0), with margins: without each feature the share drops
    # to under half (moon 0.0061 -> 0.0017, stars 0.040 -> 0.017, cypress 0.17 -> 0.03; pixel-to-pixel
    # change 10.9, 18.0 unblurred).
    a = np.asarray(swirls).astype(float)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    assert ((np.abs(r - 226) < 20) & (np.abs(g - 140) < 25) & (b < 80)).mean() > 0.004  # the orange crescent
    assert ((r > 180) & (g > 130) & (b < 120)).mean() > 0.03  # the moon and 9 stars
    assert (a.max(axis=2) < 40)[172:, :200].mean() > 0.1  # the dark cypress, bottom left
    assert np.abs(np.diff(a.mean(axis=2), axis=1)).mean() < 14  # strokes blurred a little, not hard-edged


def test_a_tall_painting_has_strokes_sized_by_its_long_side():
    # Stroke widths scale with the long side (576 here, not the width 432): thinner ones change 20.1
    # from pixel to pixel, against 14.7.
    a = np.asarray(draw_swirls(432, 576)).astype(float)
    assert a.shape == (576, 432, 3)
    assert np.abs(np.diff(a.mean(axis=2), axis=1)).mean() < 17
