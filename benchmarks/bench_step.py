"""Time one optimisation step (objective forward + backward) and report achieved GFLOP/s.

    python benchmarks/bench_step.py [--sizes 256,512] [--repeats 5] [--peak 190] [--device cpu]

Compares, in the same run, the plain NCHW layout, channels-last (impasto's layout), checkpointing,
bfloat16 autocast (impasto's default on CPUs with AVX-512 BF16), with and without each convolution
fused with its ReLU (impasto's extractor on the CPU), and (with --compile) torch.compile;
prints medians, the ratio to NCHW and the first step's time (a warm-up; compiled, the compilation).
A step is timed on the canvas a run paints: the picture with its margin (``Config.margin``).
Achieved GFLOP/s is given against the nominal fp32 peak (--peak, BRIEF's 190 GFLOP/s for this
machine) and against one large convolution measured in the same run, the practical fp32 ceiling
here. bfloat16 rows count the same FLOPs, so they can pass 100 %. With --device cuda the same
variants run on the GPU (its convolutions in TF32, PyTorch's default there), timed between
synchronisations; --peak is then that GPU's rate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from flops import canvas_step_flops  # noqa: E402

import impasto  # noqa: E402
from impasto.api import _objective, _scaled_styles  # noqa: E402
from impasto.device import resolve_device  # noqa: E402
from impasto.imageio import canvas_margin, read_image, resize_to_long_edge, with_margin  # noqa: E402
from impasto.vgg import VGGFeatures, load_weights  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work: GPU kernels run asynchronously."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(objective, image: torch.Tensor, repeats: int) -> list[float]:
    image = image.clone().requires_grad_(True)
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up (and, compiled, the compilation)
        synchronize(image.device)
        start = time.perf_counter()
        loss, _ = objective(image)
        torch.autograd.grad(loss, image)
        synchronize(image.device)
        times.append(time.perf_counter() - start)
    return times


# name: (channels_last, checkpointed, torch.compile, precision, conv+ReLU fused). The precision is
# explicit: impasto's "auto" would run every variant in bfloat16 on a CPU that has it.
VARIANTS = {
    "NCHW": (False, False, False, "float32", False),  # plain PyTorch
    "channels-last": (True, False, False, "float32", True),  # impasto's layout
    "checkpointed": (True, True, False, "float32", True),  # what impasto does when a size would not fit
    "bf16 unfused": (True, False, False, "bfloat16", False),  # version 0.9.2's step
    "bf16 autocast": (True, False, False, "bfloat16", True),  # impasto's default on CPUs with AVX-512 BF16
    # with --compile (inductor fuses on its own): a cold compilation took ~20 s on 2 cores
    "compiled": (True, False, True, "float32", False),
    "compiled bf16": (True, False, True, "bfloat16", False),
}


def conv_gflops(device: torch.device, channels: int = 256, height: int = 96, width: int = 128,
                repeats: int = 5) -> float:
    """The machine's practical fp32 ceiling for this work: median GFLOP/s of one large 3×3 convolution
    (oneDNN or cuDNN, channels-last), the operation that takes ~80 % of a step. (A matrix product is
    no ceiling here: MKL's sgemm on AMD CPUs runs slower than oneDNN's convolutions.)"""
    if device.type == "cuda":  # 16 times the pixels: one CPU-sized image leaves most of a GPU idle
        height, width, repeats = 4 * height, 4 * width, 20
    x = torch.randn(1, channels, height, width, device=device).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(channels, channels, 3, 3, device=device).contiguous(memory_format=torch.channels_last)
    times = []
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        torch.nn.functional.conv2d(x, weight, padding=1)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 2 * channels**2 * 9 * height * width / statistics.median(times[1:]) / 1e9


def measure(photo: torch.Tensor, painting: torch.Tensor, size: int, config: impasto.Config, device: torch.device,
            repeats: int, compiled_too: bool = False) -> tuple[tuple[int, int], float, list[tuple[str, float, float]]]:
    """One step of each variant on the photo at ``size`` px: the canvas a run paints (the picture
    and its margin, at most an eighth of the short edge), the FLOPs of a step on it, and (variant,
    median seconds, first step's seconds) for each variant."""
    content = resize_to_long_edge(photo, size)
    canvas = with_margin(content[None], canvas_margin(config.margin, *content.shape[1:])).to(device)
    flops = canvas_step_flops(config, *content.shape[1:])
    layers = config.layers
    rows = []
    for name, (channels_last, checkpointed, compiled, precision, fused) in VARIANTS.items():
        if compiled and not compiled_too:
            continue
        extractor = VGGFeatures(load_weights(), layers, config.pooling, channels_last, checkpointed, fused).to(device)
        objective = _objective(extractor, content, _scaled_styles([painting], content, 1.0),
                               config.replace(precision=precision), device)
        if compiled:
            objective.extractor = torch.compile(extractor)
        first, *times = time_steps(objective, canvas, repeats)
        rows.append((name, statistics.median(times), first))
    return tuple(canvas.shape[2:]), flops, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak", type=float, default=190.0, help="machine's fp32 peak in GFLOP/s")
    parser.add_argument("--compile", action="store_true", help="also time the extractor under torch.compile")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    args = parser.parse_args()
    device = resolve_device(args.device)
    config = impasto.Config()
    print("FLOPs: the VGG convolutions forward and backward to the pixels, plus the Gram matrices")
    photo = read_image(SHARED / "content/golden_gate.jpg")
    painting = read_image(SHARED / "style/starry_night.jpg")
    ceiling = conv_gflops(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}; fp32 peak: {args.peak:.0f} GFLOP/s nominal, "
          f"{ceiling:.0f} GFLOP/s measured (one 256-channel 3×3 convolution)")
    print(f"canvas: the picture and its {config.margin} px margin on each side, as a run paints it")
    print(f"{'canvas':>9} {'variant':>14} {'s/step':>8} {'GFLOP/s':>8} {'% peak':>7} {'% conv':>7} {'vs NCHW':>8} {'1st step':>9}")
    for size in map(int, args.sizes.split(",")):
        (h, w), flops, rows = measure(photo, painting, size, config, device, args.repeats, args.compile)
        baseline = rows[0][1]
        for name, median, first in rows:
            gflops = flops / median / 1e9
            print(f"{w:>4}x{h:<4} {name:>14} {median:8.3f} {gflops:8.1f} {100 * gflops / args.peak:6.1f}% "
                  f"{100 * gflops / ceiling:6.1f}% {baseline / median:7.2f}x {first:8.1f}s", flush=True)


if __name__ == "__main__":
    main()
