"""The memory model and the guard: numbers counted by hand, and refusals before any work."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from impasto.config import MAX_SIZE, Config
from impasto.errors import ConfigError
from helpers import GLIBC, ON_GLIBC, bytes_mapped_for_a_new_block
from impasto.memory import (GB, MODES, OVERHEAD, SLACK, MemoryPlan, available, estimate, kept_tensors,
                            largest_fitting, manage_freed_memory, pass_bytes, plan, run_on_the_heap)

LAYERS = ("relu4_2", "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CPU = torch.device("cpu")


def test_kept_tensors_counted_by_hand():
    kept = dict(kept_tensors(LAYERS, "avg"))
    # Bytes per input pixel in float32: 4 × a relu's channels over 4 per pooling before it; pools
    # hold a quarter of theirs.
    assert kept["relu1_1"] == 4 * 64 and kept["relu2_2"] == 4 * 32 and kept["relu3_4"] == 4 * 16
    assert kept["relu5_1"] == 4 * 2
    assert kept["pool1"] == 4 * 16 and kept["pool4"] == 4 * 2 and "relu5_2" not in kept
    assert sum(kept.values()) == 4 * 320
    assert dict(kept_tensors(LAYERS, "max"))["pool1"] == 16 * (4 + 8)  # an int64 index besides each value
    # bfloat16 halves the values, not max pooling's indices.
    assert sum(dict(kept_tensors(LAYERS, "avg", 2)).values()) == 2 * 320
    assert dict(kept_tensors(LAYERS, "max", 2))["pool1"] == 16 * (2 + 8)


def test_a_requested_convolution_is_kept_beside_its_relu():
    # A ReLU works in place unless its convolution's output is asked for; conv1_1 alone keeps no ReLU at all.
    assert kept_tensors(("conv1_1",), "avg") == [("conv1_1", 4 * 64)]
    assert dict(kept_tensors(("conv2_1", "relu1_1"), "avg")) == {"relu1_1": 4 * 64, "relu1_2": 4 * 64, "pool1": 4 * 16,
                                                                 "conv2_1": 4 * 32}
    assert pass_bytes(("conv1_1",), "avg", False) == 4 * (64 + 3 * 64)
    assert pass_bytes(("conv1_1",), "avg", True) == 4 * (64 + 0 + 3 * 64)  # nothing between it and the input
    shallow = Config(content_layer="conv1_1", style_layers=("conv1_1",), style_layer_weights=())
    squeezed = shallow.replace(max_memory=0.99 * estimate(shallow, 384, 512, False, keeps_freed=False) / GB)
    assert plan(squeezed, 384, 512, CPU).checkpointed  # it had failed: max() of no ReLU


def test_checkpointing_keeps_less():
    # Plain: everything kept (320 values) + three gradients of relu1_1's size (192).
    assert pass_bytes(LAYERS, "avg", False) == 4 * (320 + 192)
    # Checkpointed: the six features (64+32+16+8+8+2) + the longest stretch rerun
    # (relu1_2, pool1 = 80) + the same gradients.
    assert pass_bytes(LAYERS, "avg", True) == 4 * (130 + 80 + 192)
    assert pass_bytes(LAYERS, "avg", True, value_bytes=2) == 2 * (130 + 80 + 192)


def test_bfloat16_features_need_less_memory_but_the_same_for_the_optimizer():
    config = Config(composition_weight=0.0, margin=0)  # one pass of VGG-19 per step (the composition pass: below)
    float32, bfloat16 = (estimate(config, 1000, 1500, False, b) - OVERHEAD for b in (False, True))
    # A margin of 8 px paints a canvas of 1016 × 1516 px, whose memory the run needs too.
    margin = estimate(config.replace(margin=8), 1000, 1500, False) - OVERHEAD
    assert margin == pytest.approx(float32 * 1016 * 1516 / (1000 * 1500))
    # Per pixel, float32: 1.9 × (512 × 4 + L-BFGS's 3 × 46 floats × 4), less relu4_3, relu4_4, pool4 and
    # relu5_1 (2 × 8 + 2 × 2 values): a print's last size has no relu5_1; bfloat16 halves the first part.
    assert float32 == pytest.approx(1.9 * 1000 * 1500 * (2048 - 80 + 552))
    assert bfloat16 == pytest.approx(1.9 * 1000 * 1500 * (1024 - 40 + 552))
    one_size = config.replace(max_size=1000)  # with relu5_1
    assert estimate(one_size, 1000, 1000, False) - OVERHEAD == pytest.approx(1.9 * 1000 * 1000 * (2048 + 552))
    # So a budget between the two keeps freed memory in bfloat16 but must give it back in float32.
    between = config.replace(max_size=1500, max_memory=(OVERHEAD + (float32 + bfloat16) / 2) / GB)
    assert plan(between, 1000, 1500, CPU, bfloat16=True).keeps_freed
    assert not plan(between, 1000, 1500, CPU).keeps_freed


def test_adam_keeps_fewer_floats_a_pixel_than_lbfgs():
    config = Config(optimizer="adam", composition_weight=0.0, margin=0, max_size=1000)  # one size, with relu5_1
    # Per pixel: 1.9 × (512 feature values × 4 + 3 × 6 floats × 4: the pixels, their gradient and Adam's two
    # moments, and the like); L-BFGS's 3 × (2 × 20 past steps + 6) floats would make it 2048 + 552 = 2600.
    assert (estimate(config, 1000, 1000, False) - OVERHEAD) / 1.9e6 == pytest.approx(2048 + 72)
    assert (estimate(config.replace(optimizer="lbfgs"), 1000, 1000, False) - OVERHEAD) / 1.9e6 == pytest.approx(2600)


@pytest.mark.parametrize("bfloat16", [False, True])
def test_the_paintings_grams_are_counted_in_float32_at_style_scale_squared(bfloat16):
    config = Config(style_scale=4.0, margin=0, max_size=1000, composition_weight=0.0)
    # The painting is read at 4² = 16 times the picture's pixels, and its Grams taken in float32 whatever
    # the run's precision, two layers alive at once: 16 × 2 × relu1_1's 64 × 4 bytes = 8192 a picture's
    # pixel, more than the optimisation's 2600 (so it is what the estimate counts).
    assert (estimate(config, 1000, 1000, False, bfloat16) - OVERHEAD) / 1.9e6 == pytest.approx(16 * 2 * 64 * 4)


def test_estimate_grows_linearly_with_pixels():
    config = Config(margin=0)  # a margin is a fixed number of pixels more on each edge
    one, four = (estimate(config, 100 * k, 150 * k, False) - OVERHEAD for k in (1, 2))
    assert four == pytest.approx(4 * one)
    assert estimate(config, 100, 150, True) < estimate(config, 100, 150, False)
    bigger_style = config.replace(style_scale=4.0)  # the painting's pass dominates when it is 16× larger
    assert estimate(bigger_style, 1000, 1500, False) > estimate(config, 1000, 1500, False)


def test_the_composition_pass_is_counted_at_the_first_size():
    on, off = Config(), Config(composition_weight=0.0)
    per_pixel = SLACK[False, True] * pass_bytes(LAYERS, on.pooling, False)
    # 2048 px is 512 → 1024 → 2048: the shrunk picture's pass adds its canvas's features, 512×384 px and
    # a margin of 8 px.
    assert estimate(on, 1536, 2048, False) - estimate(off, 1536, 2048, False) == pytest.approx(528 * 400 * per_pixel)
    assert estimate(on, 750, 1000, False) == estimate(off, 750, 1000, False)  # one size: no such pass


@pytest.mark.skipif(not ON_GLIBC, reason="giving freed memory back is glibc's")
def test_plan_takes_the_fastest_way_to_use_memory_that_fits():
    config = Config(max_size=3000)
    keeping, returning, checkpointed = (estimate(config, 2000, 3000, c, keeps_freed=k) for c, k in MODES)
    assert keeping > returning > checkpointed
    # Per pixel: 1.9 and 1.1 times the same tensors, plain; 1.0 times fewer, checkpointed.
    assert (keeping - OVERHEAD) / (returning - OVERHEAD) == pytest.approx(1.9 / 1.1)
    assert estimate(config, 2000, 3000, False) == keeping and estimate(config, 2000, 3000, True) == checkpointed
    budgets = [keeping * 1.01, (keeping + returning) / 2, (returning + checkpointed) / 2]
    for budget, mode, need in zip(budgets, MODES, (keeping, returning, checkpointed)):
        chosen = plan(config.replace(max_memory=budget / GB), 2000, 3000, CPU)
        assert (chosen.checkpointed, chosen.keeps_freed, chosen.estimate) == (*mode, need)
    # A GPU's allocator is not glibc's: there a plain run that does not fit checkpoints.
    gpu = plan(config.replace(max_memory=budgets[1] / GB), 2000, 3000, torch.device("cuda"))
    assert (gpu.checkpointed, gpu.keeps_freed) == (True, False)


def test_plan_refuses_a_size_that_cannot_fit_and_names_one_that_can():
    config = Config(max_size=3840, max_memory=8.0)
    with pytest.raises(ConfigError, match=r"a 3840×2160 painting needs about \d+\.\d\d GB even with checkpointing, but max_memory is 8 GB") as caught:
        plan(config, 1080, 1920, CPU)
    fits = largest_fitting(config, 1080, 1920, 8 * GB)
    assert f"use max_size {fits} or less" in str(caught.value)
    assert plan(config.replace(max_size=fits), 1080, 1920, CPU).checkpointed
    with pytest.raises(ConfigError, match=f"use max_size {fits} or less \\(at 300 dpi, a print "
                                          f"{fits / 300 * 2.54:.1f} cm long\\), or a dpi of {fits * 300 // 3840} "
                                          "or less for a print this long$"):  # a --print-size's dpi
        plan(config.replace(dpi=300), 1080, 1920, CPU)
    lower_dpi = fits * 300 // 3840  # 32.5 cm long at that dpi fits
    assert plan(config.replace(max_size=round(3840 / 300 * lower_dpi), dpi=lower_dpi), 1080, 1920, CPU)
    with pytest.raises(ConfigError):
        plan(config.replace(max_size=fits + 1), 1080, 1920, CPU)
    # The paintings are read at the picture's pixels (times style_scale²), not the canvas's
    assert estimate(Config(style_scale=16), 384, 512, False) == estimate(Config(style_scale=16, margin=0), 384, 512, False)
    # A painting read at style_scale² the picture's pixels can be what does not fit: say so.
    with pytest.raises(ConfigError, match=r"or less, or a style_scale below 16$"):
        plan(Config(max_size=512, style_scale=16, max_memory=4.0), 1080, 1920, CPU)


def test_the_size_a_refusal_advises_leaves_room_for_the_inputs_already_held():
    config = Config(max_size=3840, max_memory=8.0)
    held = 2 * GB  # the photo and paintings as read: only 6 GB are left for the painting
    fits = largest_fitting(config, 1080, 1920, 8 * GB - held)
    assert fits < largest_fitting(config, 1080, 1920, 8 * GB)  # 2137 px, not the 2515 px of all 8 GB
    with pytest.raises(ConfigError, match=f"use max_size {fits} or less$"):
        plan(config, 1080, 1920, CPU, held=held)
    assert plan(config.replace(max_size=fits), 1080, 1920, CPU, held=held).checkpointed  # the advice is taken
    with pytest.raises(ConfigError):
        plan(config.replace(max_size=fits + 1), 1080, 1920, CPU, held=held)


def test_masks_and_the_inputs_are_counted():
    config = Config(max_size=1000)  # one size: no composition pass
    plain, one, two = (estimate(config.replace(masks=("m.png",) * n), 750, 1000, False) for n in (0, 1, 2))
    assert two - one == pytest.approx(one - plain)
    # float32 products of the five style layers' features with the mask: 64 + 32 + 16 + 8 + 2 values a pixel
    # on the canvas: 8 px more each side
    assert (one - plain) / SLACK[False, True] == pytest.approx(766 * 1016 * 122 * 4)
    held = 0.3 * GB
    assert plan(config, 750, 1000, CPU, held=held).estimate == pytest.approx(estimate(config, 750, 1000, False) + held)


def test_the_composition_pass_is_counted_at_the_first_size_that_runs():
    config = Config(max_size=2048, composition_weight=1.0)
    without = estimate(config.replace(composition_weight=0.0), 1536, 2048, False)
    first_runs = estimate(config, 1536, 2048, False) - without  # at 512 px
    first_skipped = estimate(config.replace(coarse_iterations=0), 1536, 2048, False) - without  # at 1024 px
    assert first_skipped / first_runs == pytest.approx(784 * 1040 / (400 * 528))  # the canvases at 1024 and 512 px


def test_a_budget_below_the_smallest_run_asks_for_memory():
    config = Config(max_size=64, max_memory=0.1)  # below the fixed overhead
    assert largest_fitting(config, 48, 64, 0.1 * GB) == 0
    with pytest.raises(ConfigError, match="max_memory is 0.1 GB: raise max_memory"):
        plan(config, 48, 64, CPU)


def test_default_budget_is_the_memory_available_here():
    # A 512 px run fits any machine that can run the tests; the largest size (65535 px, 4 TB) fits none.
    assert not plan(Config(), 512, 512, CPU).checkpointed
    with pytest.raises(ConfigError, match="available"):
        plan(Config(max_size=MAX_SIZE), 512, 512, CPU)


def test_without_proc_or_sysconf_only_max_memory_guards(monkeypatch):
    # macOS has no /proc/meminfo; Windows has no os.sysconf either: no guess, the run is not refused
    real_open = open

    def no_proc(path, *args, **kwargs):
        if str(path) == "/proc/meminfo":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc)
    assert available(CPU) == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # macOS: all of the RAM
    monkeypatch.delattr(os, "sysconf")
    assert available(CPU) == math.inf
    assert not plan(Config(max_size=20_000), 512, 512, CPU).checkpointed
    with pytest.raises(ConfigError, match="max_memory is 1 GB"):
        plan(Config(max_size=20_000, max_memory=1.0), 512, 512, CPU)


def test_max_memory_must_be_positive():
    with pytest.raises(ConfigError, match="max_memory must be positive"):
        Config(max_memory=0)


@pytest.fixture
def allocator():
    """A run going on (``run_on_the_heap``), and glibc's allocator left as a run leaves it, for the
    tests after this one."""
    with run_on_the_heap():
        yield


@pytest.mark.skipif(not GLIBC, reason="sets glibc's allocator")
@pytest.mark.usefixtures("allocator")
def test_a_run_that_may_keep_freed_memory_keeps_it_for_its_next_step_and_another_returns_it():
    manage_freed_memory(keep=True)
    assert bytes_mapped_for_a_new_block() == 0
    manage_freed_memory(keep=False)
    assert bytes_mapped_for_a_new_block() >= 16 << 20
    manage_freed_memory(keep=True)  # and back: the heap takes large blocks again
    assert bytes_mapped_for_a_new_block() == 0


@pytest.mark.skipif(not GLIBC, reason="sets glibc's allocator")
def test_while_two_runs_go_on_neither_keeps_freed_memory_and_the_last_to_end_restores_glibc():
    with run_on_the_heap():
        manage_freed_memory(keep=False)  # a run that must save memory
        with run_on_the_heap():  # and a second one that may keep it: it leaves the first's setting
            manage_freed_memory(keep=True)
            assert bytes_mapped_for_a_new_block() >= 16 << 20
        assert bytes_mapped_for_a_new_block() >= 16 << 20  # the second's end left the first's setting
        manage_freed_memory(keep=True)  # alone again, at its next size
        assert bytes_mapped_for_a_new_block() == 0
    assert bytes_mapped_for_a_new_block(33 << 20) >= 33 << 20  # blocks over 32 MB mapped, as glibc ends up


# In a fresh process (the test's own has made threads with heaps of their own, which glibc may hand to
# a new thread): whether a run in a new thread keeps freed memory, with or without one heap for all.
IN_A_THREAD = """
import threading
from impasto import memory
from helpers import bytes_mapped_for_a_new_block
mapped = []
def run():
    with memory.run_on_the_heap():
        memory.manage_freed_memory(keep=True)
        mapped.append(bytes_mapped_for_a_new_block())
worker = threading.Thread(target=run)
worker.start()
worker.join()
run()  # and in the main thread
print(*mapped)
"""


@pytest.mark.skipif(not GLIBC, reason="sets glibc's allocator")
@pytest.mark.parametrize("heap", ["own", "shared"])
def test_a_run_in_another_thread_keeps_freed_memory_only_on_the_main_heap(heap):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    if heap == "shared":
        env["MALLOC_ARENA_MAX"] = "1"  # every thread allocates from the main heap
    done = subprocess.run([sys.executable, "-c", IN_A_THREAD], capture_output=True, text=True, env=env, check=True)
    in_thread, in_main = map(int, done.stdout.split())
    assert in_main == 0  # the main thread's run keeps freed blocks on the heap
    if heap == "shared":
        assert in_thread == 0
    else:  # a secondary heap maps large blocks whatever the setting: keeping them there would only hold more
        assert in_thread >= 16 << 20


def test_a_run_that_saves_memory_counts_its_steps_slower():
    assert MemoryPlan(checkpointed=False, keeps_freed=True, estimate=1.0).slowdown == 1.0
    assert MemoryPlan(checkpointed=False, keeps_freed=False, estimate=1.0).slowdown == 1.65
    assert MemoryPlan(checkpointed=True, keeps_freed=False, estimate=1.0).slowdown == pytest.approx(1.65 * 1.35)
