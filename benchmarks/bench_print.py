"""Big prints: coarse-to-fine schedules side by side, by time and by eye.

    python benchmarks/bench_print.py [--size 2048] [--content rainier.jpg] [--style starry_night.jpg]
        [--schedules '{"min_size": 1024, "refine_iterations": 150};{"refine_iterations": 150};{}'] [--out print-out]

Paints one photo (from ../shared/images) at a print size with each schedule (Config changes; the
defaults are the last one; the first is the schedule before version 0.2.0), one after another in this
process, and prints for each the sizes and steps, the seconds spent at each size, the total and the
final loss. Pictures are compared by eye, not by loss: it writes every result, and a sheet with each
one shrunk to 512 px (the composition) above a crop of the sky at full size (the strokes). At 2048 px
on a 2-core CPU each schedule takes about half an hour.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import PIL.Image

import impasto

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
            "loss": result.history[-1]["loss"]}


def sheet(pictures: list[Path], out: Path) -> None:
    """Each picture shrunk to PREVIEW px above a full-size crop, side by side."""
    images = [PIL.Image.open(p).convert("RGB") for p in pictures]
    shrunk = [im.resize((PREVIEW, round(PREVIEW * im.height / im.width)), PIL.Image.LANCZOS) for im in images]
    left = [round(CROP_LEFT * im.width) for im in images]
    crops = [im.crop((x, 0, x + PREVIEW, PREVIEW * 2 // 3)) for x, im in zip(left, images)]
    height = shrunk[0].height + crops[0].height + 8
    canvas = PIL.Image.new("RGB", ((PREVIEW + 8) * len(images) - 8, height), "white")
    for i, (small, crop) in enumerate(zip(shrunk, crops)):
        canvas.paste(small, (i * (PREVIEW + 8), 0))
        canvas.paste(crop, (i * (PREVIEW + 8), small.height + 8))
    canvas.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--content", default="rainier.jpg")
    parser.add_argument("--style", default="starry_night.jpg")
    parser.add_argument("--schedules", default='{"min_size": 1024, "refine_iterations": 150};'
                                               '{"refine_iterations": 150};{}')
    parser.add_argument("--out", type=Path, default=Path("print-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    content, style = SHARED / "content" / args.content, SHARED / "style" / args.style
    pictures = []
    print(f"{args.content} x {args.style} at {args.size} px, impasto {impasto.__version__}")
    print(f"{'schedule':>45} {'sizes':>22} {'steps':>16} {'seconds per size':>18} {'total s':>8} {'loss':>9}")
    for text in args.schedules.split(";"):
        changes = json.loads(text)
        path = args.out / f"{len(pictures) + 1}.png"
        row = paint(content, style, impasto.Config(max_size=args.size).replace(**changes), path)
        pictures.append(path)
        print(f"{json.dumps(changes) or '{}':>45} {str(row['sizes']):>22} {str(row['steps']):>16} "
              f"{str(row['seconds']):>18} {row['total']:>8} {row['loss']:>9.4g}", flush=True)
    sheet(pictures, args.out / "sheet.png")
    print(f"pictures: {args.out}/1.png ... ; side by side: {args.out / 'sheet.png'}")


if __name__ == "__main__":
    main()
