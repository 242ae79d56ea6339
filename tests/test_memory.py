"""The memory model and the guard: numbers counted by hand, and refusals before any work."""

import pytest
import torch

from impasto.config import Config
from impasto.errors import ConfigError
from impasto.memory import GB, OVERHEAD, estimate, kept_tensors, largest_fitting, pass_floats, plan

LAYERS = ("relu4_2", "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CPU = torch.device("cpu")


def test_kept_tensors_counted_by_hand():
    kept = dict(kept_tensors(LAYERS, "avg"))
    # Per input pixel: a relu's channels over 4 per pooling before it; pools hold a quarter of theirs.
    assert kept["relu1_1"] == 64 and kept["relu2_2"] == 32 and kept["relu3_4"] == 16 and kept["relu5_1"] == 2
    assert kept["pool1"] == 16 and kept["pool4"] == 2 and "relu5_2" not in kept
    assert sum(kept.values()) == 320
    assert dict(kept_tensors(LAYERS, "max"))["pool1"] == 48  # int64 indices besides the values


def test_checkpointing_keeps_less():
    # Plain: everything kept (320) + three gradients of relu1_1's size (192).
    assert pass_floats(LAYERS, "avg", False) == 320 + 192
    # Checkpointed: the six features (64+32+16+8+8+2) + the longest stretch rerun
    # (relu1_2, pool1 = 80) + the same gradients.
    assert pass_floats(LAYERS, "avg", True) == 130 + 80 + 192


def test_estimate_grows_linearly_with_pixels():
    config = Config()
    one, four = (estimate(config, 100 * k, 150 * k, False) - OVERHEAD for k in (1, 2))
    assert four == pytest.approx(4 * one)
    assert estimate(config, 100, 150, True) < estimate(config, 100, 150, False)
    bigger_style = config.replace(style_scale=4.0)  # the painting's pass dominates when it is 16× larger
    assert estimate(bigger_style, 1000, 1500, False) > estimate(config, 1000, 1500, False)


def test_plan_checkpoints_only_when_a_plain_run_would_not_fit():
    config = Config(max_size=3000)
    plain, checkpointed = (estimate(config, 2000, 3000, c) for c in (False, True))
    assert not plan(config.replace(max_memory=plain / GB * 1.01), 2000, 3000, CPU).checkpointed
    tight = plan(config.replace(max_memory=(plain + checkpointed) / 2 / GB), 2000, 3000, CPU)
    assert tight.checkpointed and tight.estimate == checkpointed


def test_plan_refuses_a_size_that_cannot_fit_and_names_one_that_can():
    config = Config(max_size=3840, max_memory=8.0)
    with pytest.raises(ConfigError, match=r"a 3840×2160 painting needs about \d+\.\d GB even with checkpointing, but max_memory is 8 GB") as caught:
        plan(config, 1080, 1920, CPU)
    fits = largest_fitting(config, 1080, 1920, 8 * GB)
    assert f"use max_size {fits} or less" in str(caught.value)
    assert plan(config.replace(max_size=fits), 1080, 1920, CPU).checkpointed
    with pytest.raises(ConfigError):
        plan(config.replace(max_size=fits + 1), 1080, 1920, CPU)


def test_default_budget_is_the_memory_available_here():
    # A 512 px run fits any machine that can run the tests; 100k px fits none.
    assert not plan(Config(), 512, 512, CPU).checkpointed
    with pytest.raises(ConfigError, match="available"):
        plan(Config(max_size=100_000), 512, 512, CPU)


def test_max_memory_must_be_positive():
    with pytest.raises(ConfigError, match="max_memory must be positive"):
        Config(max_memory=0)
