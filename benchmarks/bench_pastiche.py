"""impasto against the peer `pastiche`, on the same objective, scored by one evaluator.

    python benchmarks/bench_pastiche.py [--sizes 256,512] [--out bench-out] [--device auto]

Both tools paint golden_gate × starry_night on pastiche's default objective (content 0.01·MSE at
relu4_2; style Σ 10·MSE of Gram/(C·H·W) over relu1_1 … relu5_1; max pooling; no TV), with the same
VGG-19 weights, bilinear resizing and the painting scaled to the photo's pixel count. pastiche runs
its own command line at its defaults (L-BFGS, 300 steps at 256 px, 1000 at 512 px), saving its image
every few steps; then impasto runs with its defaults and in float32 (--schedules: Config changes),
saving a snapshot every 2 steps of the last size, until it has taken its own number of steps and
one snapshot is as good as pastiche's final image (or 300 steps at the last size). A schedule that
changes the objective itself (a style_weight, say) is scored too, but no speed-up is claimed for it:
it shows which pairs of terms can be reached, as does the table of each final image's terms layer by
layer. --reuse-peer scores the pastiche run of an earlier benchmark instead of running it again.
The evaluator scores every saved 8-bit image on the content and style terms separately; the table
gives both terms against wall time, then the speed-up: pastiche's wall time over the time at which
impasto first scores at least as well as pastiche's final image on both terms. Also printed: peak
RSS, impasto's GFLOP/s, and the largest size that fits in this machine's memory. pastiche needs
~3 min at 256 px and ~33 min at 512 px on a 2-core CPU: the benchmark is run on demand, not in CI,
on an otherwise idle machine. On a GPU (--device cuda, the default where there is one) both tools
run there, and the evaluator scores there with TF32 off, so its scores are float32's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from flops import step_flops  # noqa: E402

import impasto  # noqa: E402
from impasto.api import load_extractor  # noqa: E402
from impasto.device import resolve_device, uses_bfloat16  # noqa: E402
from impasto.imageio import read_image, save_image  # noqa: E402
from impasto.memory import GB, available, largest_fitting  # noqa: E402
from impasto.plot import loss_kinds  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
CONTENT, STYLE = SHARED / "content/golden_gate.jpg", SHARED / "style/starry_night.jpg"
PASTICHE_STEPS = {256: 300, 512: 1000}  # pastiche's defaults for these sizes
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

# pastiche's default objective expressed as an impasto Config (layer weights are normalised to sum
# to 1, so β = 10 per layer × 5 layers). pastiche paints to the picture's edge: no margin, so that the
# evaluator scores the picture alone and impasto minimises the very same objective.
PEER_OBJECTIVE = dict(content_weight=0.01, style_weight=50.0, pooling="max", tv_weight=0.0,
                      style_layers=STYLE_LAYERS, style_layer_weights=(1.0,) * 5, margin=0)


class Evaluator:
    """Scores saved images on the peer objective: (content term, style term)."""

    def __init__(self, size: int, device: torch.device) -> None:
        config = impasto.Config(max_size=size, precision="float32", device=str(device), **PEER_OBJECTIVE)
        self.device = device  # impasto's runs use it too
        with float32_convolutions():
            self.objective = impasto.objective_for(CONTENT, STYLE, config)

    def terms(self, path: Path) -> dict[str, float]:
        """The weighted terms by name: content/relu4_2, style/relu1_1 … style/relu5_1."""
        with float32_convolutions():
            return self.objective.score(read_image(path))

    def __call__(self, path: Path) -> tuple[float, float]:
        kinds = loss_kinds(self.terms(path))
        return kinds["content"], kinds["style"]


def float32_convolutions():
    """A context in which GPU convolutions are float32, not TF32 (PyTorch's default on CUDA)."""
    return torch.backends.cudnn.flags(enabled=True, allow_tf32=False)


def run_pastiche(size: int, folder: Path, device: torch.device, steps: int
                 ) -> tuple[list[tuple[float, Path]], float, float]:
    """pastiche's CLI at its defaults but ``steps``; returns (seconds, snapshot) pairs, its wall time and peak
    RSS (MB)."""
    workspace = folder / "pastiche"
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    output = folder / f"pastiche-{size}.png"
    step = max(steps // 30, 5)
    started = time.time()
    subprocess.run([sys.executable, "-m", "pastiche", "--device", str(device), "--content", str(CONTENT),
                    "--styles", str(STYLE), "--output", str(output), "--size", str(size),
                    "--num-steps", str(steps), "--seed", "0", "--workspace", str(workspace),
                    "--workspace-step", str(step), "--no-verbose"],
                   check=True)
    wall = time.time() - started
    snapshots = sorted(workspace.glob("*.png"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    timed = [(p.stat().st_mtime - started, p) for p in snapshots] + [(wall, output)]
    rss = peak_rss_mb(resource.RUSAGE_CHILDREN)  # pastiche is the largest child this process runs
    (folder / "pastiche.json").write_text(json.dumps({"wall": wall, "rss": rss, "snapshots": [(t, str(p)) for t, p in timed]}))
    return timed, wall, rss


def earlier_pastiche(folder: Path) -> tuple[list[tuple[float, Path]], float, float] | None:
    """A finished pastiche run saved in ``folder`` by an earlier benchmark, if there is one."""
    record = folder / "pastiche.json"
    if not record.exists():
        return None
    saved = json.loads(record.read_text())
    return [(t, Path(p)) for t, p in saved["snapshots"]], saved["wall"], saved["rss"]


def run_impasto(size: int, folder: Path, every: int, schedule: dict, evaluate: "Evaluator",
                reference: tuple[float, float], most_steps: int) -> tuple[list[tuple[float, float, float]], float, float]:
    """impasto on the peer objective with a schedule, scoring a snapshot every few steps of the last size.

    The run takes its own number of steps, and more (up to ``most_steps`` at the last size) until a
    snapshot scores at least as well as ``reference`` on both terms. Returns (seconds, content, style)
    rows, the wall time and the GFLOP/s achieved. impasto runs in this process but is charged what
    pastiche's wall time includes: starting Python, importing, loading the weights; time spent
    saving and scoring its snapshots is not charged.
    """
    snapshots_dir = folder / f"impasto-{_label(schedule)}"
    shutil.rmtree(snapshots_dir, ignore_errors=True)
    snapshots_dir.mkdir(parents=True)
    config = impasto.Config(max_size=size, tolerance=0.0, device=str(evaluate.device), **PEER_OBJECTIVE)
    config = config.replace(**schedule)
    own_steps = sum(config.steps_per_size())
    config = config.replace(iterations=max(config.iterations, most_steps))
    rows: list[tuple[float, float, float]] = []
    paused, flops = 0.0, 0.0
    if evaluate.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(evaluate.device)

    def snapshot(event: impasto.ProgressEvent) -> bool:
        nonlocal paused, flops
        flops += step_flops(("relu4_2",), STYLE_LAYERS, *event.image.shape[1:])
        if event.scale < event.scales - 1 or event.step % every:
            return False
        began = time.perf_counter()
        scores = evaluate(save_image(event.image, snapshots_dir / f"{event.step:05d}.png"))
        rows.append((time.perf_counter() - started - paused, *scores))
        paused += time.perf_counter() - began
        reached = first_as_good(rows, *reference) is not None
        return reached and event.step >= own_steps

    load_extractor.cache_clear()  # the evaluator's copy: impasto loads its weights on the clock
    started = time.perf_counter() - startup_seconds(evaluate.device)
    result = impasto.stylize(CONTENT, STYLE, config, callback=snapshot)
    wall = time.perf_counter() - started - paused
    result.save(folder / f"impasto-{_label(schedule)}-{size}.png")
    if evaluate.device.type == "cuda":
        print(f"impasto {_label(schedule)} at {size} px: peak GPU memory "
              f"{torch.cuda.max_memory_allocated(evaluate.device) / 2**20:.0f} MB (the evaluator's included)")
    return rows, wall, flops / wall / 1e9


def startup_seconds(device: torch.device) -> float:
    """What starting Python, importing impasto and opening the device costs: pastiche's wall time
    includes its own."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import impasto.runner, torch; torch.zeros(1, device='{device}')"],
                   check=True)
    return time.perf_counter() - started


def _distinct(schedules: tuple[dict, ...], size: int) -> list[dict]:
    """The schedules that differ at this size (below 2 × min_size, the default is one size too)."""
    seen, distinct = set(), []
    for schedule in schedules:
        config = impasto.Config(max_size=size, **PEER_OBJECTIVE).replace(**schedule)
        key = (tuple(config.sizes()), config.replace(scales=1, min_size=16))
        if key not in seen:
            seen.add(key)
            distinct.append(schedule)
    return distinct


def _label(schedule: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in schedule.items()) or "default"


def same_objective(schedule: dict) -> bool:
    """Whether a schedule changes only how impasto optimises (its coarse-to-fine sizes or optimisation
    settings), not what: only such runs are compared with pastiche. Others (a different style_weight,
    say) are scored all the same, to show which points of the two terms can be reached."""
    how = {f.name for f in dataclasses.fields(impasto.Config) if f.metadata["group"] == "optimisation"}
    return set(schedule) <= how | {"scales", "min_size"}


def print_layers(evaluate: Evaluator, finals: dict[str, Path]) -> None:
    """Each final image's terms layer by layer: which layer's style the two tools trade for content."""
    rows = {name: evaluate.terms(path) for name, path in finals.items()}
    names = list(next(iter(rows.values())))
    print("final images, term by term:")
    print(f"{'run':>16} " + " ".join(f"{n.split('/')[-1]:>9}" for n in names))
    for name, terms in rows.items():
        print(f"{name[:16]:>16} " + " ".join(f"{terms[n]:9.4g}" for n in names))


def first_as_good(scored: list[tuple[float, float, float]], content: float, style: float) -> float | None:
    """The first time at which both terms are at most the reference's."""
    return next((t for t, c, s in scored if c <= content and s <= style), None)


def first_total_as_low(scored: list[tuple[float, float, float]], content: float, style: float) -> float | None:
    """The first time at which the total (content + style) is at most the reference's: the objective's own
    measure, which a picture can meet with one term above the reference's."""
    return next((t for t, c, s in scored if c + s <= content + style), None)


def peak_rss_mb(who: int) -> float:
    """Peak resident memory so far of this process or of its finished children, in MB."""
    return resource.getrusage(who).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--out", default="bench-out", type=Path)
    parser.add_argument("--every", type=int, default=2, help="impasto snapshot interval in steps")
    parser.add_argument("--most-steps", type=int, default=300, help="impasto's step limit at the last size")
    parser.add_argument("--reuse-peer", action="store_true",
                        help="score the pastiche run an earlier benchmark left in --out instead of running it again")
    parser.add_argument("--schedules", default='{};{"precision": "float32"}',
                        help="impasto schedules to run, as ';'-separated JSON Config changes")
    parser.add_argument("--device", default="auto", help="where both tools run: auto (a GPU if there is one), cpu, cuda")
    parser.add_argument("--peer-steps", type=int, help="pastiche's steps (default: its own, 300 at 256 px and 1000 "
                                                       "at 512 px; needed at other sizes)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    summary = {}
    schedules = tuple(json.loads(part) for part in args.schedules.split(";"))
    sizes = list(map(int, args.sizes.split(",")))
    if not args.peer_steps and not args.reuse_peer and set(sizes) - set(PASTICHE_STEPS):
        parser.error(f"pastiche's default steps are known at {' and '.join(map(str, PASTICHE_STEPS))} px only: "
                     "give --peer-steps N (or --reuse-peer)")
    for size in sizes:
        folder = args.out / str(size)
        folder.mkdir(parents=True, exist_ok=True)
        peer, peer_wall, peer_rss = (args.reuse_peer and earlier_pastiche(folder)) or run_pastiche(
            size, folder, device, args.peer_steps or PASTICHE_STEPS[size])
        evaluate = Evaluator(size, device)
        scored = {"pastiche": [(t, *evaluate(p)) for t, p in peer]}
        reference = scored["pastiche"][-1][1:]
        walls, speeds = {"pastiche": peer_wall}, {}
        for schedule in _distinct(schedules, size):
            rows, walls[_label(schedule)], speeds[_label(schedule)] = run_impasto(size, folder, args.every, schedule, evaluate, reference,
                                                         args.most_steps)
            scored[_label(schedule)] = rows
        print(f"\n== {size} px: golden_gate × starry_night, pastiche objective; "
              f"peak RSS pastiche {peer_rss:.0f} MB, "
              f"this process (impasto and the evaluator) {peak_rss_mb(resource.RUSAGE_SELF):.0f} MB ==")
        print(f"{'run':>9} {'seconds':>8} {'content':>10} {'style':>10}")
        for name, rows in scored.items():
            shown = rows[:: max(1, len(rows) // 8)]
            shown += [] if shown[-1] is rows[-1] else rows[-1:]
            for t, c, s in shown:
                print(f"{name:>9} {t:8.1f} {c:10.4g} {s:10.4g}")
        print(f"pastiche final after {peer_wall:.1f} s: content {reference[0]:.4g}, style {reference[1]:.4g}")
        summary[size] = {"pastiche_s": peer_wall, "scores": scored}
        for schedule in _distinct(schedules, size):
            name = _label(schedule)
            reached = first_as_good(scored[name], *reference)
            if not reached:
                outcome = "not as good on both terms"
            elif same_objective(schedule):
                outcome = f"as good on both terms at {reached:.1f} s; speed-up {peer_wall / reached:.1f}x"
            else:
                outcome = (f"as good on both terms at {reached:.1f} s; no speed-up claimed: {name} is not "
                           "pastiche's objective, only scored by it")
            print(f"impasto {name}: {outcome} (run stopped at {walls[name]:.1f} s; {speeds[name]:.0f} GFLOP/s)")
            summary[size][name] = {"reached_s": reached, "wall_s": walls[name], "gflops": speeds[name]}
            # Where "both terms" is not met, say which term holds it back.
            matched = next(((t, c) for t, c, st in scored[name] if st <= reference[1]), None)
            if matched and not reached:
                print(f"  its style term first matched pastiche's at {matched[0]:.1f} s ({peer_wall / matched[0]:.0f}x "
                      f"sooner), with a content term of {matched[1]:.4g} against pastiche's {reference[0]:.4g}")
            total = first_total_as_low(scored[name], *reference)
            summary[size][name]["total_reached_s"] = total
            if total and not reached and same_objective(schedule):
                print(f"  its total loss (content + style) first at most pastiche's at {total:.1f} s "
                      f"({peer_wall / total:.0f}x sooner)")
        print_layers(evaluate, {"pastiche": peer[-1][1], **{
            _label(sc): folder / f"impasto-{_label(sc)}-{size}.png" for sc in _distinct(schedules, size)}})
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    height, width = read_image(CONTENT).shape[1:]
    budget, config = available(device), impasto.Config()
    held = read_image(CONTENT).nbytes + read_image(STYLE).nbytes  # the inputs as read, counted by the guard
    fits = largest_fitting(config, height, width, budget - held, uses_bfloat16(config.precision, device))
    print(f"largest golden_gate painting that fits in the {budget / GB:.1f} GB available (impasto's estimate, "
          f"checkpointed): {fits} px long edge")


if __name__ == "__main__":
    sys.exit(main())
