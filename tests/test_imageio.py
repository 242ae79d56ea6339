"""Image reading, resizing and saving: pixel values, orientation, colour modes and every error path."""

import io
import os
import struct
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
import torch
from helpers import noise, png_claiming
from PIL import ExifTags, Image, ImageCms, ImageFile, JpegImagePlugin

from impasto import imageio
from impasto.errors import ConfigError, ImageError
from impasto.imageio import (
    header_size,
    margin_operator,
    read_image,
    read_metadata,
    resize,
    resize_operators,
    resize_to_long_edge,
    resize_to_pixels,
    same_aspect,
    save_image,
    sidecar_path,
    to_pil,
    unenlarge,
    with_margin,
    without_margin,
)

def pixel(t, y, x):
    return [round(v * 255) for v in t[:, y, x].tolist()]


# --- reading -------------------------------------------------------------------------------------


def test_png_round_trip_is_exact(tmp_path):
    a = noise()
    Image.fromarray(a).save(tmp_path / "a.png")
    t = read_image(tmp_path / "a.png")
    assert t.shape == (3, 24, 32) and t.dtype == torch.float32
    assert torch.equal(t, torch.from_numpy(a).permute(2, 0, 1).float() / 255)
    save_image(t, tmp_path / "b.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), a)


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:6, :6] = (255, 0, 0)  # red top-left corner as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(a).save(tmp_path / "r.jpg", exif=exif, quality=100)
    t = read_image(str(tmp_path / "r.jpg"))
    assert t.shape == (3, 40, 20)
    r, g, b = pixel(t, 2, 17)  # the stored top-left ends at the top right
    assert r > 200 and g < 60 and b < 60
    assert pixel(t, 2, 2)[0] < 60


def test_grayscale_and_bilevel(tmp_path):
    Image.fromarray(np.array([[0, 128, 255]], np.uint8)).save(tmp_path / "g.png")
    t = read_image(tmp_path / "g.png")
    assert t.shape == (3, 1, 3) and [pixel(t, 0, x) for x in range(3)] == [[0] * 3, [128] * 3, [255] * 3]
    bw = Image.new("1", (2, 1))
    bw.putpixel((1, 0), 1)
    assert read_image(bw)[:, 0].tolist() == [[0.0, 1.0]] * 3


def test_palette_with_and_without_transparency(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "p.png")
    t = read_image(tmp_path / "p.png")
    assert pixel(t, 0, 0) == [10, 20, 30] and pixel(t, 0, 1) == [200, 100, 50]
    p.save(tmp_path / "pt.png", transparency=0)  # index 0 fully transparent -> white
    t = read_image(tmp_path / "pt.png")
    assert pixel(t, 0, 0) == [255, 255, 255] and pixel(t, 0, 1) == [200, 100, 50]


def test_rgba_and_la_composite_over_white():
    rgba = Image.fromarray(np.array([[[0, 0, 0, 0], [0, 0, 0, 255], [200, 0, 0, 128]]], np.uint8))
    t = read_image(rgba)
    assert pixel(t, 0, 0) == [255, 255, 255] and pixel(t, 0, 1) == [0, 0, 0]
    assert pixel(t, 0, 2) == [round(200 * 128 / 255 + 127), 127, 127]
    la = Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), "LA")
    assert pixel(read_image(la), 0, 0) == [255] * 3 and pixel(read_image(la), 0, 1) == [0] * 3


def test_cmyk():
    t = read_image(Image.new("CMYK", (1, 1), (0, 255, 255, 0)))
    assert pixel(t, 0, 0) == [255, 0, 0]
    assert pixel(read_image(Image.new("CMYK", (1, 1), (0, 0, 0, 255))), 0, 0) == [0, 0, 0]


def test_sixteen_bit_gray_keeps_precision(tmp_path):
    im = Image.new("I;16", (3, 1))
    for x, v in enumerate((65535, 32768, 1)):
        im.putpixel((x, 0), v)
    im.save(tmp_path / "g16.png")
    t = read_image(tmp_path / "g16.png")
    assert t[0, 0, 0] == 1.0 and abs(t[1, 0, 1] - 0.5) < 1e-4
    assert 0 < t[2, 0, 2] < 1 / 255  # an 8-bit conversion would make this 0


def test_icc_profiles(tmp_path):
    a = noise(4, 4)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(a).save(tmp_path / "s.png", icc_profile=srgb)
    assert torch.equal(read_image(tmp_path / "s.png"), read_image(a))
    Image.fromarray(a).save(tmp_path / "bad.png", icc_profile=b"not a profile")
    assert torch.equal(read_image(tmp_path / "bad.png"), read_image(a))  # ignored, taken as sRGB


def _linear_profile(space: str) -> bytes:
    """A minimal ICC v2 display profile with a linear tone curve (gamma 1): sRGB's primaries for
    "RGB ", or grey for "GRAY". Pixel value 128 in it is about 188 in sRGB."""
    def s15(*values):
        return b"".join(struct.pack(">i", round(v * 65536)) for v in values)

    def tag(kind, payload):
        return kind + b"\0" * 4 + payload

    name = b"linear test profile\0"
    tags = {b"desc": tag(b"desc", struct.pack(">I", len(name)) + name + b"\0" * 79),
            b"wtpt": tag(b"XYZ ", s15(0.9642, 1.0, 0.8249)), b"cprt": tag(b"text", b"none\0")}
    curve = tag(b"curv", struct.pack(">IH", 1, 256) + b"\0\0")  # one entry: gamma 1.0
    if space == "GRAY":
        tags[b"kTRC"] = curve
    else:
        primaries = {b"rXYZ": (0.4361, 0.2225, 0.0139), b"gXYZ": (0.3851, 0.7169, 0.0971),
                     b"bXYZ": (0.1431, 0.0606, 0.7141)}
        tags.update({key: tag(b"XYZ ", s15(*xyz)) for key, xyz in primaries.items()})
        tags.update({key: curve for key in (b"rTRC", b"gTRC", b"bTRC")})
    table, data, offset = b"", b"", 128 + 4 + 12 * len(tags)
    for key, payload in tags.items():
        data += b"\0" * (-len(data) % 4)
        table += key + struct.pack(">II", offset + len(data), len(payload))
        data += payload
    body = struct.pack(">I", len(tags)) + table + data
    header = (struct.pack(">I", 128 + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntr" + space.encode()
              + b"XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 24 + b"\0" * 4 + s15(0.9642, 1.0, 0.8249) + b"\0" * 48)
    return header + body


def test_profiles_convert_every_mode_and_keep_transparency(tmp_path):
    rgb, grey = _linear_profile("RGB "), _linear_profile("GRAY")
    Image.new("RGB", (2, 1), (128, 128, 128)).save(tmp_path / "rgb.png", icc_profile=rgb)
    assert pixel(read_image(tmp_path / "rgb.png"), 0, 0) == [188] * 3
    la = Image.fromarray(np.array([[[128, 255], [128, 0]]], np.uint8), "LA")
    la.save(tmp_path / "la.png", icc_profile=grey)
    t = read_image(tmp_path / "la.png")
    assert pixel(t, 0, 0) == [188] * 3 and pixel(t, 0, 1) == [255] * 3  # converted; transparent is white
    palette = Image.new("P", (2, 1))
    palette.putpalette([128, 128, 128, 0, 0, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "p.png", icc_profile=rgb, transparency=1)
    t = read_image(tmp_path / "p.png")
    assert pixel(t, 0, 0) == [188] * 3 and pixel(t, 0, 1) == [255] * 3
    keyed = Image.new("RGB", (2, 1), (128, 128, 128))
    keyed.putpixel((1, 0), (0, 0, 0))
    keyed.save(tmp_path / "key.png", icc_profile=rgb, transparency=(0, 0, 0))  # a colour key
    t = read_image(tmp_path / "key.png")
    assert pixel(t, 0, 0) == [188] * 3 and pixel(t, 0, 1) == [255] * 3


def test_transparency_can_mean_black():
    rgba = Image.fromarray(np.array([[[255, 255, 255, 0], [255, 255, 255, 255]]], np.uint8))
    t = read_image(rgba, background=0.0)
    assert pixel(t, 0, 0) == [0, 0, 0] and pixel(t, 0, 1) == [255] * 3


def test_a_truncated_pil_image_is_an_image_error(tmp_path):
    Image.fromarray(noise(64, 64)).save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:3000])
    with Image.open(tmp_path / "cut.png") as im, pytest.raises(ImageError, match="photo: truncated or corrupt"):
        read_image(im, what="photo")


def test_in_memory_sources_and_no_mutation():
    a = noise(5, 7)
    before = a.copy()
    t = read_image(a)
    t += 1  # the result shares no memory with the caller's array
    assert np.array_equal(a, before)
    assert torch.equal(read_image(a.astype(np.uint16) * 257), read_image(a))
    x = torch.rand(1, 3, 5, 7)
    y = read_image(x)
    y.zero_()
    assert x.abs().sum() > 0 and read_image(x).shape == (3, 5, 7)
    g = np.full((2, 2), 0.25, np.float32)
    assert read_image(g).shape == (3, 2, 2) and torch.allclose(read_image(g), torch.tensor(0.25))
    rgba = np.zeros((1, 1, 4), np.float32)
    assert read_image(rgba).tolist() == [[[1.0]]] * 3
    im = Image.new("P", (2, 2))
    im.info["transparency"] = 0
    read_image(im)
    assert im.mode == "P" and im.info == {"transparency": 0}


def test_tensors_are_read_as_arrays_are():
    a = noise(5, 7)
    grey = a[..., 0]
    assert torch.equal(read_image(torch.from_numpy(grey)), read_image(grey))  # H x W
    assert torch.equal(read_image(torch.from_numpy(grey)[None]), read_image(grey))  # 1 x H x W
    sixteen = grey.astype(np.uint16) * 257
    assert torch.equal(read_image(torch.from_numpy(sixteen).to(torch.uint16)), read_image(grey))
    assert torch.equal(read_image(sixteen.astype(">u2")), read_image(grey))  # big-endian, as some files hold it
    bits = grey > 127
    assert torch.equal(read_image(torch.from_numpy(bits)), read_image(bits))
    with pytest.raises(ImageError, match="tensor type torch.int32 is not supported"):
        read_image(torch.zeros(3, 2, 2, dtype=torch.int32))
    with pytest.raises(ImageError, match=r"^image: a meta tensor \(it has no data\) is not an image$"):
        read_image(torch.empty(3, 2, 2, device="meta"))
    with pytest.raises(ImageError, match=r"^image: a torch.sparse_coo tensor \(use a dense one\) is not an image$"):
        read_image(torch.rand(3, 2, 2).to_sparse())


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.full((2, 2, 3), 2.0), "[0, 1]"),
        (np.full((2, 2, 3), -0.5, np.float32), "must lie in [0, 1], found [-0.5, -0.5]"),  # not clipped to black
        (np.full((2, 2, 3), np.nan), "NaN"),
        (np.zeros((2, 2, 5), np.uint8), "shape"),
        (np.zeros((2, 2, 3), np.int32), "int32"),
        (torch.zeros(4, 2, 2), "shape"),
        ([[0.0]], "expected a path"),
    ],
)
def test_bad_in_memory_sources_name_the_role(bad, words):
    with pytest.raises(ImageError, match="^style image: ") as err:
        read_image(bad, what="style image")
    assert words in str(err.value)


def test_float_rounding_past_one_is_clipped_and_a_real_overshoot_is_shown_in_full():
    photo = np.full((2, 2, 3), 0.5, np.float32)
    photo[0, 0] = np.float32(1.0000001)
    photo[1, 1] = np.float32(-1e-7)
    t = read_image(photo)
    assert t.max() == 1.0 and t.min() == 0.0 and t[0, 0, 1] == 0.5
    assert photo[0, 0, 0] == np.float32(1.0000001)  # the caller's array is left alone
    tensor = torch.full((3, 2, 2), 1.0001)
    with pytest.raises(ImageError, match=r"found \[1\.0001, 1\.0001\]"):
        read_image(tensor)
    with pytest.raises(ImageError, match=r"found \[1\.0000105, 1\.0000105\]"):  # just past the slack
        read_image(torch.full((3, 2, 2), 1.0000105))


def test_integer_mode_i_images_are_read_at_their_own_depth():
    eight_bit = Image.fromarray(noise(4, 6))
    assert torch.equal(read_image(eight_bit.convert("I")), read_image(eight_bit.convert("L")))
    sixteen_bit = Image.fromarray(np.array([[65535, 32768, 300]], np.int32), "I")
    assert read_image(sixteen_bit)[0, 0].tolist() == pytest.approx([1.0, 32768 / 65535, 300 / 65535])
    assert read_image(Image.new("I", (2, 2), 255)).unique().tolist() == [1.0]  # 255 is still 8-bit white
    # Above 65535: 32-bit samples over their whole range (they had been clipped to white)
    thirty_two_bit = Image.fromarray(np.array([[2**31 - 1, 2**30, 65536, -5]], np.int32), "I")
    assert read_image(thirty_two_bit)[0, 0].tolist() == pytest.approx([1.0, 0.5, 65536 / (2**31 - 1), 0.0])


def test_float_mode_f_images_are_read_in_0_to_1_or_as_pillows_0_to_255():
    assert read_image(Image.new("F", (2, 2), 1.0)).unique().tolist() == [1.0]  # 1 is white in [0, 1], not 1/255
    assert read_image(Image.new("F", (2, 2), 127.5)).unique().tolist() == [0.5]  # above 1: Pillow's 0-255
    with_nan = Image.fromarray(np.array([[np.nan, 0.5]], np.float32))  # a NaN is black, the rest as it is
    assert with_nan.mode == "F" and read_image(with_nan)[:, 0].tolist() == [[0.0, 0.5]] * 3


def test_a_thirty_two_bit_tiff_keeps_its_tones(tmp_path):
    ramp = (np.linspace(0, 1, 48).reshape(6, 8) * (2**31 - 1)).astype(np.int32)
    Image.fromarray(ramp, "I").save(tmp_path / "stack.tif")  # as astrophotography stackers write them
    read = read_image(tmp_path / "stack.tif")[0]
    assert read.flatten().tolist() == pytest.approx(np.linspace(0, 1, 48).tolist(), abs=1e-6)


def test_a_dark_sixteen_bit_pgm_stays_dark(tmp_path):
    # Pillow opens a PGM whose maximum is above 255 as mode "I", even when no sample is above 255.
    (tmp_path / "dark.pgm").write_bytes(b"P5 2 2 65535\n" + np.array([0, 100, 255, 200], ">u2").tobytes())
    with Image.open(tmp_path / "dark.pgm") as im:
        assert im.mode == "I"
    assert read_image(tmp_path / "dark.pgm")[0].flatten().tolist() == pytest.approx([0, 100 / 65535, 255 / 65535, 200 / 65535])


def test_real_photo(images):
    t = read_image(images / "content" / "golden_gate.jpg")
    assert t.shape == (3, 734, 979) and 0.2 < t.mean() < 0.8


# --- reading errors ------------------------------------------------------------------------------


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match=r"nothere\.png: no such file"):
        read_image(tmp_path / "nothere.png")
    (tmp_path / "pics.png").mkdir()
    with pytest.raises(ImageError, match=r"pics\.png: is a folder"):
        read_image(tmp_path / "pics.png")


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "locked.png"
    Image.fromarray(noise()).save(path)
    path.chmod(0)
    if os.name != "posix" or os.geteuid() == 0:  # root reads every file: pretend it cannot

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(imageio, "open", refuse, raising=False)
    with pytest.raises(ImageError, match=r"locked\.png: permission denied"):
        read_image(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX's")
def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    # Standard input was "an empty file (0 bytes)", and a named pipe's open waited for a writer for ever.
    fifo, said = tmp_path / "fifo.jpg", []
    os.mkfifo(fifo)

    def read():
        with pytest.raises(ImageError) as raised:
            read_image(fifo)
        said.append((str(raised.value), header_size(fifo)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=60)
    if reader.is_alive():  # waiting in open: give it a writer, and fail
        with open(fifo, "wb"):
            pass
        reader.join()
    assert said == [(f"{fifo}: not a file but a pipe or a device (standard input, say); impasto reads image files",
                     None)]


def test_not_an_image(tmp_path):
    (tmp_path / "notes.jpg").write_text("hello, not a picture")
    with pytest.raises(ImageError, match=r"notes\.jpg: not an image file, or not in a format impasto reads"):
        read_image(tmp_path / "notes.jpg")


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated_files(tmp_path, ext):
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    buf = io.BytesIO()
    Image.fromarray(noise(64, 64)).save(buf, format="PNG" if ext == "png" else "JPEG")
    data = buf.getvalue()
    (tmp_path / f"cut.{ext}").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as info:
        read_image(tmp_path / f"cut.{ext}")
    assert str(info.value) == f"{tmp_path / f'cut.{ext}'}: truncated or corrupt image"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "AVIF", "HEIF", "TIFF", "BMP", "GIF", "PPM"])
def test_a_file_cut_anywhere_is_an_image_error_naming_it(tmp_path, fmt):
    # Every reader's damaged headers too: a PPM's raised Pillow's ValueError ("Reached EOF while reading header").
    imageio.read_formats()  # registers pillow-heif's HEIF writer too
    buf = io.BytesIO()
    Image.fromarray(noise(16, 16)).save(buf, format=fmt)
    data, path = buf.getvalue(), tmp_path / f"cut.{fmt.lower()}"
    for length in sorted({1, 2, 3, 5, 8, 12, 20, 40, len(data) // 2}):
        path.write_bytes(data[:length])
        with pytest.raises(ImageError) as info:
            read_image(path)
        assert str(info.value).startswith(f"{path}: "), (length, info.value)
        assert str(info.value).endswith(("truncated or corrupt image", "not in a format impasto reads")), length


def test_pixel_limit_checked_before_decoding(tmp_path):
    Image.fromarray(noise(20, 30)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match=r"big\.png: 30x20 pixels is more than the limit of 599"):
        read_image(tmp_path / "big.png", max_pixels=599)
    assert read_image(tmp_path / "big.png", max_pixels=600).shape == (3, 20, 30)
    with pytest.raises(ImageError, match="content image: 30x20"):
        read_image(Image.new("RGB", (30, 20)), what="content image", max_pixels=100)


def test_pillow_bomb_limit_is_reported(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_claiming(20_000, 10_000))  # 200 megapixels
    with pytest.raises(ImageError) as info:
        read_image(tmp_path / "bomb.png")
    assert str(info.value) == (f"{tmp_path / 'bomb.png'}: too large to read safely "
                               "(200,000,000 pixels, more than the limit of 178,956,970)")


def test_empty_and_headless_files_are_named_so(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError) as info:
        read_image(tmp_path / "empty.jpg")
    assert str(info.value) == f"{tmp_path / 'empty.jpg'}: an empty file (0 bytes), not an image"
    buf = io.BytesIO()
    Image.fromarray(noise(64, 64)).save(buf, format="PNG")
    (tmp_path / "head.png").write_bytes(buf.getvalue()[:20])  # the signature and part of the header
    with pytest.raises(ImageError) as info:
        read_image(tmp_path / "head.png")
    assert str(info.value) == f"{tmp_path / 'head.png'}: truncated or corrupt image"  # not Pillow's words


# --- resizing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, edge, expected",
    [((600, 800), 400, (300, 400)), ((800, 600), 400, (400, 300)), ((30, 40), 80, (60, 80)),
     ((734, 979), 512, (384, 512)), ((1, 1000), 10, (1, 10)), ((50, 50), 50, (50, 50))],
)
def test_resize_to_long_edge(size, edge, expected):
    out = resize_to_long_edge(torch.rand(3, *size), edge)
    assert tuple(out.shape) == (3, *expected) and 0 <= out.min() and out.max() <= 1


def test_resize_rejects_bad_input():
    with pytest.raises(ConfigError, match="at least 1"):
        resize_to_long_edge(torch.rand(3, 4, 4), 0)
    with pytest.raises(ConfigError, match="at least 1"):
        resize_to_pixels(torch.rand(3, 4, 4), 0)
    with pytest.raises(ImageError, match=r"\(3, H, W\), got \(1, 3, 4, 4\)"):
        resize_to_long_edge(torch.rand(1, 3, 4, 4), 8)


def test_resize_to_pixels_keeps_aspect():
    out = resize_to_pixels(torch.rand(3, 300, 400), 30_000)
    assert tuple(out.shape) == (3, 150, 200)
    out = resize_to_pixels(torch.rand(3, 100, 300), 4 * 30_000)
    assert tuple(out.shape) == (3, 200, 600)


def test_shrinking_averages_fine_detail():
    stripes = torch.zeros(3, 64, 64)
    stripes[:, :, ::2] = 1.0  # one-pixel stripes: antialiasing gives flat grey, not stripes
    out = resize_to_long_edge(stripes, 16)
    inner = out[:, :, 1:-1]  # the border columns see only one side of the filter
    assert torch.allclose(inner, torch.full_like(inner, 0.5), atol=0.02)
    grey = torch.full((3, 8, 8), 0.3)
    assert torch.allclose(resize_to_long_edge(grey, 33), torch.tensor(0.3), atol=1e-6)
    sparse = torch.zeros(3, 400, 400)
    sparse[:, :, ::4] = 1.0  # a stripe every 4 columns: bilinear alone, shrunk 4x, samples between them only
    inner = resize(sparse, 100, 100)[:, :, 1:-1]
    assert torch.allclose(inner, torch.full_like(inner, 0.25), atol=0.02)


def test_same_aspect_allows_rounding_only():
    # A mask or start image one pixel off the photo's shape (rounded when it was scaled) is of its shape;
    # 5 % off is another picture's.
    assert same_aspect(100, 100, 100, 101) and same_aspect(100, 101, 100, 100)
    assert not same_aspect(100, 100, 100, 105) and not same_aspect(100, 100, 105, 100)


@pytest.mark.parametrize("new_size", [(15, 20), (50, 70)])  # shrinking (antialiased) and enlarging
def test_resize_operators_are_resize_and_its_gradient(new_size):
    image = torch.rand(3, 30, 41, generator=torch.Generator().manual_seed(0), requires_grad=True)
    rows, columns = resize_operators(30, 41, *new_size)
    assert tuple(rows.shape) == (new_size[0], 30) and tuple(columns.shape) == (new_size[1], 41)
    weights = torch.randn(3, *new_size, generator=torch.Generator().manual_seed(1))
    by_products = (rows @ image @ columns.T).clamp(0.0, 1.0)
    torch.testing.assert_close(by_products, resize(image, *new_size), atol=1e-6, rtol=0)
    expected = torch.autograd.grad((resize(image, *new_size) * weights).sum(), image)[0]
    gradient = torch.autograd.grad((by_products * weights).sum(), image)[0]
    torch.testing.assert_close(gradient, expected, atol=1e-5, rtol=0)
    assert torch.allclose(rows.sum(dim=1), torch.tensor(1.0), atol=1e-6)  # each output pixel averages


def test_unenlarge_recovers_a_picture_saved_enlarged(images):
    # A painting stopped at 64 px of a 128 px run is saved enlarged and rounded to 8 bits.
    painted = resize_to_long_edge(read_image(images / "style/starry_night.jpg"), 64)  # 64×40
    saved = read_image(to_pil(resize(painted, 96, 153)))  # 1.5× and 2.4×, as the sizes of prints are
    recovered = unenlarge(saved, 40, 64)
    assert (recovered - painted).abs().max() < 3 / 255  # the file's rounding, barely grown
    assert (resize(saved, 40, 64) - painted).abs().max() > 0.1  # shrinking it again blurs strokes away
    assert torch.equal(unenlarge(saved, 96, 153), saved)


def test_to_pil_rounds():
    t = torch.tensor([0.6 / 255, 1.4 / 255, 1.0]).view(3, 1, 1)
    assert to_pil(t).getpixel((0, 0)) == (1, 1, 255)
    assert to_pil(torch.full((3, 1, 1), 2.0)).getpixel((0, 0)) == (255, 255, 255)
    assert to_pil(torch.tensor([0, 128, 255], dtype=torch.uint8).view(3, 1, 1)).getpixel((0, 0)) == (0, 128, 255)


def test_save_takes_eight_bit_tensors_and_arrays(tmp_path):
    pixels = noise(4, 6)
    as_tensor = torch.from_numpy(pixels).permute(2, 0, 1)  # uint8, 255 is white
    save_image(as_tensor, tmp_path / "tensor.png")
    save_image(pixels, tmp_path / "array.png")
    for name in ("tensor.png", "array.png"):
        with Image.open(tmp_path / name) as im:
            assert np.array_equal(np.asarray(im), pixels)


def test_formats_that_decode_before_their_size_is_known_or_run_programs_are_refused(tmp_path):
    for name in ("icon.ico", "drawing.eps"):  # an ICO decodes all of its picture on opening; Ghostscript runs an EPS
        Image.new("RGB", (8, 6)).save(tmp_path / name)
        with pytest.raises(ImageError, match=rf"{name}: not an image file, or not in a format impasto reads"):
            read_image(tmp_path / name)
        assert header_size(tmp_path / name) is None


@pytest.mark.parametrize("fmt, suffix", [("AVIF", "avif"), ("HEIF", "heic")])
def test_avif_and_heic_photos_are_read(images, tmp_path, fmt, suffix):
    assert fmt in imageio.read_formats()  # HEIC by pillow-heif, which the tests install (the heic extra)
    with Image.open(images / "content/golden_gate.jpg") as photo:
        photo = photo.resize((120, 90))
    path = tmp_path / f"photo.{suffix}"
    photo.save(path, format=fmt, quality=90)
    expected = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1) / 255
    assert header_size(path) == (120, 90)
    picture = read_image(path)
    assert picture.shape == (3, 90, 120)
    assert (picture - expected).abs().mean() < 0.02  # lossy, but the photo
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ImageError, match=rf"photo\.{suffix}: truncated or corrupt image"):
        read_image(path)


def test_an_avif_whose_header_libavif_refuses_is_a_corrupt_image(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(noise(16, 16)).save(buffer, format="AVIF")
    primary_item = b"pitm\x00\x00\x00\x00\x00\x01"
    assert buffer.getvalue().count(primary_item) == 1
    (tmp_path / "odd.avif").write_bytes(buffer.getvalue().replace(primary_item, primary_item[:-1] + b"\x07"))
    with pytest.raises(ImageError, match=r"odd\.avif: truncated or corrupt image"):  # libavif's RuntimeError
        read_image(tmp_path / "odd.avif")
    assert header_size(tmp_path / "odd.avif") is None


def test_a_heic_photo_without_pillow_heif_says_how_to_read_it(tmp_path):
    imageio.read_formats()  # pillow-heif's writer, registered with its reader
    Image.fromarray(noise(16, 16)).save(tmp_path / "iphone.heic", format="HEIF")
    (tmp_path / "notes.heic").write_text("not a picture at all")
    script = ("import sys; sys.modules['pillow_heif'] = None\n"  # as on a machine without it
              "from impasto.imageio import read_image, read_formats\n"
              "assert 'HEIF' not in read_formats(), read_formats()\n"
              "for name in sys.argv[1:]:\n"
              "    try:\n"
              "        read_image(name)\n"
              "    except Exception as e:\n"
              "        print(type(e).__name__, e)\n")
    done = subprocess.run([sys.executable, "-c", script, "iphone.heic", "notes.heic"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines() == [
        "ImageError iphone.heic: a HEIC image, which needs pillow-heif (pip install pillow-heif)",
        "ImageError notes.heic: not an image file, or not in a format impasto reads"], done.stderr


def test_a_refused_file_does_not_keep_its_pixels_in_the_error(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(noise(256, 256)).save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[:-4000])
    with pytest.raises(ImageError, match="truncated or corrupt image") as info:
        read_image(tmp_path / "cut.png")
    tb, pictures = info.value.__traceback__, []
    while tb is not None:  # a server keeps an error (and its frames) until the garbage collector runs
        pictures += [v for v in tb.tb_frame.f_locals.values() if isinstance(v, Image.Image)]
        tb = tb.tb_next
    assert pictures  # _read_file's image is there...
    for picture in pictures:
        with pytest.raises(ValueError, match="closed"):  # ...but closed, its pixels freed
            picture.im


def test_reading_in_threads_leaves_the_warning_filters_alone(images):
    before = list(warnings.filters)
    paths = [images / "content/golden_gate.jpg", images / "content/hoovertowernight.jpg"]

    def read_many():
        for _ in range(10):
            read_image(paths[0]), header_size(paths[1]), read_metadata(paths[1])

    threads = [threading.Thread(target=read_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert warnings.filters == before  # catch_warnings in threads at once used to leave "ignore all" behind


def test_one_lazily_opened_pil_image_read_by_several_threads_at_once(images):
    path = images / "content/golden_gate.jpg"
    expected = read_image(path)
    for _ in range(3):
        with Image.open(path) as shared:  # not decoded yet: the first reader decodes it
            barrier, results = threading.Barrier(4), []

            def read():
                barrier.wait()
                try:
                    results.append(read_image(shared))
                except Exception as exc:  # a false "corrupt file", or Pillow's own error
                    results.append(exc)

            threads = [threading.Thread(target=read) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert all(isinstance(r, torch.Tensor) and torch.equal(r, expected) for r in results), results


@pytest.mark.parametrize("decoded", [False, True])
def test_a_closed_pil_image_is_said_to_be_closed(images, decoded):
    image = Image.open(images / "content/golden_gate.jpg")
    if decoded:
        image.load()
    image.close()
    with pytest.raises(ImageError, match=r"^image: the PIL image is closed \(read it before closing it\)$"):
        read_image(image)


# --- saving --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["png", "jpg", "jpeg", "tif", "webp", "PNG"])
def test_save_formats_read_back(tmp_path, ext):
    t = resize_to_long_edge(read_image(noise(8, 8)), 32)
    path = save_image(t, tmp_path / f"out.{ext}")
    assert path == tmp_path / f"out.{ext}"
    back = read_image(path)
    assert back.shape == (3, 32, 32) and (back - t).abs().mean() < 0.06
    if ext in ("png", "PNG", "tif", "webp"):  # lossless: the 8-bit picture exactly
        assert torch.equal(back, read_image(to_pil(t)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out.{ext}"]  # no temp file left


@pytest.mark.parametrize("ext", ["png", "jpg", "tif", "webp"])
def test_a_dpi_is_written_where_print_dialogs_read_it(tmp_path, ext):
    picture = torch.rand(3, 4, 6)
    with Image.open(save_image(picture, tmp_path / f"print.{ext}", dpi=240)) as im:
        if ext == "webp":  # EXIF's resolution tags: Pillow reads no dpi from a WebP
            exif = im.getexif()
            assert (exif[ExifTags.Base.XResolution], exif[ExifTags.Base.YResolution]) == (240, 240)
            assert exif[ExifTags.Base.ResolutionUnit] == 2  # inches
        else:  # a PNG's pHYs is in whole pixels per metre: 240 dpi is 9449 of them, 240.0046 dpi
            assert im.info["dpi"] == pytest.approx((240, 240), abs=0.01)
    with Image.open(save_image(picture, tmp_path / f"screen.{ext}")) as im:  # none: Pillow's (1, 1) for a TIFF
        assert im.info.get("dpi", (1, 1)) == (1, 1) and ExifTags.Base.XResolution not in im.getexif()


@pytest.mark.parametrize("ext", ["png", "jpg", "tif", "webp"])
def test_a_picture_is_tagged_as_srgb_and_read_back_as_it_was(tmp_path, ext):
    picture = read_image(noise(6, 8))
    with Image.open(save_image(picture, tmp_path / f"out.{ext}", dpi=300)) as im:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
        assert ImageCms.getProfileDescription(profile).strip() == "sRGB built-in"
        assert ext != "webp" or im.getexif()[ExifTags.Base.XResolution] == 300  # beside the profile
    if ext != "jpg":  # lossless: the same pixels, no colour transform on the way back
        assert torch.equal(read_image(tmp_path / f"out.{ext}"), picture)


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "PNG"])
def test_metadata_round_trip(tmp_path, ext):
    meta = {"style_weight": 1e6, "layers": ["relu1_1", "relu2_1"], "note": "café ☕"}
    path = save_image(torch.rand(3, 4, 4), tmp_path / f"m.{ext}", metadata=meta)
    assert read_metadata(path) == meta
    # A PNG keeps it inside, whatever the case of its extension (a camera's or Windows' .PNG)
    assert (tmp_path / f"m.{ext}.json").exists() == (ext.lower() != "png") == (sidecar_path(path) is not None)
    save_image(torch.rand(3, 4, 4), path)  # saving again without metadata drops the stale sidecar
    assert read_metadata(path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m.{ext}"]


def test_an_image_and_its_sidecar_are_replaced_together(tmp_path, monkeypatch):
    path = save_image(torch.zeros(3, 4, 4), tmp_path / "m.jpg", metadata={"step": 1})
    before, sidecar = path.read_bytes(), tmp_path / "m.jpg.json"
    sidecar.chmod(0o444)  # the sidecar cannot be replaced: neither is the image
    with pytest.raises(ImageError, match=r"m\.jpg\.json: is read-only"):
        save_image(torch.ones(3, 4, 4), path, metadata={"step": 2})
    assert path.read_bytes() == before and read_metadata(path) == {"step": 1}
    sidecar.chmod(0o644)
    real_replace = os.replace

    def sidecar_rename_fails(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", sidecar_rename_fails)
    with pytest.raises(ImageError, match=r"m\.jpg\.json: cannot write \(Input/output error\)"):
        save_image(torch.ones(3, 4, 4), path, metadata={"step": 2})
    # The new image without metadata, not with the old image's (a resume would start from a wrong step)
    assert read_image(path).min() > 0.9 and read_metadata(path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jpg"]


def test_two_writers_of_one_picture_each_keep_their_own_metadata(tmp_path):
    # Interleaved, one writer's picture ended up with the other's sidecar (22 of 150 rounds), or a writer
    # found the other's old sidecar gone under it and raised FileNotFoundError (24).
    path, pairs, errors = tmp_path / "race.jpg", [], []
    for _ in range(60):
        start = threading.Barrier(2)

        def save(value):
            start.wait()
            try:
                save_image(torch.full((3, 8, 8), value), path, metadata={"value": value})
            except Exception as exc:
                errors.append(exc)

        writers = [threading.Thread(target=save, args=(value,)) for value in (0.0, 1.0)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        pairs.append((round(float(read_image(path).mean())), read_metadata(path)["value"]))
    assert errors == [] and all(picture == value for picture, value in pairs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.jpg", "race.jpg.json"]


def test_save_takes_a_batch_of_one_as_read_image_does(tmp_path):
    image = torch.rand(1, 3, 4, 5)
    assert torch.equal(read_image(save_image(image, tmp_path / "one.png")), read_image(to_pil(image[0])))


def test_save_accepts_pil_and_overwrites(tmp_path):
    path = tmp_path / "x.jpg"
    save_image(Image.new("RGBA", (3, 2), (0, 0, 255, 255)), path)
    save_image(Image.new("RGB", (5, 4), (255, 0, 0)), path)
    t = read_image(path)
    assert t.shape == (3, 4, 5) and pixel(t, 1, 1)[0] > 240


def test_save_errors_name_the_path_and_leave_nothing(tmp_path, monkeypatch):
    t = torch.rand(3, 4, 4)
    with pytest.raises(ImageError, match=r"out\.bmp: unsupported extension '\.bmp'; use one of \.png, \.jpg"):
        save_image(t, tmp_path / "out.bmp")
    with pytest.raises(ImageError, match=r"nofolder.*out\.png: folder .* does not exist"):
        save_image(t, tmp_path / "nofolder" / "out.png")
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(ImageError, match=r"taken\.png: is a folder"):
        save_image(t, tmp_path / "taken.png")
    (tmp_path / "saves").mkdir()
    with pytest.raises(ImageError, match=r"saves: is a folder, cannot write a file there"):  # not "extension ''"
        save_image(t, tmp_path / "saves")
    save_image(t, tmp_path / "keep.png")
    before = (tmp_path / "keep.png").read_bytes()

    def disk_full(self, fp, *args, **kwargs):
        fp.write(b"half an image")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(ImageError, match=r"keep\.png: cannot write \(No space left on device\)"):
        save_image(t, tmp_path / "keep.png")
    monkeypatch.undo()
    assert (tmp_path / "keep.png").read_bytes() == before  # the old file is untouched
    with pytest.raises(ImageError, match=r"meta\.png: the metadata cannot be saved as JSON \(Object of type object"):
        save_image(t, tmp_path / "meta.png", metadata={"bad": object()})
    with pytest.raises(ImageError, match=r"expected an image tensor of shape \(3, H, W\), got list"):
        save_image([[0.5]], tmp_path / "list.png")
    with pytest.raises(ImageError, match=r"nan\.png: the image holds NaN or infinite values; nothing was written"):
        save_image(torch.full((3, 2, 2), float("nan")), tmp_path / "nan.png")  # it used to be saved black
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png", "saves", "taken.png"]


@pytest.mark.parametrize("image, path, metadata, message", [
    # A picture scaled 0-255 came out all white: refused, as the same values in an array are.
    (torch.full((3, 2, 2), 0.5) * 255, "out.png", None, r"out\.png: float pixel values must lie in \[0, 1\], found \[127\.5"),
    (torch.zeros(3, 2, 2), None, None, r"^save: expected a file name \(str or path\), not None$"),
    (torch.zeros(3, 2, 2), b"out.png", None, r"^save: expected a file name \(str or path\), not b'out.png'$"),
    (torch.zeros(3, 2, 2), "", None, r"^save: expected a file name \(str or path\), not ''$"),
    (torch.zeros(3, 2, 2), "out.png/", None, r"out\.png/: names a folder; give the file's name$"),
    (torch.zeros(3, 2, 2), "out.png", "notes", r"out\.png: metadata must be a dict, not str$"),  # unreadable after
    (torch.zeros(3, 2, 2), "out.png", {"loss": float("nan")}, r"out\.png: the metadata cannot be saved as JSON"),
])
def test_save_refuses_what_it_would_write_wrong(tmp_path, monkeypatch, image, path, metadata, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImageError, match=message):
        save_image(image, path, metadata=metadata)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, value", [
    ("dpi", 100_000), ("dpi", 0), ("dpi", -5), ("dpi", "300"), ("dpi", True), ("quality", 0), ("quality", 101),
    ("quality", 9.5)])
def test_save_refuses_a_dpi_or_quality_it_would_write_wrong(tmp_path, option, value):
    # A dpi of 100 000 was written as 34 464 (16 bits), -5 raised OverflowError, "300" a TypeError.
    with pytest.raises(ImageError, match=rf"x\.jpg: {option} must be a whole number from 1 to \d+.*, not {value!r}$"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "x.jpg", **{option: value})
    assert list(tmp_path.iterdir()) == []
    assert read_image(save_image(torch.zeros(3, 2, 2), tmp_path / "y.jpg", dpi=np.int64(150))).shape == (3, 2, 2)


def test_save_refuses_an_empty_picture_and_one_too_long_for_its_format(tmp_path):
    with pytest.raises(ImageError, match=r"e\.png: the image has no pixels \(shape \(3, 0, 5\)\); nothing was written"):
        save_image(torch.zeros(3, 0, 5), tmp_path / "e.png")
    # libjpeg printed "Maximum supported image dimension is 65500 pixels" before Pillow's error
    with pytest.raises(ImageError, match=r"w\.webp: a WEBP picture is at most 16383 px a side, not 16384; save it as"):
        save_image(torch.zeros(3, 1, 16384, dtype=torch.uint8), tmp_path / "w.webp")
    with pytest.raises(ImageError, match=r"w\.jpg: a JPG picture is at most 65500 px a side, not 65501"):
        save_image(torch.zeros(3, 65501, 1, dtype=torch.uint8), tmp_path / "w.jpg")
    assert list(tmp_path.iterdir()) == []
    imageio.check_format_holds(tmp_path / "w.jpg", 65500)  # the most a JPEG holds is allowed
    imageio.check_format_holds(tmp_path / "w.webp", 16383)
    with pytest.raises(ImageError, match=r"w\.jpg: a JPG picture is at most 65500 px a side, not 65501"):
        imageio.check_format_holds(tmp_path / "w.jpg", 65501)


def test_a_jpeg_keeps_every_pixels_colour(tmp_path):
    # 4:4:4, not Pillow's default 4:2:0, which halves the colour's resolution: colours bleed across fine strokes
    with Image.open(save_image(read_image(noise(8, 8)), tmp_path / "x.jpg")) as saved:
        assert JpegImagePlugin.get_sampling(saved) == 0


@pytest.mark.parametrize("mode", ["CMYK", "LAB", "HSV", "YCbCr", "F", "I", "La"])
def test_save_writes_a_pil_image_of_any_mode_as_rgb_as_read_image_reads_it(tmp_path, images, mode):
    # Saved as they were, CMYK, LAB, HSV, I and F could not be written as PNG, and TIFF got them tagged sRGB.
    photo = Image.open(images / "content" / "golden_gate.jpg").reduce(8)
    picture = Image.new("La", photo.size, (100, 128)) if mode == "La" else photo.convert(mode)
    if mode == "F":  # Pillow's float pictures are 0-255
        picture = photo.convert("L").convert("F")
    for ext in (".png", ".tif"):
        with Image.open(save_image(picture, tmp_path / f"x{ext}")) as saved:
            assert saved.mode == "RGB"
        assert (read_image(tmp_path / f"x{ext}") - read_image(picture)).abs().max() <= 0.5 / 255
    if mode == "La":  # 100 premultiplied by alpha 128 is grey 199, half over white
        assert pixel(read_image(tmp_path / "x.png"), 0, 0) == [round((199 * 128 + 255 * 127) / 255)] * 3


def test_save_leaves_the_callers_tensor_as_it_was(tmp_path):
    image = torch.full((3, 2, 2), 1.0 + 5e-6)  # a rounding error past white: saved as white
    save_image(image, tmp_path / "out.png")
    assert torch.equal(image, torch.full((3, 2, 2), 1.0 + 5e-6)) and read_image(tmp_path / "out.png").min() == 1.0


def test_an_empty_file_name_is_not_the_current_folder():
    with pytest.raises(ImageError, match="^content image: an empty file name$"):
        read_image("", what="content image")


def test_saving_through_a_link_replaces_the_file_it_names(tmp_path):
    save_image(torch.zeros(3, 2, 2), tmp_path / "target.png")
    (tmp_path / "link.png").symlink_to("target.png")
    save_image(torch.ones(3, 2, 2), tmp_path / "link.png")
    assert (tmp_path / "link.png").is_symlink() and read_image(tmp_path / "target.png").min() == 1.0


def test_a_link_into_a_missing_folder_is_named(tmp_path):
    (tmp_path / "dangling.png").symlink_to("nowhere/x.png")
    with pytest.raises(ImageError, match=r"dangling\.png: folder '.*nowhere' does not exist \(where the link"):
        save_image(torch.zeros(3, 2, 2), tmp_path / "dangling.png")


def test_saving_keeps_a_files_permissions_and_refuses_a_read_only_one(tmp_path):
    path = tmp_path / "out.png"
    save_image(torch.zeros(3, 2, 2), path)
    path.chmod(0o640)
    save_image(torch.ones(3, 2, 2), path)
    assert path.stat().st_mode & 0o777 == 0o640
    path.chmod(0o444)  # refused by its mode even for root, whom the system would let write it
    with pytest.raises(ImageError, match=r"out\.png: is read-only, not replacing it"):
        save_image(torch.zeros(3, 2, 2), path)
    assert read_image(path).min() == 1.0


def test_read_metadata_errors(tmp_path):
    with pytest.raises(ImageError, match="read_metadata: expected the path of an image, not None"):
        read_metadata(None)
    with pytest.raises(ImageError, match="read_metadata: expected the path of an image, not ''"):  # not "."
        read_metadata("")
    with pytest.raises(ImageError, match=r"gone\.png: no such file"):
        read_metadata(tmp_path / "gone.png")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageError, match=r"folder\.png: is a folder, not an image file"):
        read_metadata(tmp_path / "folder.png")
    (tmp_path / "empty.png").write_bytes(b"")  # a picture whose writing never began, say
    with pytest.raises(ImageError, match=r"empty\.png: an empty file \(0 bytes\), not an image$"):
        read_metadata(tmp_path / "empty.png")
    save_image(torch.rand(3, 2, 2), tmp_path / "a.jpg")
    (tmp_path / "a.jpg.json").write_text("{broken")
    with pytest.raises(ImageError, match=r"a\.jpg: cannot read its metadata"):
        read_metadata(tmp_path / "a.jpg")


def test_header_size_reads_only_the_header(tmp_path):
    (tmp_path / "claims.png").write_bytes(png_claiming(8000, 6000))  # no pixels behind the header
    assert header_size(tmp_path / "claims.png") == (8000, 6000)
    (tmp_path / "notes.jpg").write_text("not a picture")
    assert header_size(tmp_path / "notes.jpg") is None and header_size(tmp_path / "missing.png") is None


def test_margin_operator_is_the_mirroring_as_a_matrix():
    image = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    rows, columns = margin_operator(5, 3), margin_operator(7, 3)
    assert rows.shape == (11, 5) and torch.equal(rows.sum(1), torch.ones(11))  # one pixel each
    assert torch.equal(rows @ image[0] @ columns.T, with_margin(image, 3)[0])
    assert torch.equal(without_margin(with_margin(image, 3), 3), image)
    assert torch.equal(margin_operator(4, 0), torch.eye(4)) and with_margin(image, 0) is image
