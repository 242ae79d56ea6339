"""What an interruption costs: a print stopped part way and resumed, against the same print uninterrupted.

    python benchmarks/bench_resume.py [--size 1024] [--stops 100,200] [--device auto] [--out resume-out]

Paints rainier × starry_night (../shared/images) at --size with the default settings (1024 px:
150 steps at 512 px, then 100 at 1024 px), once without a stop, then once for each step of --stops:
cancelled after that step, saved, and resumed from the saved file as `impasto --resume` does.
Prints, for each, the sizes it stopped and went on at, its seconds (both parts), and the finished
picture's content and style terms on the default objective at --size (`impasto.objective_for`,
without the composition term), with their ratios to the uninterrupted run's. The pictures are
written to --out, to be compared by eye. At 1024 px on a 2-core CPU a run takes about 8 minutes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import impasto
from impasto.imageio import read_image
from impasto.plot import loss_kinds

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
PHOTO, PAINTING = SHARED / "content/rainier.jpg", SHARED / "style/starry_night.jpg"


def paint(config: impasto.Config, out: Path, stop: int | None) -> dict:
    """One run, stopped after step ``stop`` and resumed (None: not stopped); its picture saved to ``out``."""
    started = time.perf_counter()
    stopped_at = None
    if stop is not None:
        stopped = impasto.stylize(PHOTO, PAINTING, config, callback=lambda event: event.step == stop)
        stopped.save(out)
        stopped_at = stopped.stopped_at
        if stopped_at is None:  # the run ended (its steps, or the tolerance) before the stop
            return {"stopped_at": None, "steps": stopped.steps, "seconds": time.perf_counter() - started}
    result = impasto.stylize(PHOTO, PAINTING, config, resume=out if stop is not None else None)
    result.save(out)
    return {"stopped_at": stopped_at, "steps": result.steps, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--stops", default="100,200", help="steps after which a run is stopped, comma-separated")
    parser.add_argument("--device", default="auto", help="impasto's device setting for every run")
    parser.add_argument("--out", type=Path, default=Path("resume-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    config = impasto.Config(max_size=args.size, device=args.device)
    print(f"rainier × starry_night at {args.size} px: sizes {config.sizes()}, steps {config.steps_per_size()}")
    objective = impasto.objective_for(PHOTO, PAINTING, config)
    baseline = None
    for stop in [None, *(int(s) for s in args.stops.split(","))]:
        out = args.out / ("uninterrupted.png" if stop is None else f"stopped-{stop}.png")
        run = paint(config, out, stop)
        terms = loss_kinds(objective.score(read_image(out)))
        baseline = baseline or terms
        if stop is None:
            where = "-"
        elif run["stopped_at"] is None:
            where = f"step {stop}: ended before it"
        else:
            where = f"after step {stop}, at {run['stopped_at']['size']} px"
        print(f"{where:>26}: {run['steps']} steps, {run['seconds']:7.1f} s, content {terms['content']:.4g} "
              f"({terms['content'] / baseline['content']:.3f}×), style {terms['style']:.4g} "
              f"({terms['style'] / baseline['style']:.3f}×)  {out}", flush=True)


if __name__ == "__main__":
    main()
