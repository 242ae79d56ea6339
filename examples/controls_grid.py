"""Render a grid of impasto's artistic controls on the shared test images, for looking at.

    python examples/controls_grid.py OUT_FOLDER [--size 128] [--iterations 60]

Writes one PNG per control and ``grid.png`` (labelled tiles) into OUT_FOLDER, plus the two mask
images it paints with. Each run is one size (no coarse-to-fine) so the grid takes minutes on a CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

import impasto
from impasto.imageio import read_image, resize_to_long_edge, to_pil

IMAGES = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"
PHOTO = IMAGES / "content/golden_gate.jpg"
STYLE_A = IMAGES / "style/starry_night.jpg"
STYLE_B = IMAGES / "style/the_scream.jpg"


def write_masks(folder: Path) -> tuple[str, str]:
    """Left half and right half of the photo, as white-on-black mask files."""
    _, height, width = read_image(PHOTO).shape
    left = torch.zeros(3, height, width)
    left[:, :, : width // 2] = 1.0
    paths = folder / "mask-left.png", folder / "mask-right.png"
    impasto.save_image(left, paths[0])
    impasto.save_image(1.0 - left, paths[1])
    return str(paths[0]), str(paths[1])


def controls(left: str, right: str) -> list[tuple[str, list[Path], dict]]:
    """(label, paintings, Config changes) for every tile that is a run."""
    return [
        ("default", [STYLE_A], {}),
        ("strength 0.1", [STYLE_A], {"strength": 0.1}),
        ("strength 4", [STYLE_A], {"strength": 4.0}),
        ("colour: luminance", [STYLE_A], {"preserve_color": "luminance"}),
        ("colour: histogram", [STYLE_A], {"preserve_color": "histogram"}),
        ("style scale 0.5", [STYLE_A], {"style_scale": 0.5}),
        ("style scale 2", [STYLE_A], {"style_scale": 2.0}),
        ("blend A+B 0.5/0.5", [STYLE_A, STYLE_B], {"style_blend": (0.5, 0.5)}),
        ("masks: A left, B right", [STYLE_A, STYLE_B], {"masks": (left, right)}),
        ("mask: A left only", [STYLE_A], {"masks": (left,)}),
    ]


def tile(image: Image.Image, label: str, size: int) -> Image.Image:
    """The image on a size × size canvas with its label in a strip above."""
    canvas = Image.new("RGB", (size, size + 14), "white")
    canvas.paste(image, ((size - image.width) // 2, 14 + (size - image.height) // 2))
    ImageDraw.Draw(canvas).text((2, 1), label, fill="black")
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the images (made if missing)")
    parser.add_argument("--size", type=int, default=128, help="long edge of every output")
    parser.add_argument("--iterations", type=int, default=60, help="steps per run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    left, right = write_masks(args.out)
    base = impasto.Config(max_size=args.size, scales=1, iterations=args.iterations)
    photo = resize_to_long_edge(read_image(PHOTO), args.size)
    tiles = [tile(to_pil(photo), "photo", args.size),
             tile(to_pil(resize_to_long_edge(read_image(STYLE_A), args.size)), "painting A", args.size),
             tile(to_pil(resize_to_long_edge(read_image(STYLE_B), args.size)), "painting B", args.size)]
    for label, paintings, changes in controls(left, right):
        result = impasto.stylize(PHOTO, paintings, base.replace(**changes))
        result.save(args.out / f"{label.replace(' ', '_').replace(':', '').replace('/', '-')}.png")
        tiles.append(tile(result.to_pil(), label, args.size))
        print(f"{label}: {result.steps} steps, {result.timings['total']:.0f} s", flush=True)
    columns = 5
    rows = -(-len(tiles) // columns)
    grid = Image.new("RGB", (columns * (args.size + 4), rows * (args.size + 18)), "white")
    for i, t in enumerate(tiles):
        grid.paste(t, ((i % columns) * (args.size + 4), (i // columns) * (args.size + 18)))
    grid.save(args.out / "grid.png")
    print(args.out / "grid.png")


if __name__ == "__main__":
    main()
