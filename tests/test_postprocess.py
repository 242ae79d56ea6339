import pytest
import torch

from impasto.config import Config
from impasto.errors import ConfigError
from impasto.postprocess import denoise, despeckle, lone_pixels


def test_zero_sigma_is_an_unchanged_copy():
    image = torch.rand(3, 8, 9, generator=torch.Generator().manual_seed(0))
    out = denoise(image, 0.0)
    assert torch.equal(out, image) and out.data_ptr() != image.data_ptr()


def test_flat_image_stays_flat_and_input_is_untouched():
    image = torch.full((3, 6, 7), 0.25)
    before = image.clone()
    assert torch.allclose(denoise(image, 1.5), image, atol=1e-6)
    assert torch.equal(image, before)


def test_noise_is_reduced_but_an_edge_stays_sharp():
    generator = torch.Generator().manual_seed(1)
    image = torch.full((3, 32, 32), 0.2)
    image[:, :, 16:] = 0.8  # a hard vertical edge
    noisy = (image + 0.02 * torch.randn(image.shape, generator=generator)).clamp(0, 1)
    out = denoise(noisy, 1.0)
    left, right = out[:, :, :16], out[:, :, 16:]
    assert left.std() < 0.5 * noisy[:, :, :16].std() and right.std() < 0.5 * noisy[:, :, 16:].std()
    # Across the edge the colours differ by 0.6 per channel: the range weight exp(-3·0.36/0.02) ≈ 4e-24.
    assert (out[:, :, 15] - 0.2).abs().max() < 0.05 and (out[:, :, 16] - 0.8).abs().max() < 0.05
    plain_blur_gap = 0.8 - 0.2
    assert float(out[:, :, 16].mean() - out[:, :, 15].mean()) > 0.9 * plain_blur_gap


def test_an_isolated_speck_is_averaged_with_its_neighbours():
    image = torch.full((3, 5, 5), 0.5)
    image[:, 2, 2] = 0.55  # close in colour to its neighbours: counted as noise
    out = denoise(image, 1.0)
    # By hand: the 24 neighbours' spatial weights exp(-(dx²+dy²)/2) sum to 5.1689, each times the range
    # weight exp(-3·0.05²/(2·0.1²)) = 0.68729; the centre weighs 1. So 0.5 + 0.05 / (1 + 5.1689·0.68729).
    assert float(out[0, 2, 2]) == pytest.approx(0.51098, abs=2e-5)
    assert float(out[0, 0, 0]) == pytest.approx(0.5, abs=2e-3)  # a corner far from the speck barely moves


def test_out_of_range_values_are_refused():
    for sigma in (-0.5, 5.5, 1e9):  # a radius of thousands would take hours, after the painting was done
        with pytest.raises(ConfigError, match=f"denoise must be from 0 to 5 pixels, not {sigma}"):
            Config(denoise=sigma)
    with pytest.raises(ConfigError, match="sigma >= 0"):
        denoise(torch.zeros(3, 2, 2), -1.0)


def _specks() -> torch.Tensor:
    picture = torch.full((3, 20, 30), 0.5)
    picture[:, :, 15:] = torch.linspace(0.3, 0.8, 15)  # a gradient: neighbours differ, but by little
    picture[1, 5, 7] = 0.9  # green, 102 grey levels off its neighbours: a speck
    picture[0, 12, 20] += 0.25  # 55 levels off its nearest neighbour: too faint
    picture[2, 15, 3:5] = 0.1  # two pixels side by side: not lone
    picture[:, 0, 10] = 1.0  # on the border: never lone
    return picture


def test_lone_pixels_are_single_pixels_far_off_all_their_neighbours():
    assert lone_pixels(_specks(), 60).nonzero().tolist() == [[5, 7]]
    assert lone_pixels(_specks(), 50).nonzero().tolist() == [[5, 7], [12, 20]]


def test_lone_pixels_are_more_than_the_levels_off_in_whole_grey_levels_of_255():
    picture = torch.full((3, 5, 5), 100, dtype=torch.uint8)
    picture[1, 2, 2] = 160  # 60 grey levels off its neighbours, in green
    image = picture.float() / 255
    assert not lone_pixels(image, 60).any()  # "more than": exactly 60 off is not lone
    assert lone_pixels(image, 59.5).nonzero().tolist() == [[2, 2]]


def test_despeckle_gives_a_lone_pixel_its_neighbours_median_and_leaves_the_rest():
    picture = _specks()
    picture[0, 4:7, 6:9] = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.7, 0.6], [0.7, 0.8, 0.9]])  # red around it
    before = picture.clone()
    out = despeckle(picture, 60)
    assert torch.equal(picture, before)  # the input is left alone
    assert out[:, 5, 7].tolist() == pytest.approx([0.4, 0.5, 0.5])  # red: the lower median of 8 neighbours
    out[:, 5, 7] = before[:, 5, 7]
    assert torch.equal(out, before)  # no other pixel moved
    assert lone_pixels(despeckle(picture, 50), 50).sum() == 0
    unchanged = despeckle(picture, 0)
    assert torch.equal(unchanged, picture) and unchanged.data_ptr() != picture.data_ptr()
    with pytest.raises(ConfigError, match="levels >= 0"):
        despeckle(picture, -1)
