"""Lone pixels and stalls: L-BFGS's first step as impasto takes it and as torch's L-BFGS does, side by side.

    python benchmarks/bench_specks.py [--size 384] [--out specks-out] [--first-steps torch,impasto]
        [--pairs rainier:starry_night,...] (default: every photo × painting in ../shared/images)

Before it has a curvature pair, impasto's L-BFGS takes a gradient step that moves the steepest pixel
by ``FIRST_STEP``; up to version 0.6.0 it stepped by 1/‖g‖₁ as torch's L-BFGS does, which moves no
pixel of a picture by a hundredth of a grey level. For each photo × painting and each first step, it
paints the default settings at --size, but with ``despeckle`` 0 (the optimiser's own specks), and
prints the lone pixels (more than 60 grey levels off all 8 neighbours in some channel: the coloured
specks), the steps taken and why the run stopped (a run that stalls stops early, "tolerance", with
the photo barely painted), the run's best loss, and the seconds spent; for impasto's first step also
the ratio of the picture's loss with its specks removed (``despeckle`` at the default 60, as a run
does it) to its loss as painted, both scored by ``objective_for``. Then, per first step, the lone
pixels of all pictures and the median ratio of the loss to impasto's, and the despeckled pictures' median,
smallest and largest loss ratios. Specks are also judged by eye: it writes every picture, and a sheet
with one row per photo × painting: the 64 px square with the most lone pixels in the first picture
(torch's first step's, unless --first-steps leaves it out), from each picture, enlarged 4×, side by
side. About 45 seconds a picture at 384 px on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from bench_optimizers import lbfgs_made_by  # noqa: E402

import impasto  # noqa: E402
import impasto.optimize  # noqa: E402
from impasto.config import DEFAULT_DESPECKLE  # noqa: E402
from impasto.postprocess import despeckle, lone_pixels  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
CROP, ZOOM = 64, 4  # the sheet's square (px) and its enlargement


def densest_square(lone: torch.Tensor, side: int = CROP) -> tuple[int, int]:
    """(top, left) of the side × side square (at most the picture) holding the most of the ``lone`` pixels."""
    counts = F.avg_pool2d(lone[None, None].float(), [min(side, n) for n in lone.shape], stride=1)[0, 0]
    top, left = divmod(int(counts.argmax()), counts.shape[1])
    return top, left


class TorchFirstStep(impasto.optimize.ProjectedLBFGS):
    """impasto's L-BFGS with torch's first step, 1/‖g‖₁ (at most 1): the L-BFGS of version 0.6.0."""

    def _first_step(self, gradient: torch.Tensor) -> float:
        norm = float(gradient.abs().sum())
        return min(1.0, 1.0 / norm) if norm else 0.0


@contextmanager
def first_step(kind: str) -> Iterator[None]:
    """Runs in this block take ``kind``'s first step: "torch" (1/‖g‖₁) or "impasto" (FIRST_STEP)."""
    if kind not in ("torch", "impasto"):
        raise ValueError(f"no first step called {kind!r}: 'torch' or 'impasto'")
    with lbfgs_made_by(TorchFirstStep if kind == "torch" else impasto.optimize.ProjectedLBFGS):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--pairs", default="", help="photo:painting, comma-separated (default: all)")
    parser.add_argument("--out", type=Path, default=Path("specks-out"))
    parser.add_argument("--first-steps", default="torch,impasto", help="whose first steps, comma-separated "
                        "(impasto alone: its specks and the despeckled pictures' losses, in half the time)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    kinds = args.first_steps.split(",")
    if "impasto" not in kinds or not set(kinds) <= {"torch", "impasto"}:
        parser.error("--first-steps: 'impasto', or 'torch,impasto'")
    pairs = ([pair.split(":") for pair in args.pairs.split(",")] if args.pairs else
             [(c.stem, s.stem) for c in sorted((SHARED / "content").glob("*.jpg"))
              for s in sorted((SHARED / "style").glob("*.jpg"))])
    lone_counts: dict[str, list[int]] = {kind: [] for kind in kinds}
    losses: dict[str, list[float]] = {kind: [] for kind in kinds}
    despeckled: list[float] = []  # loss ratios, impasto's pictures with their specks removed to as painted
    rows = []
    print(f"{'photo × painting':42} {'first step':>10} {'lone px':>7} {'steps':>5} {'stopped by':>10} {'loss':>8}  "
          f"seconds  despeckled's loss")
    for photo_name, painting_name in pairs:
        photo, painting = SHARED / "content" / f"{photo_name}.jpg", SHARED / "style" / f"{painting_name}.jpg"
        config = impasto.Config(max_size=args.size, despeckle=0)
        pictures = []
        for kind in kinds:
            with first_step(kind):
                result = impasto.stylize(photo, painting, config)
            result.save(args.out / f"{photo_name}-{painting_name}-{kind}.png")
            last_size = [row["loss"] for row in result.history if row["scale"] == result.history[-1]["scale"]]
            lone, best = int(lone_pixels(result.image, DEFAULT_DESPECKLE).sum()), min(last_size)
            lone_counts[kind].append(lone)
            losses[kind].append(best)
            ratio = ""
            if kind == "impasto":
                objective = impasto.objective_for(photo, painting, config)
                scores = [sum(objective.score(picture).values())
                          for picture in (result.image, despeckle(result.image, DEFAULT_DESPECKLE))]
                despeckled.append(scores[1] / scores[0])
                ratio = f"{despeckled[-1]:.5f}"
            print(f"{photo_name + ' × ' + painting_name:42} {kind:>10} {lone:7d} {len(result.history):5d} "
                  f"{result.stop_reason:>10} {best:8.0f}  {result.timings['total']:7.0f}  {ratio}", flush=True)
            pictures.append(result.image)
        top, left = densest_square(lone_pixels(pictures[0], DEFAULT_DESPECKLE))
        squares = [(p[:, top:top + CROP, left:left + CROP].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                   for p in pictures]
        rows.append(np.concatenate([np.pad(s, ((0, CROP + 4 - s.shape[0]), (0, CROP + 4 - s.shape[1]), (0, 0)),
                                           constant_values=255) for s in squares], 1))  # a small picture, padded
    for kind in kinds:
        ratio = np.median(np.array(losses[kind]) / np.array(losses["impasto"]))
        print(f"{kind}'s first step: {sum(lone_counts[kind])} lone pixels over {len(pairs)} pictures, "
              f"loss {ratio:.3f} times impasto's (median)")
    print(f"impasto's pictures despeckled (--despeckle {DEFAULT_DESPECKLE}): loss {np.median(despeckled):.5f} times "
          f"theirs as painted (median), {min(despeckled):.5f} to {max(despeckled):.5f}")
    sheet = np.concatenate(rows, 0).repeat(ZOOM, 0).repeat(ZOOM, 1)
    PIL.Image.fromarray(sheet).save(args.out / "specks.png")
    print(f"sheet: {args.out / 'specks.png'} (one row per photo × painting, first steps {', '.join(kinds)} from the left)")


if __name__ == "__main__":
    main()
