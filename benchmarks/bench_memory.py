"""Peak memory and speed against image size, in each way of using memory, up to 4K UHD (3840×2160).

    python benchmarks/bench_memory.py [--sizes 512,1024,2048,3840] [--steps 3] [--precision auto]

Each run is a fresh `impasto` process (one size, a few L-BFGS steps, golden_gate cropped to 16:9 ×
starry_night), so its peak RSS is its own. For each size it runs the mode impasto picks by itself
within this machine's memory, then each slower one (``impasto.memory.MODES``: plain keeping freed
memory for the next step, plain giving it back, checkpointed), forced with a --max-memory between
its estimate and the faster one's. It prints peak RSS beside impasto's estimate (which the guard
uses), bytes per pixel (flat if memory grows linearly with pixels), seconds per step, GFLOP/s, and
the largest size that fits in this machine's memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from flops import canvas_step_flops  # noqa: E402

import impasto  # noqa: E402
from impasto.device import uses_bfloat16  # noqa: E402
from impasto.config import PRECISIONS  # noqa: E402
from impasto.imageio import long_edge_shape, read_image, read_metadata, save_image  # noqa: E402
from impasto.errors import ConfigError  # noqa: E402
from impasto.memory import GB, MODES, available, estimate, largest_fitting, plan  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
PAINTING = SHARED / "style/starry_night.jpg"
MODE_NAMES = ("keeping", "returning", "checkpointed")  # MODES' words


def wide_photo(folder: Path) -> Path:
    """golden_gate cropped to 16:9, so that 3840 px is exactly 4K UHD."""
    photo = read_image(SHARED / "content/golden_gate.jpg")
    height = round(photo.shape[2] * 9 / 16)
    top = (photo.shape[1] - height) // 2
    return save_image(photo[:, top:top + height], folder / "golden_gate_16x9.png")


def run(photo: Path, size: int, steps: int, folder: Path, max_memory: float | None, precision: str) -> dict:
    """One impasto process; returns its peak RSS, seconds per step and whether it computed in bfloat16."""
    log, output = folder / f"log-{size}.jsonl", folder / f"out-{size}.png"
    command = ["impasto", str(photo), str(PAINTING), "-o", str(output), "-s", str(size),
               "--scales", "1", "-n", str(steps), "--tolerance", "0", "--log-json", str(log), "-q",
               "--precision", precision]
    if max_memory:
        command += ["--max-memory", f"{max_memory:.3f}"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        return {"error": stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {status}"}
    elapsed = [json.loads(line)["elapsed"] for line in log.read_text().splitlines()]
    meta = read_metadata(output)
    return {"rss": usage.ru_maxrss * 1024, "step_s": statistics.median(b - a for a, b in zip(elapsed, elapsed[1:])),
            "bfloat16": meta["bfloat16"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="512,1024,2048,3840")
    parser.add_argument("--steps", type=int, default=3, help="steps per run, at least 2 (the median time between "
                        "steps is shown)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2: a step's time is the time between two")
    config = impasto.Config(scales=1)  # as the runs: one size, so no composition term's pass
    layers = config.layers
    budget = available(torch.device("cpu"))
    bfloat16 = uses_bfloat16(args.precision, torch.device("cpu"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {budget / GB:.1f} GB available")
    print(f"{'size':>10} {'pixels':>7} {'mode':>12} {'dtype':>5} {'peak RSS':>9} {'estimate':>9} {'B/pixel':>8} "
          f"{'s/step':>7} {'GFLOP/s':>8}")
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        photo = wide_photo(folder)
        photo_height, photo_width = read_image(photo).shape[1:]
        held = read_image(photo).nbytes + read_image(PAINTING).nbytes  # the inputs as read, counted by the guard
        for size in map(int, args.sizes.split(",")):
            height, width = long_edge_shape(photo_height, photo_width, size)
            needs = [estimate(config, height, width, c, bfloat16, keeps) + held for c, keeps in MODES]
            try:  # what the run will pick by itself (the memory available may change a little meanwhile)
                chosen = plan(config.replace(max_size=size), photo_height, photo_width, torch.device("cpu"),
                              bfloat16, held)
                first = MODES.index((chosen.checkpointed, chosen.keeps_freed))
            except ConfigError:
                first = len(MODES) - 1  # run it to show the refusal
            label = f"{width}x{height}"
            for index in range(first, len(MODES)):
                max_memory = None if index == first else (needs[index - 1] + needs[index]) / 2 / GB
                row = run(photo, size, args.steps, folder, max_memory, args.precision)
                mode = MODE_NAMES[index]
                if "error" in row:
                    print(f"{label:>10} {height * width / 1e6:6.2f}M {mode:>12}  refused or failed: {row['error']}")
                    continue
                gflops = canvas_step_flops(config, height, width) / row["step_s"] / 1e9
                dtype = "bf16" if row["bfloat16"] else "fp32"
                print(f"{label:>10} {height * width / 1e6:6.2f}M {mode:>12} {dtype:>5} {row['rss'] / GB:8.2f}G "
                      f"{needs[index] / GB:8.2f}G {row['rss'] / (height * width):8.0f} {row['step_s']:7.2f} {gflops:8.1f}",
                      flush=True)
    fits = largest_fitting(impasto.Config(), photo_height, photo_width, budget - held, bfloat16)  # the default schedule
    print(f"largest 16:9 size the default schedule fits in {budget / GB:.1f} GB (checkpointed): {fits} px long edge; "
          f"layers {', '.join(layers)}")


if __name__ == "__main__":
    main()
