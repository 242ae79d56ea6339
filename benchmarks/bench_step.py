"""Time one optimisation step (objective forward + backward) and report achieved GFLOP/s.

    python benchmarks/bench_step.py [--sizes 256,512] [--repeats 5] [--peak 190]

Compares, in the same run, the plain NCHW layout, channels-last (impasto's default), checkpointing,
bfloat16 autocast and (with --compile) torch.compile; prints medians and the ratio to NCHW.
Achieved GFLOP/s is given against the nominal peak (--peak, BRIEF's 190 GFLOP/s for this machine)
and against a large matrix product measured in the same run, the practical ceiling of fp32 here.
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
from impasto.api import _objective, _scaled_styles  # noqa: E402
from impasto.imageio import read_image, resize_to_long_edge  # noqa: E402
from impasto.vgg import VGGFeatures, load_weights  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"


def time_steps(objective, image: torch.Tensor, repeats: int, bf16: bool = False) -> list[float]:
    image = image.clone().requires_grad_(True)
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up (and, compiled, the compilation)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = objective(image)
        torch.autograd.grad(loss, image)
        times.append(time.perf_counter() - start)
    return times[1:]


# name: (channels_last, checkpointed, torch.compile, bfloat16 autocast)
VARIANTS = {
    "NCHW": (False, False, False, False),
    "channels-last": (True, False, False, False),  # impasto's default
    "checkpointed": (True, True, False, False),  # what impasto does when a size would not fit
    "bf16 autocast": (True, False, False, True),
    "compiled": (True, False, True, False),  # with --compile: compiling takes minutes on 2 cores
}


def sgemm_gflops(n: int = 4096, repeats: int = 3) -> float:
    """The machine's practical fp32 peak: median GFLOP/s of a large matrix product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times[1:]) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak", type=float, default=190.0, help="machine's fp32 peak in GFLOP/s")
    parser.add_argument("--compile", action="store_true", help="also time the extractor under torch.compile")
    args = parser.parse_args()
    config = impasto.Config()
    layers = (config.content_layer, *config.style_layers)
    print("FLOPs: the VGG convolutions forward and backward to the pixels, plus the Gram matrices")
    photo = read_image(SHARED / "content/golden_gate.jpg")
    painting = read_image(SHARED / "style/starry_night.jpg")
    sgemm = sgemm_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; peak: {args.peak:.0f} GFLOP/s nominal, "
          f"{sgemm:.0f} GFLOP/s measured (4096² matrix product)")
    print(f"{'size':>9} {'variant':>14} {'s/step':>8} {'GFLOP/s':>8} {'% peak':>7} {'% sgemm':>8} {'vs NCHW':>8}")
    for size in map(int, args.sizes.split(",")):
        content = resize_to_long_edge(photo, size)
        h, w = content.shape[1:]
        flops = step_flops((config.content_layer,), config.style_layers, h, w)
        baseline = None
        for name, (channels_last, checkpointed, compiled, bf16) in VARIANTS.items():
            if compiled and not args.compile:
                continue
            extractor = VGGFeatures(load_weights(), layers, config.pooling, channels_last, checkpointed)
            objective = _objective(extractor, content, _scaled_styles([painting], content, 1.0), config,
                                   torch.device("cpu"))
            if compiled:
                objective.extractor = torch.compile(extractor)
            median = statistics.median(time_steps(objective, content[None], args.repeats, bf16))
            baseline = baseline or median
            gflops = flops / median / 1e9
            print(f"{w:>4}x{h:<4} {name:>14} {median:8.3f} {gflops:8.1f} {100 * gflops / args.peak:6.1f}% "
                  f"{100 * gflops / sgemm:7.1f}% {baseline / median:7.2f}x", flush=True)


if __name__ == "__main__":
    main()
