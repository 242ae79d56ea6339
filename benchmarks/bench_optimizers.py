"""How soon each optimiser setting reaches pastiche's final image on both terms, on pastiche's objective.

    python benchmarks/bench_optimizers.py [--size 512] [--steps 600] [--long 3000] [--device auto] [--only pyramid] [--every 100]

bench_pastiche.py scores saved images and so runs few settings; this screens many by impasto's own
per-step terms (the same objective, before 8-bit rounding): L-BFGS with 20 or 100 curvature pairs
and a largest pixel change per step of 0.5, 0.1 or 0.02, Adam at three learning rates, each from the
recoloured photo ('palette', the default), the photo itself ('content', as pastiche starts) and,
for L-BFGS, noise; L-BFGS preconditioned as if it optimised a Laplacian pyramid of the image (coarse
levels weighted 1 or 0.5 per octave), which moves coarse detail faster; continuation: a first stage
or three with a lighter style weight (0.5 to 20 instead of 50), each with a fresh L-BFGS, before
the objective's own; and impasto's default for --long steps. --only runs the settings whose label
contains the given text. For each it prints the first step at which the style term is at most
pastiche's final one and the content term then, the first step at which both are (pastiche's
terms: --reference, from its 1000-step run at 512 px), and both terms every --every steps. A
continuation's earlier stages are not pastiche's objective: the first step as good on both terms
counts only in the last stage, once its content term has risen above pastiche's (until then its
picture is still the lighter-weighted stage's), and the style terms of earlier stages are shown at
the objective's own weight. Meant for a GPU (600 steps at 512 px take ~4 s on an H200; ~8 min on a
2-core CPU).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from bench_pastiche import CONTENT, PEER_OBJECTIVE, STYLE  # noqa: E402

import impasto  # noqa: E402
import impasto.optimize  # noqa: E402
from impasto.api import initial_image  # noqa: E402
from impasto.device import repeatable, resolve_device  # noqa: E402
from impasto.imageio import read_image, resize_to_long_edge, resize_to_pixels  # noqa: E402
from impasto.plot import loss_kinds  # noqa: E402


class PyramidLBFGS(impasto.optimize.ProjectedLBFGS):
    """L-BFGS whose initial inverse Hessian is P·Pᵀ, P = [I, w·up₁, w²·up₂, …] (upⱼ: bilinear enlargement
    from 2⁻ʲ of the size): in effect, L-BFGS on a Laplacian pyramid whose sum is the image."""

    def __init__(self, lr: float, levels: int, weight: float) -> None:
        super().__init__(lr)
        self.levels, self.weight = levels, weight
        self.shape: torch.Size | None = None

    def step(self, image: torch.Tensor, grad: torch.Tensor) -> None:
        self.shape = image.shape
        super().step(image, grad)

    def _spread(self, v: torch.Tensor) -> torch.Tensor:
        """P·Pᵀ·v."""
        full = v.view(self.shape)
        spread = full.clone()
        height, width = self.shape[-2:]
        for level in range(1, self.levels):
            small = torch.zeros(*self.shape[:2], max(1, height >> level), max(1, width >> level),
                                requires_grad=True, device=v.device)
            enlarged = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
            (shrunk,) = torch.autograd.grad(enlarged, small, full)  # upⱼᵀ·v
            spread += self.weight ** (2 * level) * F.interpolate(shrunk, size=(height, width), mode="bilinear",
                                                                 align_corners=False)
        return spread.reshape(-1)

    def _initial_inverse_hessian(self, q: torch.Tensor, y: torch.Tensor, rho: float) -> torch.Tensor:
        return self._spread(q) / (rho * float(y @ self._spread(y)))  # scaled by sᵀy / yᵀ·P·Pᵀ·y


@contextmanager
def lbfgs_made_by(make: Callable[[float], impasto.optimize.ProjectedLBFGS]) -> Iterator[None]:
    """Runs in this block build their L-BFGS with ``make(lr)`` (other optimizers as ever)."""
    default = impasto.optimize.make_optimizer
    impasto.optimize.make_optimizer = (  # the loop builds its optimizer through this module-level function
        lambda name, image, lr: make(lr) if name == "lbfgs" else default(name, image, lr))
    try:
        yield
    finally:
        impasto.optimize.make_optimizer = default


def run(steps: int, lbfgs: Callable[[float], impasto.optimize.ProjectedLBFGS], reference: tuple[float, float],
        every: int, **changes) -> tuple[str, float]:
    """One run (``lbfgs(lr)`` builds its L-BFGS); returns its summary line and seconds."""
    rows: list[tuple[int, float, float]] = []

    def record(event: impasto.ProgressEvent) -> None:
        content = loss_kinds(event.losses)["content"]
        rows.append((event.step, content, event.loss - content))

    config = impasto.Config(tolerance=0.0, iterations=steps, scales=1, **PEER_OBJECTIVE).replace(**changes)
    with lbfgs_made_by(lbfgs):
        started = time.perf_counter()
        impasto.stylize(CONTENT, STYLE, config, callback=record)
        seconds = time.perf_counter() - started
    return summary(rows, rows, reference, every), seconds


def run_continuation(steps: int, stages: list[tuple[float, int]], reference: tuple[float, float], every: int,
                     size: int, device: str) -> tuple[str, float]:
    """Stages of (style weight, steps), each from the best image of the last one (by its own loss)
    with a fresh L-BFGS, then the objective's own weight for the rest of ``steps``; returns its
    summary line and seconds."""
    config = impasto.Config(max_size=size, tolerance=0.0, scales=1, device=device, **PEER_OBJECTIVE)
    where = resolve_device(device)
    photo = resize_to_long_edge(read_image(CONTENT), size)
    painting = resize_to_pixels(read_image(STYLE), photo.shape[1] * photo.shape[2])
    image = initial_image(config.init, photo, [painting], torch.Generator().manual_seed(0))[None].to(where)
    stages = [*stages, (config.style_weight, max(0, steps - sum(n for _, n in stages)))]
    state = impasto.optimize.LoopState(total=steps)
    rows: list[tuple[int, float, float]] = []
    started = time.perf_counter()
    with repeatable(where):
        for weight, stage_steps in stages:
            objective = impasto.objective_for(CONTENT, STYLE, config.replace(style_weight=weight))

            def record(event: impasto.ProgressEvent, scale: float = config.style_weight / weight) -> None:
                kinds = loss_kinds(event.losses)
                rows.append((event.step, kinds["content"], kinds["style"] * scale))

            first_of_stage = len(rows)
            image = impasto.optimize.optimize(image, objective, optimizer=config.optimizer, lr=config.step_size,
                                              iterations=stage_steps, tolerance=0.0, state=state, callback=record)
    seconds = time.perf_counter() - started
    return summary(rows, rows[first_of_stage:], reference, every), seconds


def summary(rows: list[tuple[int, float, float]], final_stage: list[tuple[int, float, float]],
            reference: tuple[float, float], every: int) -> str:
    """When the style term first matched pastiche's, and the content term then; the first step of
    ``final_stage`` after its content term rose above pastiche's at which both terms are at most
    pastiche's; both terms every ``every`` steps."""
    styled = next(((s, c) for s, c, st in rows if st <= reference[1]), None)
    risen = next((i for i, (_, c, _) in enumerate(final_stage) if c > reference[0]), len(final_stage))
    both = next((s for s, c, st in final_stage[risen:] if c <= reference[0] and st <= reference[1]), None)
    marks = " ".join(f"{s}: {c:.0f}/{st:.3g}" for s, c, st in rows if s % every == 0 or s == rows[-1][0])
    styled_text = f"step {styled[0]:>4}, content {styled[1]:6.0f}" if styled else "never".ljust(25)
    return f"{styled_text} | {str(both or 'never'):>5} | {marks}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=600, help="steps of each screened setting")
    parser.add_argument("--long", type=int, default=3000, help="steps of the default setting's long run")
    parser.add_argument("--reference", default="4590,41818", help="pastiche's final content,style terms")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", default="", help="run only the settings whose label contains this text")
    parser.add_argument("--every", type=int, default=100, help="print both terms every this many steps")
    args = parser.parse_args()
    reference = tuple(map(float, args.reference.split(",")))
    common = dict(max_size=args.size, device=args.device)

    def lbfgs(pairs: int, cap: float) -> Callable[[float], impasto.optimize.ProjectedLBFGS]:
        return lambda lr: impasto.optimize.ProjectedLBFGS(lr, pairs, cap)

    def screen(steps: int, make: Callable[[float], impasto.optimize.ProjectedLBFGS], **changes):
        return lambda: run(steps, make, reference, args.every, **common, **changes)

    settings = [("lbfgs, palette, 20 pairs, 0.5 (default)", screen(args.long, lbfgs(20, 0.5)))]
    settings += [(f"lbfgs, {init}, {pairs} pairs, {cap}", screen(args.steps, lbfgs(pairs, cap), init=init))
                 for init, pairs, cap in itertools.product(("palette", "content"), (20, 100), (0.5, 0.1, 0.02))]
    settings += [(f"adam, {init}, lr {lr}", screen(args.steps, lbfgs(20, 0.5), init=init, optimizer="adam", learning_rate=lr))
                 for init, lr in itertools.product(("palette", "content"), (0.02, 0.005, 0.002))]
    settings += [("lbfgs, noise, 20 pairs, 0.5", screen(args.steps, lbfgs(20, 0.5), init="noise"))]
    settings += [(f"lbfgs, palette, pyramid 5 levels, {weight}",
                  screen(args.steps, lambda lr, weight=weight: PyramidLBFGS(lr, 5, weight))) for weight in (1.0, 0.5)]
    settings += [("continuation, " + ", ".join(f"{w:g} for {n}" for w, n in stages),
                  lambda stages=stages: run_continuation(args.steps, stages, reference, args.every, args.size, args.device))
                 for stages in ([(0.5, 50)], [(1, 100)], [(2, 150)], [(1, 50), (5, 50), (20, 50)])]
    print(f"{args.size} px, pastiche's objective; pastiche's final terms: content {reference[0]:.0f}, "
          f"style {reference[1]:.4g}")
    print(f"{'setting':>40} | {'style as low first at':<25} | {'both':>5} | content/style at steps")
    for label, measure in settings:
        if args.only not in label:
            continue
        line, seconds = measure()
        print(f"{label:>40} | {line} ({seconds:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
