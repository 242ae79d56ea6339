"""All image input and output of impasto.

Inside the library an image is a float32 tensor of shape (3, H, W), RGB (sRGB), values in [0, 1].
Reading turns whatever a user hands us into that; saving turns it back into a file.

Precision: 16-bit grayscale (I;16, I;16B, and I from a file) keeps all 16 bits; 32-bit integer
grayscale (I with samples above 65535, as in a 32-bit TIFF) is read over its whole range. 16-bit RGB PNGs
are opened by Pillow as 8-bit RGB (the high byte of each sample), so they arrive with 8-bit
precision.
Size: `max_pixels` is checked from the header before decoding; Pillow's own hard limit
(2 x Image.MAX_IMAGE_PIXELS) still applies above it and is reported the same way.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import stat
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image, ImageCms, ImageOps, PngImagePlugin, UnidentifiedImageError

from .config import MAX_DPI
from .errors import ConfigError, ImageError

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray, torch.Tensor]
T = TypeVar("T")

DEFAULT_MAX_PIXELS = 178_956_970  # twice Pillow's warning limit, which is also its hard limit
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
METADATA_KEY = "impasto"
# The longest side a format holds: JPEG's header counts in 16 bits, less libjpeg's margin; WebP's in 14.
MOST_PIXELS_A_SIDE = {"JPEG": 65500, "WEBP": 16383}

# The formats read from files. Not all of Pillow's: an ICO decodes its whole embedded picture before
# its size can be checked (a bomb), an EPS is run by Ghostscript. (A camera's MPO is read as a JPEG.)
_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "TIFF", "BMP", "GIF", "PPM")
# The brands of an ISO media file (its ftyp box) that mark a HEIF image coded in HEVC: an iPhone's HEIC.
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
HEIC_EXTENSIONS = (".heic", ".heif", ".hif")

# What a damaged file raises while Pillow reads its header (besides its OSError), and while it decodes it
# (RuntimeError: libavif's "Failed to decode image", in the AVIF reader's header).
_HEADER_ERRORS = (SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error, RuntimeError)
_DECODE_ERRORS = (OSError, *_HEADER_ERRORS)
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")


def read_image(source: ImageSource, *, what: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS,
               background: float = 1.0) -> torch.Tensor:
    """Read a path, PIL image, numpy array or tensor as a (3, H, W) float32 RGB tensor in [0, 1].

    EXIF orientation is applied, an embedded ICC profile converted to sRGB, and transparency
    composited over ``background`` (1: white, for pictures; 0: black, for masks, where transparent
    means none). The caller's object is never changed. Raises ImageError.
    """
    if isinstance(source, (str, os.PathLike)):
        if not os.fspath(source):  # Path("") would be ".", the current folder
            raise ImageError(f"{what}: an empty file name")
        return _read_file(Path(source), max_pixels, background)
    if isinstance(source, Image.Image):
        _check_size(source, what, max_pixels)
        with _PILLOW:  # one PIL image given to runs in several threads is decoded by one of them
            try:
                source.load()  # a no-op once loaded; a lazily opened, truncated file fails here
            except (*_DECODE_ERRORS, AssertionError) as e:  # Pillow asserts that one never read is open
                if isinstance(e, AssertionError) or str(e) == "Operation on closed image":
                    raise ImageError(f"{what}: the PIL image is closed (read it before closing it)") from None
                raise ImageError(f"{what}: truncated or corrupt image") from None
            return _from_pil(source, what, background)
    if isinstance(source, np.ndarray):
        return _from_array(source, what, background)
    if isinstance(source, torch.Tensor):
        return _from_tensor(source, what)
    raise ImageError(f"{what}: expected a path, PIL image, numpy array or tensor, got {type(source).__name__}")


# warnings.catch_warnings changes the process's filters and is not thread-safe (before Python 3.14):
# two threads reading images would leave every warning ignored for good. Nor may two threads decode one
# lazily opened PIL image. So Pillow is used by one thread at a time.
_PILLOW = threading.RLock()


@contextlib.contextmanager
def _pillow_quietly() -> Iterator[None]:
    """Use Pillow without its harmless complaints (odd EXIF, palette transparency) reaching the caller."""
    with _PILLOW, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def source_name(source: ImageSource, what: str) -> str:
    """How messages name an input: its path, or ``what`` it is when it is an image in memory."""
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else what


def _read_file(path: Path, max_pixels: int, background: float) -> torch.Tensor:
    try:
        mode = os.stat(path).st_mode  # before opening it: a pipe's open waits for a writer
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a folder is said to be one below
            raise ImageError(f"{path}: not a file but a pipe or a device (standard input, say); "
                             "impasto reads image files")
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size == 0:
                raise ImageError(f"{path}: an empty file (0 bytes), not an image")
            # The size limit that Pillow's bomb warning stands for is enforced by _check_size.
            with _pillow_quietly(), _opened(file, path) as im:
                try:
                    _check_size(im, str(path), max_pixels)
                    try:
                        im.load()  # decode everything now, so that a truncated file fails here
                    except _DECODE_ERRORS:  # Pillow's words ("43 bytes not processed") tell a user nothing more
                        raise ImageError(f"{path}: truncated or corrupt image") from None
                    return _from_pil(im, str(path), background)
                finally:  # free the pixels now: an error's traceback would keep them (a server's memory)
                    im.close()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image file") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file, or not in a format impasto reads") from None
    except Image.DecompressionBombError as e:  # over twice Pillow's limit, refused before _check_size can
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
        counted = f"{int(pixels[1]):,} pixels, " if pixels else ""
        raise ImageError(f"{path}: too large to read safely ({counted}more than the limit of {limit:,})") from None
    except OSError as e:  # one with no errno is Pillow's: a header it could not parse
        raise ImageError(f"{path}: cannot read ({e.strerror})" if e.errno else f"{path}: truncated or corrupt image"
                         ) from None


@functools.cache
def read_formats() -> tuple[str, ...]:
    """The formats impasto reads: Pillow's above (AVIF where this Pillow reads it: 11.3 on), and HEIC
    where pillow-heif is installed (``pip install pillow-heif``), whose reader is registered with
    Pillow here, on first use (it too reads an image's size from its header, before decoding it)."""
    try:
        import pillow_heif
    except ImportError:
        heif: tuple[str, ...] = ()
    else:
        pillow_heif.register_heif_opener()
        heif = ("HEIF",)
    Image.init()
    return tuple(fmt for fmt in _PILLOW_FORMATS if fmt in Image.OPEN) + heif


def _unread_heic(file: IO[bytes]) -> bool:
    """Whether ``file`` is a HEIC image that impasto could read with pillow-heif, which is missing."""
    if "HEIF" in read_formats():
        return False
    file.seek(0)
    head = file.read(64)
    if head[4:8] != b"ftyp":
        return False
    box = min(int.from_bytes(head[:4], "big"), len(head))  # the major brand, a version, compatible brands
    return any(head[i:i + 4] in _HEIC_BRANDS for i in (8, *range(16, box - 3, 4)))


def _opened(file: IO[bytes], path: Path) -> Image.Image:
    """Pillow's image of an open file, its header read; a header that Pillow cannot parse is a
    truncated or corrupt image (a PPM's raises ValueError; the OSErrors are read_image's to name)."""
    try:
        return Image.open(file, formats=read_formats())
    except _HEADER_ERRORS:
        raise ImageError(f"{path}: truncated or corrupt image") from None
    except UnidentifiedImageError:
        if _unread_heic(file):
            raise ImageError(f"{path}: a HEIC image, which needs pillow-heif (pip install pillow-heif)") from None
        raise


def header_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) of an image file from its header, without decoding it; None if it cannot be
    read (``read_image`` says why)."""
    return _from_header(path, lambda im: im.size, None)


def frame_count(path: str | os.PathLike) -> int:
    """How many frames an image file holds (an animated GIF, WebP or PNG more than one, of which
    ``read_image`` reads the first); 1 if it cannot be read (``read_image`` says why)."""
    return _from_header(path, lambda im: int(getattr(im, "n_frames", 1)), 1)


def _from_header(path: str | os.PathLike, read: Callable[[Image.Image], T], unread: T) -> T:
    """``read`` of the image file at ``path`` opened, its pixels not decoded; ``unread`` if it cannot be."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe's open would wait for a writer
            return unread
        with _pillow_quietly(), Image.open(path, formats=read_formats()) as im:
            return read(im)
    except (Image.DecompressionBombError, *_DECODE_ERRORS):
        return unread


def _check_size(im: Image.Image, name: str, max_pixels: int) -> None:
    width, height = im.size  # known from the header, before any pixel is decoded
    if width * height > max_pixels:
        raise ImageError(f"{name}: {width}x{height} pixels is more than the limit of {max_pixels:,}")


def _from_pil(im: Image.Image, name: str, background: float) -> torch.Tensor:
    icc, decoded = im.info.get("icc_profile"), im.format is not None  # before the copies below lose it
    try:
        im = ImageOps.exif_transpose(im)  # returns a new image, never the caller's
    except _DECODE_ERRORS:
        pass  # a damaged EXIF block should not stop the picture from being read
    if icc:
        im = _to_srgb(im, icc)
    return _from_array(_pil_to_array(im, decoded), name, background)


def _to_srgb(im: Image.Image, icc: bytes) -> Image.Image:
    """Convert from the embedded profile to sRGB; a profile we cannot use is ignored (sRGB assumed).

    Transparency (an alpha channel, a palette's or a colour key) is set aside and put back after."""
    if im.mode in ("P", "PA") or (im.mode in ("L", "RGB") and "transparency" in im.info):
        im = im.convert("RGBA")
    alpha = im.getchannel("A") if im.mode in ("RGBA", "LA") else None
    colours = im.convert(im.mode[:-1]) if alpha is not None else im
    if colours.mode not in ("RGB", "CMYK", "L"):
        return im
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "sRGB" in ImageCms.getProfileDescription(profile) and im.mode != "CMYK":
            return im  # already sRGB: skip a transform that could only add rounding
        converted = ImageCms.profileToProfile(colours, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return im
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def _pil_to_array(im: Image.Image, decoded: bool) -> np.ndarray:
    """Any Pillow mode -> an (H, W) or (H, W, 3|4) array that _from_array understands (``decoded``:
    the image came from a file)."""
    if im.mode in _SIXTEEN_BIT:
        # Keep all 16 bits: Pillow's own conversion to "L" would drop the low byte.
        return np.clip(np.asarray(im, dtype=np.float32) / 65535.0, 0.0, 1.0)
    if im.mode == "I":
        # From a file (16-bit PGM, TIFF) Pillow scales the samples to 0-65535. Made in memory, "I" has
        # no stated range: 8-bit values (as Pillow's conversions take them) when none is above 255,
        # such as an 8-bit picture converted to "I", else 16-bit ones. Above 65535 the samples are
        # 32-bit (a 32-bit TIFF, a stacked astrophotograph): Pillow's "I" holds up to 2³¹ - 1.
        a = np.asarray(im, dtype=np.float32)
        top = a.max(initial=0.0)
        depth = 255.0 if not decoded and top <= 255 else 65535.0 if top <= 65535 else 2.0 ** 31 - 1
        return np.clip(a / depth, 0.0, 1.0)
    if im.mode == "F":
        a = np.nan_to_num(np.asarray(im, dtype=np.float32))
        # Float images in [0, 1] are taken as they are; larger values as 0-255 like Pillow does.
        return np.clip(a if a.max(initial=0.0) <= 1.0 else a / 255.0, 0.0, 1.0)
    if im.mode in _ALPHA or (im.mode in ("P", "L", "RGB") and "transparency" in im.info):
        im = im.convert("LA") if im.mode == "La" else im  # premultiplied grey, which Pillow converts only so
        return np.asarray(im.convert("RGBA"))
    if im.mode == "L":
        return np.asarray(im)
    return np.asarray(im.convert("RGB"))  # RGB, 1, P, CMYK, YCbCr, LAB, HSV, ...


def _from_array(a: np.ndarray, name: str, background: float = 1.0) -> torch.Tensor:
    """(H, W), (H, W, 1|3|4) uint8 / uint16 / bool / float in [0, 1] -> (3, H, W) float32, any alpha
    composited over ``background``."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or 0 in a.shape:
        raise ImageError(f"{name}: expected an array of shape HxW, HxWx3 or HxWx4, got {a.shape}")
    if a.dtype.byteorder == ">":  # big-endian (from a file or another machine): the same values, native
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype == np.uint8:
        x = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        x = a.astype(np.float32) / 65535.0
    elif a.dtype == np.bool_ or np.issubdtype(a.dtype, np.floating):
        x = a.astype(np.float32)  # always a copy
        _check_range(x, name)
    else:
        raise ImageError(f"{name}: pixel type {a.dtype} is not supported (use uint8, uint16 or float in [0, 1])")
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    elif x.shape[2] == 4:
        alpha = x[..., 3:]
        x = x[..., :3] * alpha + background * (1.0 - alpha)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))  # (H, W, 3) -> (3, H, W)


def _from_tensor(t: torch.Tensor, name: str) -> torch.Tensor:
    """(3, H, W), (1, 3, H, W) or grey (H, W), (1, H, W) float in [0, 1], uint8, uint16 or bool ->
    (3, H, W) float32, as arrays are read."""
    if t.is_meta or t.layout != torch.strided:  # no pixels to read, or not in a grid
        kind = "a meta tensor (it has no data)" if t.is_meta else f"a {t.layout} tensor (use a dense one)"
        raise ImageError(f"{name}: {kind} is not an image")
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 2:
        t = t.expand(3, *t.shape)
    if t.dim() != 3 or t.shape[0] != 3 or t.shape[1] == 0 or t.shape[2] == 0:
        raise ImageError(f"{name}: expected a tensor of shape (3, H, W), (1, 3, H, W) or H x W, got {tuple(t.shape)}")
    t = t.detach().to("cpu")
    if t.dtype in _WHOLE_RANGES:
        return t.to(torch.float32) / _WHOLE_RANGES[t.dtype]
    if not t.is_floating_point():
        raise ImageError(f"{name}: tensor type {t.dtype} is not supported (use float in [0, 1], uint8, uint16 or bool)")
    x = t.to(torch.float32).clone().contiguous()
    _check_range(x.numpy(), name)
    return x


# Whole-number tensor types and the value that is white in each.
_WHOLE_RANGES = {torch.uint8: 255.0, torch.uint16: 65535.0, torch.bool: 1.0}


_RANGE_SLACK = 1e-5  # float colour maths overshoots [0, 1] by a few units in the last place


def _check_range(x: np.ndarray, name: str) -> None:
    """Refuse non-finite or out-of-range floats; clip ``x`` in place where it overshoots by rounding only."""
    if not np.isfinite(x).all():
        raise ImageError(f"{name}: pixel values contain NaN or infinity")
    lo, hi = float(x.min()), float(x.max())
    if lo < -_RANGE_SLACK or hi > 1.0 + _RANGE_SLACK:
        shortest = [np.format_float_positional(x.dtype.type(v), trim="-") for v in (lo, hi)]
        raise ImageError(f"{name}: float pixel values must lie in [0, 1], found [{shortest[0]}, {shortest[1]}]")
    np.clip(x, 0.0, 1.0, out=x)


def resize_to_long_edge(image: torch.Tensor, long_edge: int) -> torch.Tensor:
    """Scale a (3, H, W) image, aspect kept, so that max(H, W) == long_edge (up or down)."""
    return resize(image, *long_edge_shape(*_image_size(image), long_edge))


SOFT_ENLARGEMENT = 4  # a photo enlarged more than this many times comes out soft: the front ends say so


def looks_soft(long_edge: float, width: int, height: int) -> bool:
    """Whether a picture ``long_edge`` px long enlarges a width × height photo so much that it looks soft."""
    return long_edge > SOFT_ENLARGEMENT * max(width, height)


def long_edge_shape(height: int, width: int, long_edge: int) -> tuple[int, int]:
    """(H, W) of a height × width picture scaled, aspect kept, to max(H, W) == long_edge."""
    if long_edge < 1:
        raise ConfigError(f"the long edge must be at least 1 pixel, got {long_edge}")
    scale = long_edge / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def same_aspect(height: int, width: int, other_height: int, other_width: int, tolerance: float = 0.02) -> bool:
    """Whether two pictures have the same shape, up to rounding (``tolerance``, relative)."""
    return abs((width / height) / (other_width / other_height) - 1) <= tolerance


def resize_to_pixels(image: torch.Tensor, pixels: int) -> torch.Tensor:
    """Scale a (3, H, W) image, aspect kept, so that H * W is about `pixels`."""
    return resize(image, *pixels_shape(*_image_size(image), pixels))


def pixels_shape(height: int, width: int, pixels: int) -> tuple[int, int]:
    """(H, W) of a height × width picture scaled, aspect kept, to about ``pixels`` pixels."""
    if pixels < 1:
        raise ConfigError(f"the pixel count must be at least 1, got {pixels}")
    scale = (pixels / (height * width)) ** 0.5
    return max(1, round(height * scale)), max(1, round(width * scale))


def _image_size(image: torch.Tensor) -> tuple[int, int]:
    if image.dim() != 3 or image.shape[0] != 3:
        raise ImageError(f"expected an image tensor of shape (3, H, W), got {tuple(image.shape)}")
    return image.shape[1], image.shape[2]


def resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A (3, H, W) image resampled to height × width: bilinear, antialiased when shrinking."""
    if (height, width) == tuple(image.shape[1:]):
        return image.clone()
    shrinking = height < image.shape[1] or width < image.shape[2]  # antialias only where it filters
    out = F.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=False,
                        antialias=shrinking)
    return out[0].clamp(0.0, 1.0)


def resize_operators(height: int, width: int, new_height: int, new_width: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``resize`` from height × width to new_height × new_width (both axes shrinking, or neither) as
    two matrices, ``rows`` (new_height, height) and ``columns`` (new_width, width):
    ``(rows @ image @ columns.T).clamp(0, 1)`` is ``resize(image, new_height, new_width)`` up to
    rounding, as bilinear resampling, antialiased or not, is separable. Inside a loss the products'
    backward pass adds up in a fixed order, where interpolate's adds gradients atomically on CUDA, in
    an order that varies from run to run."""
    # Column j of each is the unit vector e_j resized along one axis (the other kept as it is).
    rows = resize(torch.eye(height)[None], new_height, height)[0]
    columns = resize(torch.eye(width)[None], width, new_width)[0].T
    return rows, columns


def unenlarge(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The (3, height, width) image whose enlargement by ``resize`` comes closest to ``image`` (least
    squares): a picture painted at a smaller size and saved enlarged, back at its size up to the
    file's rounding (shrinking it with ``resize`` instead would blur it)."""
    if (height, width) == tuple(image.shape[1:]):
        return image.clone()
    rows, columns = resize_operators(height, width, *image.shape[1:])
    return (torch.linalg.pinv(rows) @ image @ torch.linalg.pinv(columns).T).clamp(0.0, 1.0)


def canvas_margin(margin: int, height: int, width: int) -> int:
    """The margin (px) of a height × width picture's canvas for a ``margin`` setting: at most an eighth
    of the short edge (on a thumbnail the margin would be most of the canvas; mirroring needs less
    than the edge)."""
    return min(margin, min(height, width) // 8)


def with_margin(image: torch.Tensor, margin: int) -> torch.Tensor:
    """A (N, C, H, W) ``image`` with ``margin`` px more on each side, into which it is mirrored
    (``margin`` below its short edge): the canvas a run paints (``Objective``)."""
    return F.pad(image, (margin,) * 4, mode="reflect") if margin else image


def margin_operator(length: int, margin: int) -> torch.Tensor:
    """``with_margin`` along one axis of ``length`` px as a (length + 2·margin, length) matrix of 0s
    and 1s: inside a loss its products' backward pass repeats to the last bit on CUDA, where the
    mirroring's own adds gradients atomically (see ``resize_operators``)."""
    index = torch.arange(-margin, length + margin).abs()
    return torch.eye(length)[torch.where(index >= length, 2 * (length - 1) - index, index)]


def without_margin(image: torch.Tensor, margin: int) -> torch.Tensor:
    """The picture inside a canvas (…, H, W): ``image`` less ``margin`` px on each side."""
    return image[..., margin:image.shape[-2] - margin, margin:image.shape[-1] - margin] if margin else image


def to_pil(image: torch.Tensor) -> Image.Image:
    """A (3, H, W) tensor (float in [0, 1], clamped there, or uint8 in 0-255) as an 8-bit RGB PIL
    image (values rounded, not truncated)."""
    if not isinstance(image, torch.Tensor):
        raise ImageError(f"expected an image tensor of shape (3, H, W), got {type(image).__name__}")
    _image_size(image)
    if not image.is_floating_point():
        image = _from_tensor(image, "image")  # whole numbers: uint8's 255 is white, not 1
    x = torch.nan_to_num(image.detach().to("cpu", torch.float32)).clamp(0.0, 1.0)
    a = (x * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()  # (H, W, 3)
    return Image.fromarray(a)


def save_image(
    image: torch.Tensor | Image.Image | np.ndarray,
    path: str | os.PathLike,
    *,
    metadata: dict[str, Any] | None = None,
    quality: int = 95,
    dpi: int | None = None,
) -> Path:
    """Save atomically, format from the extension (.png .jpg .jpeg .tif .tiff .webp).

    ``image`` is a (3, H, W) or (1, 3, H, W) tensor (float in [0, 1] or uint8), a PIL image or an array as
    ``read_image`` takes them. ``metadata`` (JSON-serialisable) goes into an "impasto" text chunk of a
    PNG, or into a sidecar file ``<path>.json`` for the other formats. ``dpi``, pixels per inch, is
    written where print dialogs read a picture's printed size (PNG pHYs, JPEG JFIF, TIFF and WebP
    resolution tags). The picture is tagged as sRGB (an embedded ICC profile), the colours it is
    painted in, for print dialogs and editors that would otherwise guess. Missing folders are not
    created. Raises ImageError.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ImageError(f"save: expected a file name (str or path), not {path!r}")
    if os.fspath(path).endswith(("/", os.sep)):  # which Path would quietly drop
        raise ImageError(f"{path}: names a folder; give the file's name")
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None and path.is_dir():  # more to the point than its missing extension
        raise ImageError(f"{path}: is a folder, cannot write a file there")
    if fmt is None:
        raise ImageError(f"{path}: unsupported extension {path.suffix!r}; use one of {', '.join(SAVE_FORMATS)}")
    if metadata is not None and not isinstance(metadata, dict):  # read_metadata would refuse it
        raise ImageError(f"{path}: metadata must be a dict, not {type(metadata).__name__}")
    try:  # strict JSON (no NaN), so that every reader can read it back
        text = None if metadata is None else json.dumps(metadata, allow_nan=False)  # fails before anything is written
    except (TypeError, ValueError) as exc:
        raise ImageError(f"{path}: the metadata cannot be saved as JSON ({exc})") from None
    if dpi is not None and (isinstance(dpi, bool) or not isinstance(dpi, (int, np.integer)) or not 1 <= dpi <= MAX_DPI):
        raise ImageError(f"{path}: dpi must be a whole number from 1 to {MAX_DPI} pixels per inch, not {dpi!r}")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ImageError(f"{path}: quality must be a whole number from 1 to 100, not {quality!r}")
    if isinstance(image, (np.ndarray, Image.Image)):  # any mode, profile or transparency: RGB in sRGB, as read
        image = read_image(image)
    if isinstance(image, torch.Tensor):
        image = image[0] if image.dim() == 4 and image.shape[0] == 1 else image  # a batch of one, as read
        if image.numel() == 0:
            raise ImageError(f"{path}: the image has no pixels (shape {tuple(image.shape)}); nothing was written")
        if image.is_floating_point() and not bool(torch.isfinite(image).all()):
            raise ImageError(f"{path}: the image holds NaN or infinite values; nothing was written")
        if image.is_floating_point():  # as an array is refused: 0-255 floats would come out white
            _check_range(image.detach().to("cpu", torch.float32, copy=True).numpy(), str(path))  # one copy: it clips
    im = to_pil(image)
    check_format_holds(path, max(im.size))
    options: dict[str, Any] = {"icc_profile": _srgb_profile(), **({} if dpi is None else _resolution(fmt, int(dpi)))}
    if fmt == "PNG" and text is not None:
        options["pnginfo"] = PngImagePlugin.PngInfo()
        options["pnginfo"].add_text(METADATA_KEY, text)  # tEXt, or iTXt when not Latin-1
    elif fmt == "JPEG":
        options.update(quality=int(quality), subsampling=0)  # 4:4:4: no colour bleeding on fine strokes
    elif fmt == "WEBP":
        options["lossless"] = True  # lossy WebP is always 4:2:0: colours would bleed across strokes
    sidecar = sidecar_path(path)
    files = [(path, lambda f: im.save(f, format=fmt, **options))]
    if sidecar and text is not None:
        files.append((sidecar, lambda f: f.write(text.encode("utf-8"))))
    write_atomic(*files, stale=sidecar if sidecar and text is None else None)
    return path


def check_format_holds(path: Path, long_edge: int) -> None:
    """Raise ImageError if the format ``path``'s extension picks cannot hold a picture ``long_edge`` px long
    (before a run, not after it)."""
    most = MOST_PIXELS_A_SIDE.get(SAVE_FORMATS.get(path.suffix.lower(), ""))
    if most and long_edge > most:
        raise ImageError(f"{path}: a {path.suffix[1:].upper()} picture is at most {most} px a side, not {long_edge}; "
                         "save it as .png or .tif")


@functools.cache
def _srgb_profile() -> bytes:
    """LittleCMS's sRGB profile (588 bytes): read_image takes pictures to sRGB, so impasto paints in it."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _resolution(fmt: str, dpi: int) -> dict[str, Any]:
    """Pillow's save options that record ``dpi``: its own for PNG, JPEG and TIFF, EXIF tags for WebP
    (Pillow has no WebP option for it)."""
    if fmt != "WEBP":
        return {"dpi": (dpi, dpi)}
    exif = Image.Exif()
    exif[ExifTags.Base.XResolution] = exif[ExifTags.Base.YResolution] = float(dpi)
    exif[ExifTags.Base.ResolutionUnit] = 2  # inches
    return {"exif": exif}


def file_key(path: str | os.PathLike) -> str:
    """What names one file: the absolute path, without case where the file system ignores it
    (Windows; macOS by default)."""
    resolved = os.path.normcase(str(Path(path).resolve()))
    return resolved.casefold() if sys.platform == "darwin" else resolved


def sidecar_path(path: str | os.PathLike) -> Path | None:
    """Where the metadata of an image saved at ``path`` goes, beside it: ``<path>.json``; None for
    a PNG, which keeps it in a text chunk."""
    path = Path(path)
    return None if path.suffix.lower() == ".png" else path.with_name(path.name + ".json")


def missing_sidecar(path: str | os.PathLike) -> str:
    """For an error about a picture without impasto metadata: where it would be, when that is a sidecar
    file that is missing ("" for a PNG, which keeps it inside)."""
    sidecar = sidecar_path(path)
    return f" (it would be in {sidecar.name}, beside it, which is missing)" if sidecar and not sidecar.exists() else ""


def check_writable(path: Path) -> None:
    """Raise ImageError unless a file can be written at ``path``: not a folder, its folder there,
    not a read-only file (a link is followed to the file it names)."""
    target = Path(os.path.realpath(path))
    try:
        folder = target.is_dir()
    except OSError as exc:  # a name longer than the file system allows (255 bytes, most often)
        raise ImageError(f"{path}: cannot write ({exc.strerror})") from None
    if folder:
        raise ImageError(f"{path}: is a folder, cannot write a file there")
    if not target.parent.is_dir():
        where = f" (where the link {path} points)" if Path(path).is_symlink() else ""
        raise ImageError(f"{path}: folder {str(target.parent if where else path.parent)!r} does not exist{where}")
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:  # a new file (or one another writer just replaced)
        return
    # No write bit at all is read-only even for root, who may write anything (in a container, say).
    if not mode & 0o222 or (not os.access(target, os.W_OK) and target.exists()):
        raise ImageError(f"{path}: is read-only, not replacing it")


Writer = Callable[[IO[bytes]], object]


def write_atomic(*files: tuple[Path, Writer], stale: Path | None = None) -> None:
    """Write each (path, write) through a hidden temporary file in its folder, then rename over the
    target (the file a link names, so that the link stays), keeping an existing file's permissions.

    Files written together (an image and its sidecar) are all written before any is replaced, so a
    failure (a full disk, a read-only sidecar) leaves the old ones as they were. The old sidecar (or
    ``stale``, a file that described the old ones) is removed before the image is replaced: a rename
    failing in between leaves an image without metadata, never with another image's.
    """
    temps: list[Path] = []
    try:
        for path, write in files:
            temps.append(_written_beside(path, write))
        with _replacing_in(Path(os.path.realpath(files[0][0])).parent):
            for path in [*(path for path, _ in files[1:]), *([stale] if stale else [])]:
                _attempt(path, lambda: Path(os.path.realpath(path)).unlink(missing_ok=True))
            for (path, _), tmp in zip(files, temps):
                _attempt(path, lambda: os.replace(tmp, os.path.realpath(path)))
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _replacing_in(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while files in it are replaced: two writers of one picture
    (threads or processes) then replace it and its sidecar one after the other, so that each picture
    keeps its own metadata (interleaved, 22 of 150 rounds of two threads saving one JPEG at once paired
    a picture with the other's sidecar). Where the folder cannot be locked (Windows, which has no flock;
    a file system without locks), nothing is held."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # which releases the lock


def _written_beside(path: Path, write: Writer) -> Path:
    """A hidden temporary file in ``path``'s folder holding what ``write`` writes, synced to disk,
    with the permissions ``path`` has or a new file gets."""
    check_writable(path)
    target = Path(os.path.realpath(path))
    fd, tmp = _attempt(path, lambda: tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            _attempt(path, lambda: write(f))
            _attempt(path, f.flush)
            _attempt(path, lambda: os.fsync(f.fileno()))
        # mkstemp makes 0600: take the replaced file's permissions, or the usual ones for a new file
        _attempt(path, lambda: os.chmod(tmp, _mode_for(target)))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _mode_for(target: Path) -> int:
    """The permissions of the file at ``target``, or those a new file gets (another writer may remove it
    at any moment)."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _attempt(path: Path, action: Callable[[], Any]) -> Any:
    """``action()``, its OSError (or a writer's ValueError) turned into "<path>: cannot write"."""
    try:
        return action()
    except (OSError, ValueError) as e:
        raise ImageError(f"{path}: cannot write ({getattr(e, 'strerror', None) or e})") from None


@functools.cache
def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def read_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """The metadata `save_image` stored with an image (PNG chunk or JSON sidecar), or None."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ImageError(f"read_metadata: expected the path of an image, not {path!r}")
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.suffix.lower() == ".png" and path.stat().st_size == 0:  # where its metadata would be
        raise ImageError(f"{path}: an empty file (0 bytes), not an image")
    try:
        if path.suffix.lower() == ".png":
            with _pillow_quietly(), Image.open(path, formats=("PNG",)) as im:
                text = im.info.get(METADATA_KEY)
        else:
            sidecar = sidecar_path(path)
            text = sidecar.read_text(encoding="utf-8") if sidecar.is_file() else None
        meta = None if text is None else json.loads(text)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise ImageError(f"{path}: cannot read its metadata ({e})") from None
    if meta is not None and not isinstance(meta, dict):
        raise ImageError(f"{path}: cannot read its metadata (a JSON {type(meta).__name__}, not an object)")
    return meta
