"""impasto against the peer `pastiche`, on the same objective, scored by one evaluator.

    python benchmarks/bench_pastiche.py [--sizes 256,512] [--out bench-out]

Both tools paint golden_gate × starry_night on pastiche's default objective (content 0.01·MSE at
relu4_2; style Σ 10·MSE of Gram/(C·H·W) over relu1_1 … relu5_1; max pooling; no TV), with the same
VGG-19 weights. pastiche runs its own command line with its defaults (L-BFGS, 300 steps at 256 px,
1000 at 512 px) and saves its image every few steps; impasto runs its default schedule on that
objective and saves snapshots too. The evaluator scores every saved 8-bit image on the content and
style terms separately, and the table gives, per tool, both terms against wall time, then the
speed-up: pastiche's wall time over the time at which impasto first scores at least as well as
pastiche's final image on both terms. Runs take long (pastiche needs ~4 min at 256 px and ~47 min at
512 px on a 2-core CPU); the benchmark is run on demand, not in CI.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

import impasto
from impasto.api import load_extractor
from impasto.imageio import read_image, resize_to_long_edge, resize_to_pixels, save_image
from impasto.objective import Objective

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
CONTENT, STYLE = SHARED / "content/golden_gate.jpg", SHARED / "style/starry_night.jpg"
PASTICHE_STEPS = {256: 300, 512: 1000}  # pastiche's defaults for these sizes
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

# pastiche's default objective expressed as an impasto Config (layer weights are normalised to sum
# to 1, so β = 10 per layer × 5 layers).
PEER_OBJECTIVE = dict(content_weight=0.01, style_weight=50.0, pooling="max", tv_weight=0.0,
                      style_layers=STYLE_LAYERS, style_layer_weights=(1.0,) * 5)


class Evaluator:
    """Scores saved images on the peer objective: (content term, style term)."""

    def __init__(self, size: int) -> None:
        config = impasto.Config(max_size=size, **PEER_OBJECTIVE)
        photo = resize_to_long_edge(read_image(CONTENT), size)
        painting = resize_to_pixels(read_image(STYLE), photo.shape[1] * photo.shape[2])
        extractor = load_extractor(None, "max", ("relu4_2", *STYLE_LAYERS), "cpu")
        self.objective = Objective(
            extractor, photo[None], [painting[None]], content_layer="relu4_2",
            style_layer_weights=dict(zip(STYLE_LAYERS, config.style_layer_weights)),
            content_weight=config.content_weight, style_weight=config.style_weight, tv_weight=0.0)
        self.shape = tuple(photo.shape[1:])

    @torch.no_grad()
    def __call__(self, path: Path) -> tuple[float, float]:
        image = read_image(path)
        if tuple(image.shape[1:]) != self.shape:
            image = impasto.imageio.resize(image, *self.shape)
        _, terms = self.objective(image[None])
        content = sum(float(v) for k, v in terms.items() if k.startswith("content/"))
        style = sum(float(v) for k, v in terms.items() if k.startswith("style/"))
        return content, style


def run_pastiche(size: int, folder: Path) -> tuple[list[tuple[float, Path]], float]:
    """pastiche's CLI at its defaults; returns (seconds, snapshot) pairs and its wall time."""
    workspace = folder / "pastiche"
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    output = folder / f"pastiche-{size}.png"
    step = max(PASTICHE_STEPS[size] // 30, 5)
    started = time.time()
    subprocess.run(["pastiche", "--content", str(CONTENT), "--styles", str(STYLE), "--output", str(output),
                    "--size", str(size), "--num-steps", str(PASTICHE_STEPS[size]), "--seed", "0",
                    "--workspace", str(workspace), "--workspace-step", str(step), "--no-verbose"],
                   check=True)
    wall = time.time() - started
    snapshots = sorted(workspace.glob("*.png"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    timed = [(p.stat().st_mtime - started, p) for p in snapshots] + [(wall, output)]
    return timed, wall


def run_impasto(size: int, folder: Path, every: int) -> tuple[list[tuple[float, Path]], float]:
    """impasto's default schedule on the peer objective, saving a snapshot every few steps."""
    snapshots_dir = folder / "impasto"
    shutil.rmtree(snapshots_dir, ignore_errors=True)
    snapshots_dir.mkdir(parents=True)
    config = impasto.Config(max_size=size, tolerance=0.0, **PEER_OBJECTIVE)
    timed: list[tuple[float, Path]] = []
    paused = 0.0  # time spent saving snapshots, not charged to impasto

    def snapshot(event: impasto.ProgressEvent) -> None:
        nonlocal paused
        if event.scale == event.scales - 1 and (event.step % every == 0 or event.step == event.total):
            began = time.perf_counter()
            path = save_image(event.image, snapshots_dir / f"{event.step:05d}.png")
            timed.append((event.elapsed - paused, path))
            paused += time.perf_counter() - began

    started = time.perf_counter()
    result = impasto.stylize(CONTENT, STYLE, config, callback=snapshot)
    wall = time.perf_counter() - started - paused
    final = result.save(folder / f"impasto-{size}.png")
    return timed + [(wall, final)], wall


def first_as_good(scored: list[tuple[float, float, float]], content: float, style: float) -> float | None:
    """The first time at which both terms are at most the reference's."""
    return next((t for t, c, s in scored if c <= content and s <= style), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--out", default="bench-out", type=Path)
    parser.add_argument("--every", type=int, default=10, help="impasto snapshot interval in steps")
    args = parser.parse_args()
    summary = {}
    for size in map(int, args.sizes.split(",")):
        folder = args.out / str(size)
        folder.mkdir(parents=True, exist_ok=True)
        peer, peer_wall = run_pastiche(size, folder)
        ours, our_wall = run_impasto(size, folder, args.every)
        evaluate = Evaluator(size)
        scored = {name: [(t, *evaluate(p)) for t, p in runs] for name, runs in (("pastiche", peer), ("impasto", ours))}
        _, final_content, final_style = scored["pastiche"][-1]
        reached = first_as_good(scored["impasto"], final_content, final_style)
        print(f"\n== {size} px: golden_gate × starry_night, pastiche objective ==")
        print(f"{'tool':>9} {'seconds':>8} {'content':>10} {'style':>10}")
        for name, rows in scored.items():
            for t, c, s in rows[:: max(1, len(rows) // 8)] + rows[-1:]:
                print(f"{name:>9} {t:8.1f} {c:10.4g} {s:10.4g}")
        speedup = peer_wall / reached if reached else None
        print(f"pastiche final: {peer_wall:.1f} s; impasto as good on both terms at: "
              f"{reached if reached is None else round(reached, 1)} s; speed-up: "
              f"{'not reached' if speedup is None else f'{speedup:.1f}x'} (impasto's own run: {our_wall:.1f} s)")
        summary[size] = {"pastiche_s": peer_wall, "impasto_reached_s": reached, "impasto_s": our_wall,
                         "speedup": speedup, "scores": scored}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
