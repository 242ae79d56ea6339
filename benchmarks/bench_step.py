"""Time one optimisation step (objective forward + backward) and report achieved GFLOP/s.

    python benchmarks/bench_step.py [--sizes 256,512] [--repeats 5] [--peak 190]

Compares memory layouts in the same run and prints medians and the ratio to the plain NCHW layout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from flops import step_flops  # noqa: E402

import impasto  # noqa: E402
from impasto.api import _objective, _scaled_styles, load_extractor  # noqa: E402
from impasto.imageio import read_image, resize_to_long_edge  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"


def time_steps(objective, image: torch.Tensor, repeats: int) -> list[float]:
    image = image.clone().requires_grad_(True)
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        start = time.perf_counter()
        loss, _ = objective(image)
        torch.autograd.grad(loss, image)
        times.append(time.perf_counter() - start)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak", type=float, default=190.0, help="machine's fp32 peak in GFLOP/s")
    args = parser.parse_args()
    config = impasto.Config()
    layers = (config.content_layer, *config.style_layers)
    print("FLOPs: the VGG convolutions forward and backward to the pixels, plus the Gram matrices")
    photo = read_image(SHARED / "content/golden_gate.jpg")
    painting = read_image(SHARED / "style/starry_night.jpg")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'size':>9} {'layout':>14} {'s/step':>8} {'GFLOP/s':>8} {'% peak':>7} {'vs NCHW':>8}")
    for size in map(int, args.sizes.split(",")):
        content = resize_to_long_edge(photo, size)
        h, w = content.shape[1:]
        flops = step_flops((config.content_layer,), config.style_layers, h, w)
        baseline = None
        for layout in ("nchw", "channels_last"):
            extractor = load_extractor(None, config.pooling, layers, "cpu")
            if layout == "channels_last":
                extractor = extractor.to(memory_format=torch.channels_last)
            objective = _objective(extractor, content, _scaled_styles([painting], content, 1.0), config,
                                   torch.device("cpu"))
            image = content[None]
            if layout == "channels_last":
                image = image.contiguous(memory_format=torch.channels_last)
            median = statistics.median(time_steps(objective, image, args.repeats))
            baseline = baseline or median
            gflops = flops / median / 1e9
            print(f"{w:>4}x{h:<4} {layout:>14} {median:8.3f} {gflops:8.1f} {100 * gflops / args.peak:6.1f}% "
                  f"{baseline / median:7.2f}x")
            load_extractor.cache_clear()


if __name__ == "__main__":
    main()
