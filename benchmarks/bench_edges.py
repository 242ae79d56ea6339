"""The picture's edges: painted to the edge (margin 0) and on a canvas with a margin, side by side.

    python benchmarks/bench_edges.py [--size 384] [--margins 0,8] [--out edges-out]
        [--pairs hoovertowernight:the_scream,rainier:autumn_oak,golden_gate:woman-with-hat-matisse]

VGG-19's zero padding gives the outermost pixels gradients unlike the others', and a picture painted
to its edge can come out with a line along it, darker or lighter than the rows inside. For each
photo × painting (from ../shared/images) and each margin, it paints the default settings at --size
and prints, per edge (top, bottom, left, right), how much the outermost row or column differs in
grey level (0-255) from the five rows just inside it (rows 3-7), less the same difference in the
photo, so that an edge the photo has itself does not count; then the mean of the absolute values
and the seconds spent. Lines are also judged by eye: it writes every picture, and a sheet with a
strip of each edge (160 × 24 px, enlarged 2× wide and 4× high: the edge on top for the top strip,
at the bottom for the bottom one, the left and right ones turned so that their edge is on top) per
picture, one row each. About a minute a picture at 384 px on a 2-core CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import PIL.Image
import torch

import impasto
from impasto.imageio import read_image, resize_to_long_edge

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
STRIP = (160, 24)  # the sheet's strip of each edge: along it, and into the picture (px)


def edge_steps(picture: torch.Tensor) -> np.ndarray:
    """Per edge (top, bottom, left, right): the mean grey level (0-255) of the outermost row or column
    less that of the five just inside it (rows 3-7 from the edge)."""
    grey = picture.mean(0) * 255
    rows = (grey, grey.flip(0), grey.T, grey.T.flip(0))  # each edge as row 0
    return np.array([float(r[0].mean() - r[3:8].mean()) for r in rows])


def strips(path: Path) -> PIL.Image.Image:
    """One row of the sheet: a strip from the middle of each edge, enlarged, the edge outwards."""
    with PIL.Image.open(path) as image:
        picture = image.convert("RGB")
    width, height = picture.size
    along, into = STRIP
    top, left = (height - along) // 2, (width - along) // 2
    parts = [picture.crop((left, 0, left + along, into)),
             picture.crop((left, height - into, left + along, height)),
             picture.crop((0, top, into, top + along)).transpose(PIL.Image.Transpose.ROTATE_270),
             picture.crop((width - into, top, width, top + along)).transpose(PIL.Image.Transpose.ROTATE_90)]
    row = PIL.Image.new("RGB", (4 * (along + 4), into), "white")
    for i, part in enumerate(parts):
        row.paste(part, (i * (along + 4), 0))
    return row.resize((row.width * 2, row.height * 4), PIL.Image.Resampling.NEAREST)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--margins", default="0,8", help="the margins to compare, comma-separated")
    parser.add_argument("--pairs", default="hoovertowernight:the_scream,rainier:autumn_oak,"
                                           "golden_gate:woman-with-hat-matisse", help="photo:painting, comma-separated")
    parser.add_argument("--out", type=Path, default=Path("edges-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    margins = [int(m) for m in args.margins.split(",")]
    means: dict[int, list[float]] = {m: [] for m in margins}
    rows = []
    print(f"{'photo × painting':42} {'margin':>6}  {'top':>6} {'bottom':>6} {'left':>6} {'right':>6}  {'mean':>5}  seconds")
    for pair in args.pairs.split(","):
        photo_name, painting_name = pair.split(":")
        photo = resize_to_long_edge(read_image(SHARED / "content" / f"{photo_name}.jpg"), args.size)
        for margin in margins:
            result = impasto.stylize(photo, SHARED / "style" / f"{painting_name}.jpg",
                                     impasto.Config(max_size=args.size, margin=margin))
            path = result.save(args.out / f"{photo_name}-{painting_name}-margin{margin}.png")
            steps = edge_steps(result.image) - edge_steps(photo)
            means[margin].append(float(np.abs(steps).mean()))
            print(f"{photo_name + ' × ' + painting_name:42} {margin:>6}  " + " ".join(f"{s:+6.1f}" for s in steps)
                  + f"  {means[margin][-1]:5.1f}  {result.timings['total']:.0f}", flush=True)
            rows.append(strips(path))
    for margin, values in means.items():
        print(f"margin {margin}: mean |edge step| {np.mean(values):.1f} grey levels over {len(values)} pictures")
    sheet = PIL.Image.new("RGB", (rows[0].width, sum(row.height + 8 for row in rows)), "white")
    for i, row in enumerate(rows):
        sheet.paste(row, (0, i * (row.height + 8)))
    sheet.save(args.out / "edges.png")
    print(f"sheet: {args.out / 'edges.png'} (one row per picture, in the order above)")


if __name__ == "__main__":
    main()
