"""Big prints: coarse-to-fine schedules side by side, by time and by eye.

    python benchmarks/bench_print.py [--size 2048] [--content rainier.jpg] [--style starry_night.jpg]
        [--schedules '{"composition_weight": 0};{}'] [--device auto] [--out print-out]

Paints one photo (from ../shared/images) at a print size with each schedule (Config changes; the
defaults are the last one; the first is version 0.2.0's, without the composition term), one after
another in this process, and prints for each the sizes and steps, the seconds spent at each size,
the total and the final loss; then each picture's content and style terms on the default objective
at the schedule's first size (512 px; the print shrunk to it: how well it keeps the composition)
and at the print size (the strokes), beside those of the default 512 px painting (the preview,
enlarged for the second). Pictures are also compared by eye: it writes every result, and a sheet
with the preview, then each print shrunk to 512 px (the composition) above a crop of the sky at
full size (the strokes). At 2048 px on a 2-core CPU each schedule takes about half an hour; on an
H200, seconds (`--device cuda`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import PIL.Image

import impasto
from impasto.imageio import read_image
from impasto.plot import loss_kinds

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
PREVIEW = 512  # long edge at which the sheet shows each whole picture
CROP_LEFT = 0.34  # the sheet's full-size crop starts this far across the top of the picture (rainier's sky)


def paint(content: Path, style: Path, config: impasto.Config, out: Path) -> dict:
    """One run: its schedule, seconds per size, total seconds and final loss; the picture saved.

    A size's seconds run from the end of the last step at the size before (or of the set-up) to the
    end of its own last step, so they include its first step and the targets computed for it."""
    ended: dict[int, float] = {}
    started = time.perf_counter()

    def note_step(event: impasto.ProgressEvent) -> None:
        ended[event.scale] = time.perf_counter() - started

    result = impasto.stylize(content, style, config, callback=note_step)
    total = time.perf_counter() - started
    result.save(out)
    sizes = config.sizes()
    bounds = [result.timings["setup"]] + [ended[k] for k in sorted(ended)]
    return {"sizes": sizes, "steps": [sum(1 for row in result.history if row["scale"] == k) for k in range(len(sizes))],
            "seconds": [round(b - a) for a, b in zip(bounds, bounds[1:])], "total": round(total),
            "loss": result.losses["loss"]}


def scores(content: Path, style: Path, pictures: list[Path], config: impasto.Config, size: int
           ) -> list[tuple[float, float]]:
    """Each picture resized to ``size`` px and scored on ``config``'s objective at that size (at the
    schedule's first size, the one the composition term adds): (content term, style term)."""
    objective = impasto.objective_for(content, style, config, size)
    terms = [objective.score(read_image(picture)) for picture in pictures]
    kinds = [loss_kinds(t) for t in terms]
    return [(k["content"], k["style"]) for k in kinds]


def sheet(pictures: list[Path], out: Path) -> None:
    """Each picture shrunk to PREVIEW px above the same crop of the sky, at the largest picture's scale
    (smaller pictures, such as the preview, enlarged to it), side by side."""
    images = [PIL.Image.open(p).convert("RGB") for p in pictures]
    shrunk = [im.resize((PREVIEW, round(PREVIEW * im.height / im.width)), PIL.Image.LANCZOS) for im in images]
    crop_width, crop_height = PREVIEW, PREVIEW * 2 // 3
    widest = max(im.width for im in images)
    crops = [im.crop(_scaled_box(im.width / widest, round(CROP_LEFT * im.width), crop_width, crop_height))
             .resize((crop_width, crop_height), PIL.Image.LANCZOS) for im in images]
    height = shrunk[0].height + crops[0].height + 8
    canvas = PIL.Image.new("RGB", ((PREVIEW + 8) * len(images) - 8, height), "white")
    for i, (small, crop) in enumerate(zip(shrunk, crops)):
        canvas.paste(small, (i * (PREVIEW + 8), 0))
        canvas.paste(crop, (i * (PREVIEW + 8), small.height + 8))
    canvas.save(out)


def _scaled_box(scale: float, left: int, width: int, height: int) -> tuple[int, int, int, int]:
    return left, 0, left + round(width * scale), round(height * scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--content", default="rainier.jpg")
    parser.add_argument("--style", default="starry_night.jpg")
    parser.add_argument("--schedules", default='{"composition_weight": 0};{}')
    parser.add_argument("--device", default="auto", help="impasto's device setting for every run")
    parser.add_argument("--out", type=Path, default=Path("print-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    content, style = SHARED / "content" / args.content, SHARED / "style" / args.style
    pictures = [args.out / "preview.png"]  # what the same settings paint at PREVIEW px, for reference
    impasto.stylize(content, style, impasto.Config(max_size=PREVIEW, device=args.device)).save(pictures[0])
    print(f"{args.content} x {args.style} at {args.size} px, impasto {impasto.__version__}, device {args.device}")
    print(f"{'schedule':>45} {'sizes':>22} {'steps':>16} {'seconds per size':>18} {'total s':>8} {'loss':>9}")
    for text in args.schedules.split(";"):
        changes = json.loads(text)
        path = args.out / f"{len(pictures)}.png"
        row = paint(content, style, impasto.Config(max_size=args.size, device=args.device).replace(**changes), path)
        pictures.append(path)
        print(f"{json.dumps(changes) or '{}':>45} {str(row['sizes']):>22} {str(row['steps']):>16} "
              f"{str(row['seconds']):>18} {row['total']:>8} {row['loss']:>9.4g}", flush=True)
    config = impasto.Config(max_size=args.size, device=args.device)
    first = config.sizes()[0]
    print(f"\nthe default objective's terms, of each picture shrunk to {first} px (the composition) and at "
          f"{args.size} px (the preview enlarged):")
    print(f"{'picture':>45} {f'content@{first}':>13} {f'style@{first}':>13} "
          f"{f'content@{args.size}':>13} {f'style@{args.size}':>13}")
    names = [f"{PREVIEW} px painting (preview)"] + args.schedules.split(";")
    rows = zip(names, scores(content, style, pictures, config, first), scores(content, style, pictures, config, args.size))
    for name, (small_content, small_style), (large_content, large_style) in rows:
        print(f"{name:>45} {small_content:>13.4g} {small_style:>13.4g} {large_content:>13.4g} {large_style:>13.4g}")
    sheet(pictures, args.out / "sheet.png")
    print(f"pictures: {args.out}/1.png ... ; side by side: {args.out / 'sheet.png'}")


if __name__ == "__main__":
    main()
