"""Built-in inputs for the demo, available from the installed package alone.

The photo is the public-domain portrait of Grace Hopper that matplotlib ships. The style image is
painted here, from a seed: thick brush strokes that follow a swirling flow, in night-sky colours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Colours of the painting (RGB), ordered dark to light within each group.
SKY = np.array([(10, 22, 66), (18, 42, 118), (30, 66, 160), (44, 96, 182), (52, 128, 168),
                (92, 160, 192), (150, 196, 214), (226, 226, 170)], float)
GOLD = np.array([(204, 132, 26), (238, 178, 38), (250, 214, 64), (255, 238, 150), (255, 250, 222)], float)
HILLS = np.array([(14, 22, 52), (24, 44, 88), (32, 66, 82), (22, 56, 48), (66, 88, 124)], float)
CYPRESS = np.array([(12, 20, 14), (26, 40, 22), (44, 58, 28), (62, 48, 26), (18, 18, 30)], float)


def sample_photo_path() -> Path:
    """Path of the sample photo (Grace Hopper, 512x600, public domain) shipped by matplotlib."""
    import matplotlib.cbook  # imported here: nothing heavy happens when impasto is imported

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def sample_style_image() -> Image.Image:
    """The built-in style painting: draw_swirls() with its defaults."""
    return draw_swirls()


def draw_swirls(width: int = 768, height: int = 576, seed: int = 0) -> Image.Image:
    """Paint a swirling, Van-Gogh-like night sky with brush strokes; the same seed gives the same image."""
    rng = np.random.default_rng(seed)
    scene = _Scene(width, height, rng)
    canvas = Image.fromarray(scene.underpainting())
    draw = ImageDraw.Draw(canvas)
    unit = max(width, height) / 768  # stroke sizes are given for the default size
    for stroke_width, length, density in ((9, 46, 1.3), (6, 30, 1.4), (4, 18, 0.9)):
        w = max(1, round(stroke_width * unit))
        count = int(density * width * height / (w * length * unit))
        _paint_strokes(draw, scene, rng, count, w, length * unit)
    for i, (x, y, r) in enumerate(scene.lights):
        _paint_light(draw, rng, x, y, r, max(1, round(3 * unit)), moon=i == 0)
    return canvas.filter(ImageFilter.GaussianBlur(0.6 * unit))


class _Scene:
    """Where things are: the flow the strokes follow and the colour under every point."""

    def __init__(self, width: int, height: int, rng: np.random.Generator) -> None:
        self.width, self.height = width, height
        size = max(width, height)
        y, x = np.mgrid[0:height, 0:width] / size  # (H, W) coordinates, long side 1
        self.horizon = 0.70 * height / size + 0.05 * np.sin(7 * x[0] + rng.uniform(0, 6))  # (W,)
        psi = 0.25 * y + 0.02 * np.sin(9 * x + rng.uniform(0, 6))  # stream function: a gentle drift...
        for _ in range(rng.integers(4, 7)):  # ...and a few vortices in the sky
            cx, cy = rng.uniform(0.05, 0.95) * width / size, rng.uniform(0.05, 0.5)
            r, s = rng.uniform(0.06, 0.16), rng.choice([-1, 1]) * rng.uniform(0.05, 0.1)
            psi += s * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        gy, gx = np.gradient(psi)
        self.flow = _unit(np.stack([gy, -gx], axis=-1))  # (H, W, 2): along the level lines of psi
        # Colour bands along the streamlines, broken up by slow noise.
        self.band = (psi * rng.uniform(28, 36) + 0.35 * _smooth_noise(rng, width, height)) % 1.0

        self.region = np.where(y > self.horizon, 1, 0)  # 0 sky, 1 hills, 2 cypress
        hills = self.region == 1  # long strokes that roll with the horizon, in horizontal bands
        slope = np.gradient(self.horizon) * size * (1 - 3 * (y - self.horizon))  # flatter further down
        self.flow[hills] = _unit(np.stack([np.ones_like(y), slope], axis=-1))[hills]
        depth = (y - self.horizon) * 14 + 0.15 * _smooth_noise(rng, width, height)
        self.band[hills] = depth[hills] % 1.0

        cypress_x = rng.uniform(0.08, 0.22) * width / size  # a dark flame-shaped tree in front
        spread = 0.06 * np.clip((y - 0.12) / 0.6, 0, 1) ** 0.7 * (1 + 0.25 * np.sin(40 * y))
        self.region[np.abs(x - cypress_x) < spread] = 2
        tree = self.region == 2
        self.flow[tree] = _unit(np.stack([0.5 * np.sin(60 * y + 30 * x), -np.ones_like(y)], axis=-1))[tree]
        self.lights = self._place_lights(rng)

    def _place_lights(self, rng: np.random.Generator) -> list[tuple[float, float, float]]:
        size = max(self.width, self.height)
        moon = (self.width * rng.uniform(0.75, 0.9), self.height * rng.uniform(0.1, 0.2), 0.05 * size)
        lights = [moon]
        for _ in range(200):  # stars where they do not crowd each other
            x, y = rng.uniform(0, self.width), rng.uniform(0.03, 0.5) * self.height
            r = rng.uniform(0.012, 0.03) * size
            if all(np.hypot(x - u, y - v) > 2.2 * (r + q) for u, v, q in lights):
                lights.append((x, y, r))
            if len(lights) == 10:
                break
        return lights

    def colours(self, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Base colour (N, 3) at pixel positions: a palette chosen by region, an entry by band."""
        xi = np.clip(px.astype(int), 0, self.width - 1)
        yi = np.clip(py.astype(int), 0, self.height - 1)
        band, region = self.band[yi, xi], self.region[yi, xi]
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * band)
        out = _ramp(SKY, wave ** 1.6)
        out[region == 1] = _ramp(HILLS, band[region == 1])
        out[region == 2] = _ramp(CYPRESS, band[region == 2])
        sky = (region == 0)[:, None]
        for x, y, r in self.lights:  # a golden glow around each light
            glow = np.exp(-((px - x) ** 2 + (py - y) ** 2) / (2 * (2.2 * r) ** 2))[:, None] * sky
            out = out * (1 - glow) + _ramp(GOLD, wave) * glow
        return out

    def underpainting(self) -> np.ndarray:
        """A coarse colour layer under the strokes, so that no bare canvas shows between them."""
        step = 6
        py, px = np.mgrid[0:self.height:step, 0:self.width:step].astype(float)
        small = self.colours(px.ravel(), py.ravel()).reshape(*px.shape, 3)
        img = Image.fromarray(small.clip(0, 255).astype(np.uint8))
        return np.asarray(img.resize((self.width, self.height), Image.Resampling.BILINEAR))


def _paint_strokes(draw: ImageDraw.ImageDraw, scene: _Scene, rng: np.random.Generator,
                   count: int, width: int, length: float) -> None:
    """Trace `count` strokes along the flow at once, then lay each down with shadow and highlight."""
    steps = 8
    pos = rng.uniform((0, 0), (scene.width, scene.height), size=(count, 2))
    colour = scene.colours(pos[:, 0], pos[:, 1])
    colour = colour * rng.normal(1.0, 0.09, (count, 1)) + rng.normal(0, 12, (count, 3))  # per-stroke jitter
    seg = length * rng.uniform(0.6, 1.3, count)[:, None] / steps
    path = [pos]
    for _ in range(steps):
        xi = np.clip(pos[:, 0].astype(int), 0, scene.width - 1)
        yi = np.clip(pos[:, 1].astype(int), 0, scene.height - 1)
        pos = pos + scene.flow[yi, xi] * seg
        path.append(pos)
    paths = np.stack(path, axis=1)  # (N, steps + 1, 2)
    # Plain lists and tuples: Pillow takes them much faster than numpy rows, stroke by stroke.
    lines = paths.reshape(count, -1).tolist()
    ridges = (paths[:, 1:-2] - max(1, width // 3)).reshape(count, -1).tolist()  # paint catching light
    shadows, bodies, lights = (list(map(tuple, c.clip(0, 255).astype(int).tolist()))
                               for c in (colour * 0.5, colour, colour * 1.2 + 35))
    for line, ridge, dark, mid, bright in zip(lines, ridges, shadows, bodies, lights):
        draw.line(line, fill=dark, width=width + 2)
        draw.line(line, fill=mid, width=width)
        draw.line(ridge, fill=bright, width=max(1, width // 3))


def _paint_light(draw: ImageDraw.ImageDraw, rng: np.random.Generator, x: float, y: float, r: float,
                 width: int, moon: bool = False) -> None:
    """A star or the moon: a bright core inside concentric rings of short curved strokes."""
    ring = r
    while ring < 2.6 * r:
        for _ in range(max(4, int(ring / 4))):
            start = rng.uniform(0, 360)
            tone = GOLD[rng.integers(1, 5)] if ring < 1.8 * r else SKY[rng.integers(4, 8)]
            colour = tuple(int(c) for c in np.clip(tone + rng.normal(0, 10, 3), 0, 255))
            end = start + rng.uniform(25, 70)
            draw.arc((x - ring, y - ring, x + ring, y + ring), start, end, fill=colour, width=width)
        ring += width + 1
    core = 0.8 * r
    draw.ellipse((x - core, y - core, x + core, y + core), fill=(255, 236, 120), outline=(236, 170, 40),
                 width=max(1, width // 2))
    if moon:  # an orange disc over the yellow one leaves a crescent
        x, y = x + 0.35 * core, y - 0.25 * core
        draw.ellipse((x - 0.8 * core, y - 0.8 * core, x + 0.8 * core, y + 0.8 * core), fill=(226, 140, 36))
    else:
        draw.ellipse((x - core / 2, y - core / 2, x + core / 2, y + core / 2), fill=(255, 252, 225))


def _unit(v: np.ndarray) -> np.ndarray:
    """Vectors (..., 2) scaled to length 1."""
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-12)


def _ramp(palette: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Colours (N, 3) interpolated along a palette at t in [0, 1]."""
    pos = np.clip(t, 0, 1) * (len(palette) - 1)
    lo = np.minimum(pos.astype(int), len(palette) - 2)
    frac = (pos - lo)[:, None]
    return palette[lo] * (1 - frac) + palette[lo + 1] * frac


def _smooth_noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Slowly varying noise in [-1, 1] of shape (H, W): a coarse random grid, smoothly enlarged."""
    coarse = Image.fromarray(rng.uniform(-1, 1, (5, 7)).astype(np.float32))
    return np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC))
