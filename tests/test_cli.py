"""The command line (impasto/cli.py, and impasto/jobs.py and runner.py for its runs), through main(argv) and real
subprocesses. Images are tiny (32-48 px), runs a few steps."""

import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ON_GLIBC, TWO_SIZES, fail_at_the_second_size, memory_needs, noise, png_claiming
from PIL import Image

import impasto
from impasto import cli, jobs, optimize, runner, stylize
from impasto.cli import build_parser, config_from_args, config_to_toml, main
from impasto.config import Config
from impasto.device import resolve_device
from impasto.memory import MemoryPlan
from impasto.resume import ResumePoint
from impasto.errors import ConfigError, ImageError
from impasto.imageio import read_image, read_metadata, save_image
from impasto.memory import GB
from impasto.vgg import default_weights_path

QUICK = ["-q", "-s", "32", "-n", "2", "--tolerance", "0"]


@pytest.fixture(scope="module")
def photo(images):
    return str(images / "content/golden_gate.jpg")


@pytest.fixture(scope="module")
def painting(images):
    return str(images / "style/the_scream.jpg")


def test_options_reach_the_config():
    args = build_parser().parse_args([
        "a.jpg", "b.jpg", "-o", "o.png", "-s", "300", "--style-layers", "relu1_1,relu3_1",
        "--style-layer-weights", "2,1", "--optimizer", "adam", "--learning-rate", "0.05", "-n", "7",
        "--style-blend", "1", "--init", "noise", "--seed", "3", "--pooling", "max", "-w", "2e3",
        "--content-weight", "2", "--tv-weight", "0.5", "--tolerance", "0", "--style-scale", "1.5",
        "--scales", "2", "--coarse-iterations", "9", "--weights", "w.pth", "--device", "cpu", "--remove-noise"])
    config = config_from_args(args)
    assert config == Config(max_size=300, style_layers=("relu1_1", "relu3_1"), style_layer_weights=(2.0, 1.0),
                            optimizer="adam", learning_rate=0.05, iterations=7, style_blend=(1.0,),
                            init="noise", seed=3, pooling="max", style_weight=2000.0, content_weight=2.0,
                            tv_weight=0.5, tolerance=0.0, style_scale=1.5, scales=2, coarse_iterations=9,
                            weights="w.pth", device="cpu", denoise=1.0)
    assert config_from_args(build_parser().parse_args(["a", "b", "-o", "c"])) == Config()
    flag_first = build_parser().parse_args(["--remove-noise", "a.jpg", "b.jpg", "-o", "c.png"])
    assert flag_first.inputs == ["a.jpg", "b.jpg"] and config_from_args(flag_first) == Config(denoise=1.0)
    assert config_from_args(build_parser().parse_args(["--denoise", "0.5", "--learning-rate", ""])) == \
        Config(denoise=0.5, learning_rate=None)


def test_a_print_size_sets_the_pixels_at_the_dpi_in_force(tmp_path, capsys):
    def config(*argv: str) -> Config:
        return config_from_args(build_parser().parse_args(["a.jpg", "b.jpg", "-o", "c.png", *argv]))

    assert config("--print-size", "42cm") == Config(max_size=4961, dpi=300)  # A3's long edge at 300 dpi
    assert config("--print-size", "16.5in", "--dpi", "240") == Config(max_size=3960, dpi=240)
    settings = tmp_path / "print.toml"
    settings.write_text("dpi = 150\nmax_size = 900\n")
    assert config("--config", str(settings), "--print-size", "420mm") == Config(max_size=2480, dpi=150)
    assert config("--dpi", "300") == Config(dpi=300)  # the picture's size stays max_size's
    with pytest.raises(ConfigError, match="^give --print-size or --max-size, not both: a print size sets the size$"):
        config("--print-size", "42cm", "-s", "800")
    with pytest.raises(ConfigError, match="^print size 1cm at 30 dpi is 12 px; the least is 16 px$"):
        config("--print-size", "1cm", "--dpi", "30")
    assert main(["a.jpg", "b.jpg", "-o", "c.png", "--print-size", "42"]) == 2
    assert capsys.readouterr().err == ("impasto: error: argument --print-size: print size must be a length (42cm, "
                                       "420mm, 16.5in), a sheet (10x15cm, 8x10in) or a paper (A4, letter), not '42' "
                                       "(see impasto --help)\n")
    assert config("--print-size", "A4") == Config(max_size=3508, dpi=300)  # no photo yet: the sheet's long edge
    assert config("--print-size", "0.01in", "--dpi", "65535") == Config(max_size=655, dpi=65535)  # the most dpi
    for dpi in ("0", "-5"):  # refused as without a print size, not taken for the default or turned into pixels
        with pytest.raises(ConfigError, match=f"--dpi must be from 1 to 65535 pixels per inch, not {dpi}$"):
            config("--print-size", "A4", "--dpi", dpi)
    settings.write_text("dpi = 0\n")
    with pytest.raises(ConfigError, match="print.toml: dpi must be from 1 to 65535 pixels per inch, not 0$"):
        config("--config", str(settings), "--print-size", "A4")


def test_a_batch_says_its_time_left_at_the_pace_per_pixel_of_its_photos():
    clock = runner._BatchClock([100, 200, 0, 100])  # the third photo will not be painted
    assert clock.seconds_left(0, 10.0, 10.0) == 70.0  # 20 s for 100 px: 0.2 s a pixel for the 300 after it
    assert clock.seconds_left(1, 5.0, 15.0) == 25.0  # the first took 10 s: 0.1 s a pixel for the last's 100
    assert clock.seconds_left(3, 1.0, 2.0) is None  # the last to paint: its own time left says it


def test_a_batch_says_its_time_left_on_every_photo_but_the_last(photo, painting, tmp_path, capsys):
    _write_photo(tmp_path / "b.png", 1)
    (tmp_path / "out").mkdir()
    argv = ["-c", str(tmp_path / "b.png"), "-c", photo, painting, "-o", str(tmp_path / "out"), "-s", "32", "-n", "3"]
    assert main(argv) == 0
    lines = capsys.readouterr().err.splitlines()
    first = [line for line in lines if line.startswith("[1/2] b.png step ")]  # from the second step: a pace
    assert len(first) == 3 and [bool(re.search(r", \d\d:\d\d for the batch, ", line)) for line in first] == \
        [False, True, True], lines
    assert lines[-2].startswith("wrote") and not any("[2/2]" in line and "batch" in line for line in lines)
    assert re.fullmatch(r"impasto: 2 photos painted in \d+\.\d+ s", lines[-1])
    (tmp_path / "out" / "golden_gate-the_scream.png").unlink()
    assert main([*argv, "--continue"]) == 0  # the first is skipped: the second is the last to paint
    assert "for the batch" not in capsys.readouterr().err
    (tmp_path / "out" / "b-the_scream.png").unlink()
    assert main([*argv, "--continue"]) == 0  # now the second is painted already: nothing after the first
    assert "for the batch" not in capsys.readouterr().err


def test_continue_refuses_outputs_that_have_moved_to_other_photos(painting, tmp_path, capsys):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir(), out.mkdir()
    _write_photo(photos / "b.png", 1), _write_photo(photos / "c.png", 2)
    argv = [str(photos), painting, "-o", f"{out}/{{index}}.png", "-s", "32", "-n", "1", "-q", "--continue"]
    assert main(argv) == 0
    before = {name: (out / name).read_bytes() for name in ("1.png", "2.png")}
    _write_photo(photos / "a.png", 3)  # first in the folder: b would be 2, c 3
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"impasto: error: --continue: {out / '1.png'} holds the painting of {photos / 'b.png'}, which this run would "
        f"write to {out / '2.png'}: the outputs have moved, as {{index}} in -o {out}/{{index}}.png does when a photo "
        "joins or leaves; name them by {stem}, or give a new folder\n")
    assert {name: (out / name).read_bytes() for name in ("1.png", "2.png")} == before and not (out / "3.png").exists()
    (photos / "a.png").unlink(), (photos / "b.png").unlink()  # c would be 1: b's painting, of a photo gone
    assert main(argv) == 2 and f"{out / '1.png'} holds the painting of {photos / 'b.png'}: the outputs have " \
        "moved" in capsys.readouterr().err
    _write_photo(photos / "c.png", 4)  # changed under its name: painted again, as ever
    shutil.copy(photos / "c.png", photos / "b.png")  # back as 1, changed too
    assert main(argv) == 0 and all((out / name).read_bytes() != before[name] for name in before)
    capsys.readouterr()
    assert main([*argv[:-2], "--continue"]) == 0  # b and c are the same photo: each output holds its own
    assert capsys.readouterr().err.count("already painted with these settings; skipped") == 2
    _write_photo(photos / "d.png", 5)  # one photo, into an output it names: painted over another's painting
    assert main([str(photos / "d.png"), *argv[1:3], str(out / "1.png"), *argv[4:]]) == 0


@pytest.mark.parametrize("outcomes, said", [
    (["painted"], "1 photo painted in 1 h 1 min"),
    (["painted", "skipped", "painted"], "2 photos painted in 1 h 1 min, 1 already painted (--continue)"),
    (["skipped", "skipped"], "2 photos already painted (--continue)"),
    (["failed", "painted", "skipped"], "1 of 3 photos failed; 1 painted in 1 h 1 min, 1 already painted (--continue)"),
    (["failed", "failed"], "2 of 2 photos failed"),
])
def test_a_batch_ends_with_a_line_that_sums_it_up(outcomes, said):
    assert runner._batch_summary(outcomes, 3689.0) == said
    assert [runner._duration(s) for s in (0.0374, 0.5, 1.04, 59.94, 59.96, 252.4, 3599.4, 3599.6)] == [
        "0.037 s", "0.5 s", "1.0 s", "59.9 s", "1 min 0 s", "4 min 12 s", "59 min 59 s", "1 h 0 min"]


def test_a_log_file_gets_a_line_at_least_once_a_minute(tmp_path, capsys):
    args = build_parser().parse_args(["a.png", "b.png", "-o", str(tmp_path / "out.png")])
    job = jobs.Job("a.png", tmp_path / "out.png", Config())
    progress = runner.Progress(args, job, "", None, runner.Interrupts(), None, None)
    picture = torch.zeros(3, 2, 2)
    for step in range(1, 101):  # 100 steps of 25 s, as at a print's last size: a tenth is 250 s
        progress._draw(optimize.ProgressEvent(step, 100, 0, 1, 1.0, {}, 25.0 * step, picture, 10.0), {}, "2x2")
    said = [int(line.split()[1].split("/")[0]) for line in capsys.readouterr().err.splitlines()]
    # every tenth (250 s apart) and, between them, once 60 s have gone by: every third step
    assert said == [1, 4, 7] + [s for tenth in range(10, 101, 10) for s in (tenth, tenth + 3, tenth + 6, tenth + 9)
                                if s <= 100]


def test_a_dry_run_says_what_each_photo_would_do_and_writes_nothing(painting, tmp_path, capsys):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir(), out.mkdir()
    _write_photo(photos / "a.png", 1)  # 32x24
    Image.fromarray(noise(90, 30)).save(photos / "b.png")  # 30x90, 1:3
    (photos / "c.png").write_bytes(b"not a picture")
    argv = [str(photos), painting, "-o", f"{out}/{{stem}}.png", "-n", "1", "--continue"]
    assert main([str(photos / "a.png"), *argv[1:], "-s", "48", "-q"]) == 0  # a is painted; b and c are not
    painted = (out / "a.png").read_bytes()
    extra = ["--save-every", "1", "--save-dir", str(tmp_path / "snaps"), "--log-json", str(tmp_path / "log.jsonl"),
             "--plot", f"{out}/{{stem}}-plot.png", "--dry-run"]
    assert main([*argv, "-s", "48", *extra]) == 1  # c would fail: a batch's exit code
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert lines[0] == (f"{photos / 'a.png'} -> {out / 'a.png'}: already painted with these settings "
                        "(--continue skips it)")
    assert re.fullmatch(re.escape(f"{photos / 'b.png'} -> {out / 'b.png'}: 16×48 px; one size, 1 step at most, ")
                        + r"about \d+\.\d+ s on this machine; about \d+\.\d GB of memory", lines[1]), lines[1]
    assert lines[2] == (f"{photos / 'c.png'} -> {out / 'c.png'}: would fail: {photos / 'c.png'}: not an image file, "
                        "or not in a format impasto reads")
    assert len(lines) == 3 and re.fullmatch(r"impasto: dry run: nothing painted or written; about \d+\.\d+ s of "
                                            r"painting in all; 1 of 3 photos would fail", printed.err.splitlines()[-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "photos"]  # no snapshots' folder, log or plot
    assert sorted(p.name for p in out.iterdir()) == ["a.png"] and (out / "a.png").read_bytes() == painted
    # -q: a photo that would fail is still summed up (a skipped one and a failing one: nothing timed)
    assert main(["-c", str(photos / "a.png"), "-c", str(photos / "c.png"), *argv[1:], "-s", "48", "--dry-run",
                 "-q"]) == 1
    assert capsys.readouterr().err == "impasto: dry run: nothing painted or written; 1 of 2 photos would fail\n"
    (photos / "c.png").unlink()
    assert main([*argv, "--print-size", "A4", "--dpi", "10", "--dry-run"]) == 0  # A4 at 10 dpi: 117 x 83 px
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{photos / 'a.png'} -> {out / 'a.png'}: 110×82 px, a 27.9 × 20.8 cm (11.0 × 8.2 in) "
                               "print at 10 dpi; one size, 1 step at most, about ")  # another size: painted anew
    assert lines[1].startswith(f"{photos / 'b.png'} -> {out / 'b.png'}: 39×117 px, a 9.9 × 29.7 cm (3.9 × 11.7 in) "
                               "print at 10 dpi; one size")
    stylize(str(photos / "b.png"), painting, Config(max_size=48, iterations=3),  # b stopped after its second step
            callback=lambda event: event.step == 2).save(out / "b.png")
    assert main([*argv[:4], "-n", "3", "-s", "48", "--continue", "--dry-run", "-q"]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith(f" of memory; goes on from {out / 'b.png'} after step 2")
    assert main([str(photos / "b.png"), *argv[1:3], str(tmp_path / "b.png"), "-s", "1024", "--dry-run", "-q"]) == 0
    assert re.fullmatch(r".* -> .*b\.png: 341×1024 px; 2 sizes \(512, 1024 px\), 250 steps at most, about .* on this "
                        r"machine; about \d+\.\d GB of memory\n", capsys.readouterr().out)
    assert main([str(photos / "b.png"), *argv[1:3], str(tmp_path / "b.png"), "-s", "4096", "--max-memory", "1",
                 "--dry-run"]) == 2  # one photo that would fail: as painting it would
    assert "impasto: error: a 1365×4096 painting needs about" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "photos"]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]


def test_a_dry_run_times_a_strip_too_narrow_at_512_px_at_its_own_size(painting, tmp_path, capsys):
    # Timed at 512 px, where this strip is 5 px wide, it "would fail", though its run paints it.
    save_image(torch.rand(3, 2000, 20), tmp_path / "strip.png")
    argv = [str(tmp_path / "strip.png"), painting, "-o", str(tmp_path / "out.png"), "-s", "1600", "--scales", "1"]
    assert main([*argv, "--dry-run"]) == 0
    printed = capsys.readouterr()
    assert "strip.png -> " in printed.out and ": 16×1600 px; one size, 100 steps" in printed.out
    assert printed.err.splitlines()[-1] == "impasto: dry run: nothing painted or written"  # one photo: no "in all"


def test_a_dry_runs_time_counts_each_steps_pixels_and_how_the_run_fits_in_memory():
    # 150 steps at 512 px, then 100 at 1024 px, the whole network at each (test_api counts the shorter one's)
    config = Config(max_size=1024, refine_style_layers=())
    keeps, gives_back, checkpointed = MemoryPlan(False, True, 0.0), MemoryPlan(False, False, 0.0), \
        MemoryPlan(True, False, 0.0)
    # a 4:3 photo: 512×384 px (196 608) at 512; 1024×768 (786 432) at 1024, and the composition term's 196 608
    work = 150 * 196_608 + 100 * (786_432 + 196_608)
    assert runner._painting_seconds(config, (3000, 4000), keeps, 1e-6) == pytest.approx(work * 1e-6)
    assert runner._painting_seconds(config, (3000, 4000), gives_back, 1e-6) == pytest.approx(work * 1.65e-6)
    assert runner._painting_seconds(config, (3000, 4000), checkpointed, 1e-6) == pytest.approx(work * 1.65 * 1.35e-6)
    stopped = ResumePoint(size_index=1, size=1024, steps_at_size=40, steps=190, seconds=60.0, total=250, inputs={})
    assert runner._painting_seconds(config, (3000, 4000), keeps, 1e-6, stopped) == pytest.approx(60 * 983_040e-6)
    alone = config.replace(composition_weight=0.0)  # no composition term: a 1024 px step computes its own pixels
    assert runner._painting_seconds(alone, (3000, 4000), keeps, 1e-6) == pytest.approx(
        (150 * 196_608 + 100 * 786_432) * 1e-6)


def test_a_sheet_fits_each_photo_of_a_batch(photo, painting, tmp_path, capsys):
    Image.fromarray(noise(90, 30)).save(tmp_path / "tall.png")  # 1:3, where golden_gate is 4:3
    (tmp_path / "out").mkdir()
    argv = ["-c", photo, "-c", str(tmp_path / "tall.png"), painting, "-o", str(tmp_path / "out"), "--print-size",
            "2x3in", "--dpi", "30", "-n", "1"]  # 90 x 60 px
    assert main(argv) == 0
    wrote = [line for line in capsys.readouterr().err.splitlines() if line.startswith("wrote")]
    # one step is "1 step"; each picture as tall as the sheet is short, or as long as it
    assert [line.partition(" (1 step, ")[0] for line in wrote] == [
        f"wrote {tmp_path / 'out' / 'golden_gate-the_scream.png'}, a 6.8 × 5.1 cm (2.7 × 2.0 in) print at 30 dpi",
        f"wrote {tmp_path / 'out' / 'tall-the_scream.png'}, a 2.5 × 7.6 cm (1.0 × 3.0 in) print at 30 dpi"]
    for name, size in (("golden_gate", (80, 60)), ("tall", (30, 90))):
        with Image.open(tmp_path / "out" / f"{name}-the_scream.png") as im:
            assert im.size == size
    assert main([*argv, "--continue"]) == 0  # each photo's own size is the setting it was painted with
    err = capsys.readouterr().err
    assert err.count("already painted with these settings; skipped") == 2
    assert err.endswith("\nimpasto: 2 photos already painted (--continue)\n")
    assert main([photo, painting, "--print-size", "2x3in", "--dpi", "30", "--print-config"]) == 0
    assert "max_size = 80\n" in capsys.readouterr().out
    for photos in ([], ["-c", photo, "-c", str(tmp_path / "tall.png")]):  # none, or two: no one photo to fit
        assert main([*photos, "--print-size", "2x3in", "--dpi", "30", "--print-config"]) == 0
        printed = capsys.readouterr()
        assert "max_size = 90\n" in printed.out and printed.err == (
            "impasto: note: --print-size 2x3in fits each photo on the sheet as it is painted; max_size here is the "
            "sheet's long edge\n")


def test_a_print_is_written_with_its_dpi_and_its_size_is_said(photo, painting, tmp_path, capsys):
    out = tmp_path / "print.png"
    assert main([photo, painting, "-o", str(out), "--print-size", "1.6in", "--dpi", "30", "-n", "2",
                 "--tolerance", "0"]) == 0
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"wrote {out}, a 4.1 × 3.0 cm (1.6 × 1.2 in) print at 30 dpi (2 steps")
    assert main(["--rerun", str(out)]) == 0
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"wrote {tmp_path / 'print-rerun.png'}, a 4.1 × 3.0 cm")
    for picture in (out, tmp_path / "print-rerun.png"):
        with Image.open(picture) as im:
            assert im.size == (48, 36) and im.info["dpi"] == pytest.approx((30, 30), abs=0.01)
        assert read_metadata(picture)["config"]["dpi"] == 30 and read_metadata(picture)["config"]["max_size"] == 48


@pytest.mark.parametrize("flags, noted", [({"avx2"}, True), ({"avx512_bf16"}, False), (set(), False)])
def test_bfloat16_on_a_cpu_without_it_gets_a_note(photo, painting, tmp_path, capsys, monkeypatch, flags, noted):
    monkeypatch.setattr("impasto.device._cpu_flags", lambda: flags)  # an AVX2 CPU, one with AVX-512 BF16, macOS
    out = tmp_path / "out.png"
    assert main([photo, painting, "-o", str(out), "-s", "32", "-n", "1", "--precision", "bfloat16", "--device",
                 "cpu"]) == 0
    note = ("impasto: note: this CPU has no bfloat16 arithmetic (AVX-512 BF16 or AMX): --precision bfloat16 is "
            "emulated, many times slower than float32 (40 times on AVX2)")
    assert (note in capsys.readouterr().err.splitlines()) is noted
    assert main([photo, painting, "-o", str(out), "-s", "32", "-n", "1", "--device", "cpu"]) == 0  # auto
    assert "no bfloat16 arithmetic" not in capsys.readouterr().err


def test_help_groups_options_with_defaults(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for heading in ("files and runs:", "progress and reports:", "size:", "objective:", "optimisation:", "output:"):
        assert heading in out
    assert re.search(r"--max-size( N)?, -s N", out)  # Python 3.13's argparse names the value once
    assert "(default: relu4_2)" in out and "--remove-noise        the same as --denoise 1" in out
    assert "130 / 143 / 129 interrupted" in out and "{stem}" in out
    assert "(default: )" not in out  # an empty list is no default to show (--masks, --style-blend)
    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"impasto {impasto.__version__}"


@pytest.mark.parametrize("argv, said", [
    (["--help"], []), (["--version"], []),
    (["--max-size", "big"], ["impasto: error: argument --max-size/-s: 'big' is not a whole number (see impasto --help)"]),
    (["--bogus"], ["impasto: error: unrecognized arguments: --bogus (see impasto --help)"]),
    (["serve", "--help"], []),
    (["serve", "--port", "x"], ["impasto serve: error: argument --port: 'x' is not a whole number (see impasto serve --help)"]),
    (["serve", "--wokers", "2"], ["impasto serve: error: unrecognized arguments: --wokers 2 (did you mean --workers?) "
                                  "(see impasto serve --help)"]),
    # "--bogus" and "--host" share their dashes and "os", nothing that makes one a misspelling of the other
    (["serve", "--bogus"], ["impasto serve: error: unrecognized arguments: --bogus (see impasto serve --help)"])])
def test_help_version_and_usage_errors_answer_without_loading_torch(argv, said):
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "impasto", *argv], capture_output=True, text=True,
                          timeout=60)
    lines = done.stderr.splitlines()
    imported = {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}
    assert done.returncode == (2 if said else 0) and "impasto.cli" in imported, done.stderr
    assert not imported & {"torch", "numpy", "PIL", "impasto.runner"}
    assert [line for line in lines if not line.startswith("import time:")] == said


def test_run_writes_image_log_plot_and_steps(photo, images, tmp_path, capsys):
    out, log, plot, steps = tmp_path / "painted.jpg", tmp_path / "log.jsonl", tmp_path / "loss.png", tmp_path / "steps"
    second = str(images / "style/starry_night.jpg")
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    code = main([photo, str(images / "style/the_scream.jpg"), second, "-o", str(out), "-s", "48", "-n", "3",
                 "--tolerance", "0", "--style-blend", "0.7,0.3", "--tv-weight", "1", "--log-json", str(log),
                 "--plot", str(plot), "--save-every", "2", "--save-dir", str(steps), "--denoise", "0.5"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored
    # not a terminal: a plain line per tenth of the run (every step of 3), not a redrawn bar
    lines = [line for line in err.splitlines() if not line.startswith("impasto: using the GPU")]  # on CUDA
    assert [line.split(",")[0] for line in lines[:3]] == ["step 1/3", "step 2/3", "step 3/3"] and "\r" not in err
    assert re.match(r"step 1/3, \d+\.\d s, content ", lines[0]) and " left" not in lines[2]  # none known at the first
    assert re.match(r"step 2/3, \d+\.\d s, 00:\d\d left, content ", lines[1])
    assert "content" in lines[2] and "style" in lines[2] and "tv" in lines[2]
    assert lines[3].startswith(f"wrote {out} (3 steps")
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.size == (48, 36)
    meta = read_metadata(out)  # JSON sidecar for JPEG
    assert meta["config"]["style_blend"] == [0.7, 0.3] and meta["config"]["denoise"] == 0.5
    assert meta["inputs"]["paths"] == {"content": photo, "style": [str(images / "style/the_scream.jpg"), second]}
    assert meta["steps"] == 3 and meta["stop_reason"] == "iterations"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and {r["total"] for r in records} == {3}
    assert records[0]["input"] == photo and records[0]["size"] == [36, 48] and records[0]["scale"] == 0
    assert records[0]["seconds_left"] is None  # the first step's time holds the setup: no pace yet
    assert records[1]["seconds_left"] == pytest.approx(records[1]["elapsed"] - records[0]["elapsed"], abs=2e-4)
    assert records[-1]["seconds_left"] == 0
    for r in records:
        assert r["loss"] == pytest.approx(sum(r["terms"].values()), rel=1e-5)
        assert r["loss"] == pytest.approx(r["content"] + r["style"] + r["tv"], rel=1e-5)
    assert records[meta["image_step"] - 1]["loss"] == pytest.approx(meta["final_losses"]["loss"])  # its picture's
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size == (840, 480)
    assert sorted(p.name for p in steps.iterdir()) == ["painted-step00002.png"]
    snapshot = read_metadata(steps / "painted-step00002.png")
    assert snapshot["steps"] == 2 and snapshot["stopped_at"] == {"size_index": 0, "size": 48, "steps_at_size": 2}
    assert snapshot["config"] == meta["config"] and snapshot["inputs"] == meta["inputs"]


def test_the_summary_says_how_a_run_saved_memory_to_fit(photo, painting, tmp_path, capsys):
    config = Config(max_size=64, iterations=2, tolerance=0.0, scales=1)
    device = resolve_device(config.device)
    needs = memory_needs(config, photo, painting, 48, 64)  # golden_gate at a 64 px long edge
    said, metadata = [], []
    for max_memory in (needs[0] * 1.01, (needs[0] + needs[1]) / 2, (needs[1] + needs[2]) / 2):
        out = tmp_path / f"{len(said)}.png"
        assert main([photo, painting, "-o", str(out), "-s", "64", "-n", "2", "--tolerance", "0", "--scales", "1",
                     "--max-memory", f"{max_memory / GB:.6f}"]) == 0
        said.append(capsys.readouterr().err.splitlines()[-1])
        metadata.append(read_metadata(out))
    returns_freed = ON_GLIBC and device.type == "cpu"  # elsewhere a run that cannot keep freed memory checkpoints
    assert said[0].endswith("stopped by iterations)")
    assert said[1].endswith("freed memory given back at every step to fit in memory)" if returns_freed
                            else "activations recomputed to fit in memory)")
    assert said[2].endswith("stopped by iterations, activations recomputed to fit in memory)")
    assert [(m["checkpointed"], m["keeps_freed"]) for m in metadata] == [
        (False, True), (not returns_freed, False), (True, False)]


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX's")
@pytest.mark.parametrize("rows, columns", [(24, 100), (24, 0), (0, 100)])
def test_a_terminal_gets_a_progress_bar_if_it_tells_its_size(photo, painting, tmp_path, rows, columns):
    import fcntl
    import struct
    import termios

    screen, terminal = os.openpty()  # a real terminal for the command's stderr; 0: as nobody sized it
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    try:
        run = subprocess.run([sys.executable, "-m", "impasto", photo, painting, "-o", str(tmp_path / "out.png"),
                              "-s", "48", "-n", "3", "--tolerance", "0"], stderr=terminal, timeout=300)
        os.close(terminal)
        err = b""
        with contextlib.suppress(OSError):  # EIO once all is read and the terminal is closed
            while chunk := os.read(screen, 4096):
                err += chunk
    finally:
        os.close(screen)
    err = err.decode()
    assert run.returncode == 0, err
    if rows and columns:  # redrawn in place
        assert "\r" in err and "3/3" in err and ("step/s" in err or "s/step" in err) and "step 1/3," not in err
    else:  # tqdm would draw nothing in 0 columns or rows: a plain line a step, as into a log
        lines = [line for line in err.splitlines() if not line.startswith("impasto: using the GPU")]  # on a GPU
        assert [line.split(",")[0] for line in lines[:3]] == ["step 1/3", "step 2/3", "step 3/3"]


def test_a_double_dash_ends_the_options(photo, painting, tmp_path, monkeypatch):
    # Intermixed parsing took no notice of "--", and "-photo.jpg" after it for an unknown option.
    monkeypatch.chdir(tmp_path)
    shutil.copy(photo, "-photo.jpg")
    assert main(["-q", "-s", "32", "-n", "1", "-o", "out.png", "--", "-photo.jpg", painting]) == 0
    assert read_metadata("out.png")["config"]["max_size"] == 32 and read_image("out.png").shape == (3, 24, 32)
    assert main(["-q", "-o", "out.png", "--", "-photo.jpg", "-s", "32"]) == 2  # an image called "-s", not an option


def test_batch_snapshots_with_the_same_names_are_refused(images, painting, tmp_path, capsys):
    photos = [str(images / "content" / name) for name in ("golden_gate.jpg", "rainier.jpg")]
    argv = ["-c", photos[0], "-c", photos[1], painting, "-o", str(tmp_path / "r{index}" / "painted.png"),
            "--save-every", "2", "--save-dir", str(tmp_path / "steps"), *QUICK]
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    assert main(argv) == 2
    assert "--save-every: two photos' snapshots would have the same names" in capsys.readouterr().err
    argv[argv.index("-o") + 1] = str(tmp_path / "{stem}.png")
    assert main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "steps").iterdir()) == [
        "golden_gate-step00002.png", "rainier-step00002.png"]


def test_a_snapshot_can_be_resumed_as_a_stopped_picture(photo, painting, tmp_path, capsys):
    # A run killed outright (out of memory, a power cut) leaves no stopped picture, but its snapshots.
    out, steps, log = tmp_path / "out.png", tmp_path / "steps", tmp_path / "log.jsonl"
    assert main([photo, painting, "-o", str(out), *QUICK[1:], "-n", "8", "--save-every", "3", "--save-dir",
                 str(steps), "--log-json", str(log)]) == 0
    capsys.readouterr()
    resumed = tmp_path / "resumed.png"
    assert main(["--resume", str(steps / "out-step00003.png"), "-o", str(resumed), "--log-json", str(log)]) == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]  # the resumed picture's steps after 3
    assert [r["step"] for r in records if r["output"] == str(resumed)] == list(range(4, 9))
    meta = read_metadata(resumed)
    kept = next(r for r in records if r["output"] == str(resumed) and r["step"] == meta["image_step"])
    assert kept["loss"] == pytest.approx(meta["final_losses"]["loss"])
    assert f"impasto: resuming {steps / 'out-step00003.png'} at step 4 of 8 (32 px)" in capsys.readouterr().err
    assert meta["steps"] == 8 and meta["stop_reason"] == "iterations" and meta["resumed_from"]["steps"] == 3
    assert sorted(p.name for p in steps.iterdir()) == ["out-step00003.png", "out-step00006.png"]  # none resumed
    (tmp_path / "prints").mkdir()  # -o a folder: the painting keeps its own name there, not its snapshot's
    assert main(["--resume", str(steps / "out-step00006.png"), "-o", f"{tmp_path / 'prints'}/", "-q"]) == 0
    assert [p.name for p in (tmp_path / "prints").iterdir()] == ["out.png"]
    # --continue takes the latest snapshot up by itself when the painting is missing (the run was killed)
    out.unlink()
    assert main([photo, painting, "-o", str(out), *QUICK[1:], "-n", "8", "--save-every", "3", "--save-dir",
                 str(steps), "--continue"]) == 0
    assert f"impasto: resuming {steps / 'out-step00006.png'} at step 7 of 8" in capsys.readouterr().err
    assert read_metadata(out)["resumed_from"]["steps"] == 6 and read_metadata(out)["steps"] == 8
    out.unlink()  # resumed without -o, a snapshot paints the run's output, not over itself
    assert main(["--resume", str(steps / "out-step00003.png")]) == 0
    assert (f"impasto: note: {steps / 'out-step00003.png'} is a --save-every snapshot of {out}; the painting goes "
            "there") in capsys.readouterr().err
    assert read_metadata(out)["steps"] == 8 and read_metadata(steps / "out-step00003.png")["steps"] == 3
    finished = out.read_bytes()  # the finished painting is not painted over from an earlier snapshot
    assert main(["--resume", str(steps / "out-step00003.png")]) == 2
    assert (f"a --save-every snapshot of {out}, which holds the run's finished painting; to paint it again from "
            "the snapshot, name the new file with -o") in capsys.readouterr().err
    assert out.read_bytes() == finished
    assert main([photo, painting, "-o", str(out), *QUICK]) == 0  # out.png now holds another run's picture
    assert main(["--resume", str(steps / "out-step00003.png")]) == 2
    assert f"a --save-every snapshot of {out}, which now holds another picture; name the painting's file with -o" in (
        capsys.readouterr().err)
    stylize(photo, painting, Config(max_size=32, iterations=8, tolerance=0.0, style_weight=100.0),  # stopped too,
            callback=lambda event: event.step == 2).save(out)  # but another run: not resumed over
    assert main(["--resume", str(steps / "out-step00003.png")]) == 2
    assert f"a --save-every snapshot of {out}, which now holds another picture; name the painting's file with -o" in (
        capsys.readouterr().err)
    old = tmp_path / "old.png"  # a snapshot of impasto before 0.9.0 recorded only its step and losses
    save_image(read_image(steps / "out-step00003.png"), old, metadata={"step": 3, "loss": 1.0, "losses": {}})
    assert main(["--resume", str(old)]) == 2
    assert "a --save-every snapshot of impasto before 0.9.0 records only its step and losses" in capsys.readouterr().err


def test_names_differing_only_in_case_are_one_file_on_macos(photo, painting, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")  # APFS ignores case by default
    shutil.copy(photo, tmp_path / "Photo.jpg")
    assert main([str(tmp_path / "Photo.jpg"), painting, "-o", str(tmp_path / "photo.JPG"), *QUICK]) == 2
    assert "-o would overwrite an input image" in capsys.readouterr().err


def test_a_log_or_snapshot_that_cannot_be_written_does_not_lose_the_painting(photo, painting, tmp_path, capsys):
    for step in (1, 2):  # no snapshot can be written there
        (tmp_path / f"out-step0000{step}.png").mkdir()
    code = main([photo, painting, "-o", str(tmp_path / "out.png"), *QUICK, "--log-json", "/dev/full",
                 "--save-every", "1"])
    err = capsys.readouterr().err
    assert code == 0 and (tmp_path / "out.png").is_file()
    # each said once: the run gives the log and the snapshots up, not a warning at every step
    assert err.count("warning: --log-json: cannot write /dev/full (No space left on device); going on without it") == 1
    assert err.count("warning: --save-every: cannot write") == 1 and "out-step00001.png" in err


def test_with_content_every_other_image_is_a_painting_and_a_note_says_so(photo, images, tmp_path, capsys):
    art = [str(images / "style/starry_night.jpg"), str(images / "style/the_scream.jpg")]
    assert main(["-c", photo, *art, "-o", str(tmp_path / "out.png"), *QUICK[1:]]) == 0
    assert f"impasto: note: with --content, every other image is a painting: blending 2 ({', '.join(art)})" in \
        capsys.readouterr().err
    assert read_metadata(tmp_path / "out.png")["inputs"]["paths"]["style"] == art
    link = tmp_path / "same.jpg"  # the second painting again, by another name: blended with itself, said so
    link.symlink_to(art[1])
    assert main([photo, art[1], str(link), "-o", str(tmp_path / "out.png"), *QUICK[1:]]) == 0
    assert f"impasto: note: {art[1]} is given twice as a painting: it counts twice in the blend\n" in \
        capsys.readouterr().err


def test_a_photo_given_as_its_own_painting_is_painted_so_with_a_note(images, painting, tmp_path, capsys):
    photo = images / "content/golden_gate.jpg"
    same_file = str(photo.parent / ".." / "content" / photo.name)  # another name for it
    assert main([str(photo), same_file, "-o", str(tmp_path / "self.png"), *QUICK[1:]]) == 0
    assert (f"impasto: note: {photo} is the painting too, so it is painted in its own style"
            in capsys.readouterr().err)
    assert main([str(photo), painting, "-o", str(tmp_path / "other.png"), *QUICK[1:]]) == 0
    assert main([str(photo), same_file, "-o", str(tmp_path / "quiet.png"), *QUICK]) == 0
    assert "own style" not in capsys.readouterr().err


def test_braces_in_one_photos_name_are_kept_and_a_batch_needs_known_placeholders(images, painting, tmp_path, capsys):
    photo = str(images / "content/golden_gate.jpg")
    assert main([photo, painting, "-o", str(tmp_path / "final {v2}.PNG"), *QUICK]) == 0  # an extension in capitals too
    with Image.open(tmp_path / "final {v2}.PNG") as image:
        assert image.format == "PNG"
    batch_of_two = ["-c", photo, "-c", str(images / "content/rainier.jpg"), painting]
    assert main([*batch_of_two, "-o", str(tmp_path / "{stem:d}.png"), *QUICK]) == 2  # a format that does not fit
    assert f"-o {tmp_path}/{{stem:d}}.png: Unknown format code 'd' for object of type 'str'" in capsys.readouterr().err
    # ...but a placeholder misspelt is not taken for part of the name
    assert main([photo, painting, "-o", str(tmp_path / "{stm}.png"), *QUICK]) == 2
    assert f"-o {tmp_path}/{{stm}}.png: bad placeholder {{stm}}; did you mean {{stem}}?" in capsys.readouterr().err
    batch = ["-c", photo, "-c", str(images / "content/rainier.jpg"), painting]
    assert main([*batch, "-o", str(tmp_path / "{stem.upper}.png"), *QUICK]) == 2
    assert "bad placeholder {stem.upper}; use {stem}, {style} or {index}" in capsys.readouterr().err
    assert main([*batch, "-o", f"{tmp_path}/", "--log-json", str(tmp_path / "{stem}.jsonl"), *QUICK]) == 2
    assert ("--log-json {stem}.jsonl: takes one file for the whole batch, not a template (each line names its "
            "photo as \"input\")") in capsys.readouterr().err.replace(f"{tmp_path}/", "")  # was written literally
    assert main([photo, painting, "-o", str(tmp_path / "one.png"), "--log-json", str(tmp_path / "{stem}.jsonl"),
                 *QUICK]) == 2  # nor for one photo, where -o and --plot are templates too
    assert ("--log-json {stem}.jsonl: takes one file, not a template (each line names its photo as \"input\")"
            in capsys.readouterr().err.replace(f"{tmp_path}/", ""))
    assert main([photo, painting, "-o", str(tmp_path / "x.png"), "--plot", str(tmp_path / "x-step00002.png"),
                 "--save-every", "2", *QUICK]) == 2
    assert "--plot has the name of a --save-every snapshot" in capsys.readouterr().err


def test_a_rerun_into_a_folder_keeps_the_name_and_a_changed_input_need_not_exist(painting, tmp_path, capsys):
    content, start = tmp_path / "photo.png", tmp_path / "start.png"
    _write_photo(content, 0)
    _write_photo(start, 1)
    first = tmp_path / "first.jpg"
    assert main([str(content), painting, "-o", str(first), *QUICK, "--init", str(start)]) == 0
    start.unlink()  # the new run starts from the photo: the old start image is not needed
    (tmp_path / "again").mkdir()
    assert main(["--rerun", str(first), "-o", str(tmp_path / "again"), "--init", "content", "-q"]) == 0
    assert read_metadata(tmp_path / "again/first-rerun.jpg")["config"]["init"] == "content"
    assert main(["--rerun", str(first), "-o", str(tmp_path / "again"), "-q"]) == 2  # the same settings need it
    assert "start.png: init image of" in capsys.readouterr().err


def test_photos_with_the_same_name_need_index(painting, tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _write_photo(tmp_path / folder / "x.png", 0)
    argv = ["-c", str(tmp_path / "a/x.png"), "-c", str(tmp_path / "b/x.png"), painting, *QUICK]
    assert main([*argv, "-o", str(tmp_path / "{stem}.png")]) == 2
    assert (f"{tmp_path / 'a/x.png'} and {tmp_path / 'b/x.png'} would be written to the same file, "
            f"{tmp_path / 'x.png'}; put {{index}} in it") in capsys.readouterr().err
    assert main([*argv, "-o", str(tmp_path / "{stem}-{index}.png")]) == 0
    # One photo twice (here as a file and in its folder) is not two photos: {index} would paint it twice
    argv = ["-c", str(tmp_path / "a"), "-c", str(tmp_path / "a/x.png"), painting, *QUICK]
    assert main([*argv, "-o", str(tmp_path / "{stem}-{index}.png")]) == 2
    assert capsys.readouterr().err == f"impasto: error: {tmp_path / 'a/x.png'}: given twice as a photo; give it once\n"


def _write_photo(path: Path, seed: int) -> None:
    Image.fromarray(noise(seed=seed)).save(path)


def test_rerun_reproduces_bit_for_bit_and_checks_inputs(painting, tmp_path, capsys):
    content = tmp_path / "photo.png"
    _write_photo(content, 0)
    first = tmp_path / "first.png"
    assert main([str(content), painting, "-o", str(first), *QUICK, "--init", "noise", "--seed", "5"]) == 0
    assert main(["--rerun", str(first), "-q"]) == 0
    again = tmp_path / "first-rerun.png"
    with Image.open(first) as a, Image.open(again) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert read_metadata(again)["config"] == read_metadata(first)["config"]
    assert read_metadata(again)["config"]["seed"] == 5
    capsys.readouterr()

    _write_photo(content, 1)  # the photo changed since
    assert main(["--rerun", str(first), "-o", str(tmp_path / "x.png")]) == 2
    assert f"{content}: content image of {first} has changed since (its SHA-256 differs)" in capsys.readouterr().err
    content.unlink()
    assert main(["--rerun", str(first), "-o", str(tmp_path / "x.png")]) == 2
    assert f"{content}: content image of {first} is missing" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_a_rerun_checks_its_masks_where_it_uses_them(painting, tmp_path, capsys):
    content, mask, first = tmp_path / "photo.png", tmp_path / "mask.png", tmp_path / "first.png"
    _write_photo(content, 0)
    Image.fromarray(np.full((24, 32), 255, np.uint8)).save(mask)
    assert main([str(content), painting, "-o", str(first), *QUICK, "--masks", str(mask)]) == 0
    Image.fromarray(np.full((24, 32), 128, np.uint8)).save(mask)  # changed since: the rerun would differ
    assert main(["--rerun", str(first), "-q"]) == 2
    assert capsys.readouterr().err == (f"impasto: error: {mask}: mask 1 of {first} has changed since (its SHA-256 "
                                       "differs)\n")
    Image.fromarray(np.full((24, 32), 255, np.uint8)).save(tmp_path / "other.png")  # new masks: the old not needed
    assert main(["--rerun", str(first), "--masks", str(tmp_path / "other.png"), "-q"]) == 0


def test_a_rerun_that_cannot_be_made_is_refused_without_a_note_first(painting, tmp_path, capsys):
    stopped = impasto.stylize(Image.fromarray(noise(24, 32)), painting, Config(max_size=32, iterations=3),
                              callback=lambda event: event.step == 2)  # a photo from memory, stopped part way
    stopped.save(tmp_path / "stopped.png")
    assert main(["--rerun", str(tmp_path / "stopped.png")]) == 2
    assert capsys.readouterr().err == (f"impasto: error: {tmp_path / 'stopped.png'}: its content image was not a "
                                       "file, cannot rerun it\n")  # not "... the rerun paints all the steps" first


def test_a_rerun_says_why_its_picture_will_differ(painting, tmp_path, capsys):
    content, first, on_the_cpu = tmp_path / "photo.png", tmp_path / "first.png", ["--device", "cpu"]  # a GPU too
    _write_photo(content, 0)
    assert main([str(content), painting, "-o", str(first), *QUICK, *on_the_cpu]) == 0
    meta, threads = read_metadata(first), torch.get_num_threads()
    assert meta["machine"] == {"device": "cpu", "threads": threads}
    assert main(["--rerun", str(first), "-o", str(tmp_path / "same.png"), *on_the_cpu]) == 0
    assert "note" not in capsys.readouterr().err  # the same machine and threads: nothing to say
    # The same picture as painted elsewhere: with more threads, in the other precision, stopped and resumed
    meta["machine"]["threads"] = threads + 3
    meta["bfloat16"] = not meta["bfloat16"]
    meta["resumed_from"] = {"steps": 1, "seconds": 0.5}
    edited = tmp_path / "edited.png"
    save_image(read_image(first), edited, metadata=meta)
    assert main(["--rerun", str(edited), *on_the_cpu]) == 0
    then, here = ("bfloat16", "float32") if meta["bfloat16"] else ("float32", "bfloat16")
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("impasto: note: ")]
    assert notes == [f"impasto: note: {edited} was stopped and resumed; the rerun paints it without a stop, so it "
                     "differs a little",
                     f"impasto: note: {edited} was painted with {threads + 3} CPU threads, this run has {threads}, "
                     f"so it differs a little (OMP_NUM_THREADS={threads + 3} repeats it)",
                     f"impasto: note: {edited} was painted in {then}, this run computes in {here}, so it differs "
                     f"(--precision {then} repeats it)"]
    meta = read_metadata(first)  # on a GPU: its threads are no reason, only the device
    meta["machine"] = {"device": "cuda:0", "threads": threads + 3}
    save_image(read_image(first), edited, metadata=meta)
    assert main(["--rerun", str(edited), "-o", str(tmp_path / "again.png"), *on_the_cpu]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("impasto: note: ")]
    assert notes == [f"impasto: note: {edited} was painted on cuda:0, this run is on cpu, so it differs a little"]


def test_a_folder_moved_as_a_whole_still_reruns_and_resumes(painting, tmp_path, capsys, monkeypatch):
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    _write_photo(before / "photo.png", 0)
    shutil.copy(painting, before / "art.jpg")
    assert main([str(before / "photo.png"), str(before / "art.jpg"), "-o", str(before / "out.png"), *QUICK[1:],
                 "-n", "4", "--save-every", "2", "--save-dir", str(before / "steps")]) == 0
    before.rename(after)
    capsys.readouterr()
    assert main(["--rerun", str(after / "out.png")]) == 0
    err = capsys.readouterr().err
    assert (f"impasto: note: {before / 'photo.png'} is gone; using {after / 'photo.png'}, found near "
            f"{after / 'out.png'}") in err
    assert read_metadata(after / "out-rerun.png")["inputs"]["paths"]["style"] == [str(after / "art.jpg")]
    with Image.open(after / "out.png") as a, Image.open(after / "out-rerun.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # a snapshot in --save-dir finds them in the folder above it, named by a relative path too
    monkeypatch.chdir(after / "steps")
    assert main(["--resume", "out-step00002.png", "-o", str(after / "resumed.png"), "-q"]) == 0
    # without -o it would paint the run's output, in a folder that is gone
    assert main(["--resume", "out-step00002.png", "-q"]) == 2
    assert capsys.readouterr().err == (f"impasto: error: out-step00002.png: a --save-every snapshot of "
                                       f"{before / 'out.png'}, whose folder is gone; name the painting's file with -o\n")
    _write_photo(after / "photo.png", 1)  # not the photo it was painted from: not taken
    assert main(["--rerun", str(after / "out.png"), "-q"]) == 2
    assert capsys.readouterr().err == (f"impasto: error: {before / 'photo.png'}: content image of {after / 'out.png'} "
                                       f"is missing; {after / 'photo.png'}, found near it, has its name but not its "
                                       f"SHA-256\n")


def test_rerun_finds_a_relative_weights_file_and_checks_it(photo, painting, tmp_path, capsys, monkeypatch):
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    shutil.copy(default_weights_path(), "w.bin")
    assert main([photo, painting, "-o", "first.png", *QUICK, "--weights", "w.bin"]) == 0
    inputs = read_metadata(Path("first.png"))["inputs"]
    assert inputs["paths"]["weights"] == str(tmp_path / "run/w.bin") and len(inputs["weights"]) == 64
    monkeypatch.chdir(tmp_path)  # the weights' path was relative to the other folder
    assert main(["--rerun", "run/first.png", "-q"]) == 0
    with Image.open("run/first.png") as a, Image.open("run/first-rerun.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    with open("run/w.bin", "ab") as weights:
        weights.write(b"\0")
    assert main(["--rerun", "run/first.png", "-q"]) == 2
    assert "w.bin: weights file of run/first.png has changed since" in capsys.readouterr().err


def test_a_log_named_as_a_folder_is_refused_before_the_run(photo, painting, tmp_path, capsys):
    assert main([photo, painting, "-o", str(tmp_path / "out.png"), *QUICK, "--log-json", f"{tmp_path}/logs/"]) == 2
    assert capsys.readouterr().err == f"impasto: error: {tmp_path}/logs/: --log-json takes a file name, not a folder\n"
    assert not (tmp_path / "out.png").exists()


def test_a_run_that_fails_before_its_first_step_leaves_the_log_as_it_was(painting, tmp_path, capsys):
    log = tmp_path / "print.jsonl"
    log.write_text('{"step": 1}\n')  # an earlier long print's
    Image.fromarray(noise(12, 16)).save(tmp_path / "small.png")  # too narrow at its own size: refused by the run
    for photo in (tmp_path / "photo.jpg", tmp_path / "small.png"):  # misspelt; refused once read
        assert main([str(photo), painting, "-o", str(tmp_path / "out.png"), *QUICK, "-s", "16",
                     "--log-json", str(log)]) == 2
        assert log.read_text() == '{"step": 1}\n', capsys.readouterr().err
    assert not (tmp_path / "new.jsonl").exists()
    assert main([str(tmp_path / "photo.jpg"), painting, "-o", str(tmp_path / "out.png"), *QUICK,
                 "--log-json", str(tmp_path / "new.jsonl")]) == 2
    assert not (tmp_path / "new.jsonl").exists()  # no empty log made either


def test_the_log_names_the_photo_by_its_absolute_path(photo, painting, tmp_path, monkeypatch):
    shutil.copy(photo, tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    assert main(["photo.jpg", painting, "-o", "out.png", *QUICK, "--log-json", "log.jsonl"]) == 0
    assert json.loads(Path("log.jsonl").read_text().splitlines()[0])["input"] == str(tmp_path / "photo.jpg")


def test_demo_can_be_rerun(tmp_path, capsys):
    first = tmp_path / "demo.png"
    assert main(["--demo", "-o", str(first), *QUICK]) == 0
    assert read_metadata(first)["inputs"]["paths"]["style"] == [None]  # drawn in memory, not a file
    assert main(["--rerun", str(first), "-q"]) == 0
    with Image.open(first) as a, Image.open(tmp_path / "demo-rerun.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    meta = read_metadata(first)  # a painting drawn otherwise (by another impasto, say) is not the demo's
    meta["inputs"]["style"] = ["0" * 64]
    save_image(read_image(first), tmp_path / "other.png", metadata=meta)
    assert main(["--rerun", str(tmp_path / "other.png"), "-q"]) == 2
    assert capsys.readouterr().err == (f"impasto: error: {tmp_path / 'other.png'}: its style image 1 was not a file, "
                                       "cannot rerun it\n")


def test_resume_finishes_a_stopped_run_in_its_own_file(photo, painting, tmp_path, capsys):
    config = Config(max_size=64, min_size=32, coarse_iterations=6, iterations=6, tolerance=0.0)
    stopped = tmp_path / "stopped.png"
    stylize(photo, painting, config, callback=lambda event: event.step == 4).save(stopped)
    earlier_log = tmp_path / "earlier.jsonl"
    cut_off = '{"input": "photo.jpg", "step": 5, "lo'  # the last record of a run killed as it wrote it
    earlier_log.write_text(f"kept\n{cut_off}")
    assert main(["--resume", str(stopped), "--iterations", "7", "--log-json", str(earlier_log)]) == 2
    err = capsys.readouterr().err  # refused before it announces the run or touches its outputs
    assert err == f"impasto: error: {stopped}: painted with iterations 6, not 7; resume it with its own settings\n"
    assert earlier_log.read_text() == f"kept\n{cut_off}"
    assert main(["--resume", str(stopped), "--device", "cpu", "--log-json", str(earlier_log)]) == 0
    err = capsys.readouterr().err
    assert f"impasto: resuming {stopped} at step 5 of 12 (32 px)" in err and err.count("impasto: resuming") == 1
    wrote = re.search(f"wrote {re.escape(str(stopped))} \\(12 steps, ([0-9.]+) s resumed, ([0-9.]+) s in all, "
                      "stopped by iterations\\)", err)
    in_all = read_metadata(stopped)["seconds"]  # the stopped part's time and the resumed part's
    assert wrote and float(wrote.group(2)) == pytest.approx(in_all, abs=0.051) and float(wrote.group(1)) < in_all
    kept, *lines = earlier_log.read_text().splitlines()  # the stopped run's whole lines stay, the new ones follow
    records = [json.loads(line) for line in lines]
    assert kept == "kept"
    assert [record["step"] for record in records] == list(range(5, 13))
    assert records[0]["elapsed"] > read_metadata(stopped)["resumed_from"]["seconds"]  # the clock goes on too
    meta = read_metadata(stopped)
    assert meta["steps"] == 12 and meta["stop_reason"] == "iterations" and meta["resumed_from"]["steps"] == 4
    assert "stopped_at" not in meta and meta["config"]["device"] == "cpu"
    assert main(["--resume", str(stopped)]) == 2
    assert f"{stopped}: not stopped part way (its run stopped by iterations), nothing to resume" in capsys.readouterr().err
    assert main(["--resume", str(stopped), "--rerun", str(stopped)]) == 2
    assert "give --rerun or --resume, not both" in capsys.readouterr().err
    assert main(["--resume", str(stopped), photo]) == 2
    assert "--resume takes no CONTENT, STYLE, --content or --demo" in capsys.readouterr().err
    save_image(read_image(stopped), stopped, metadata={**read_metadata(stopped), "inputs": []})
    assert main(["--resume", str(stopped)]) == 2
    assert f"{stopped}: its metadata records no input paths (an older impasto); cannot resume it" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    (lambda meta: 5, "cannot read its metadata (a JSON int, not an object)"),
    (lambda meta: {**meta, "inputs": {**meta["inputs"], "init": "abc"}}, "record of its inputs is damaged"),
    (lambda meta: {**meta, "inputs": {**meta["inputs"], "paths": {**meta["inputs"]["paths"], "content": 5}}},
     "record of its inputs is damaged"),
    (lambda meta: {**meta, "inputs": {**meta["inputs"], "paths": {**meta["inputs"]["paths"], "style": "/a.jpg"}}},
     "record of its inputs is damaged"),
    (lambda meta: {**meta, "inputs": {**meta["inputs"], "style": [], "paths": {**meta["inputs"]["paths"], "style": []}}},
     "record of its inputs is damaged"),
    (lambda meta: {**meta, "seconds": -100.0}, "its record of where it stopped is damaged"),
])
def test_resume_and_rerun_refuse_metadata_edited_by_hand(photo, painting, tmp_path, capsys, damage, message):
    stopped = tmp_path / "stopped.jpg"
    stylize(photo, painting, Config(max_size=32, scales=1, iterations=6, tolerance=0.0),
            callback=lambda event: event.step == 2).save(stopped)
    sidecar = tmp_path / "stopped.jpg.json"
    sidecar.write_text(json.dumps(damage(json.loads(sidecar.read_text()))))
    verbs = ["--resume"] if "stopped" in message else ["--resume", "--rerun"]  # a rerun starts afresh
    for verb in verbs:
        assert main([verb, str(stopped), "-o", str(tmp_path / "out.png")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"impasto: error: {stopped}: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out.png").exists()


def test_rerun_and_resume_write_nothing_but_the_painting_over_their_picture(photo, painting, tmp_path, capsys):
    stopped = tmp_path / "stopped.jpg"
    stylize(photo, painting, Config(max_size=32, scales=1, iterations=6, tolerance=0.0),
            callback=lambda event: event.step == 2).save(stopped)
    before = stopped.read_bytes(), (tmp_path / "stopped.jpg.json").read_bytes()
    for argv, message in ((["--rerun", str(stopped), "--plot", str(stopped)], "--plot would overwrite the picture to rerun"),
                          (["--resume", str(stopped), "--log-json", str(tmp_path / "stopped.jpg.json")],
                           "--log-json would overwrite the picture to resume")):
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert (stopped.read_bytes(), (tmp_path / "stopped.jpg.json").read_bytes()) == before


def test_a_resume_whose_picture_is_damaged_is_one_line(photo, painting, tmp_path, capsys):
    stopped = tmp_path / "stopped.png"
    result = stylize(photo, painting, Config(max_size=32, scales=1, iterations=6, tolerance=0.0),
                     callback=lambda event: event.step == 2)
    save_image(result.image[:, :, :30], stopped, metadata=result.metadata())  # cropped since
    assert main(["--resume", str(stopped), "-q"]) == 2  # -q: on a GPU, no line naming it
    assert capsys.readouterr().err == f"impasto: error: {stopped}: is 30x24, but the run it stopped paints 32x24\n"


def test_a_loss_that_is_not_finite_from_the_start_paints_nothing(photo, painting, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main([photo, painting, "-o", str(out), "-s", "32", "-n", "3", "--style-weight", "1e300", "-q"]) == 2
    assert capsys.readouterr().err == (f"impasto: error: {photo}: the loss is not finite (NaN or infinity) from the "
                                       "first step; nothing was painted: are the weights too large?\n")
    assert not out.exists()


def test_a_painting_whose_folder_went_away_during_the_run_is_kept_elsewhere(photo, painting, tmp_path, capsys):
    folder, steps = tmp_path / "prints", tmp_path / "steps.jsonl"
    folder.mkdir()

    def remove_the_folder_after_the_first_step():
        while not steps.exists() or not steps.read_text():
            time.sleep(0.01)
        shutil.rmtree(folder)

    remover = threading.Thread(target=remove_the_folder_after_the_first_step)
    remover.start()
    code = main([photo, painting, "-o", str(folder / "out.png"), "-q", "-s", "48", "-n", "40", "--tolerance", "0",
                 "--log-json", str(steps)])
    remover.join()
    err = capsys.readouterr().err
    assert code == 1, err  # not bad input: the run worked, its folder failed under it
    kept = Path(re.fullmatch(rf"impasto: error: {re.escape(str(folder))}/out\.png: folder .* does not exist; "
                             r"the painting is kept in (.*) instead\n", err).group(1))
    try:
        assert read_image(kept).shape == (3, 36, 48) and read_metadata(kept)["steps"] == 40
    finally:
        kept.unlink()


def _signals_in_runs(monkeypatch, *signals, step, photo=None, also=lambda: None):
    """Make the runner's stylize raise ``signals`` one after another (and call ``also``) during step
    ``step`` of the run of ``photo`` (a stem; None: of every run). Step 0: as the run starts, before
    its first step, when the photo is left unpainted."""
    real_stylize = runner.stylize

    def stylize_with_signals(content, *args, callback, **kwargs):
        ours = photo is None or Path(content).stem == photo

        def send():
            for sig in signals:
                signal.raise_signal(sig)
            also()

        def signal_then_callback(event):
            if ours and event.step == step:
                send()
            return callback(event)
        if ours and step == 0:
            send()
        return real_stylize(content, *args, callback=signal_then_callback, **kwargs)

    monkeypatch.setattr("impasto.runner.stylize", stylize_with_signals)


def test_a_stopped_picture_whose_folder_went_away_is_kept_elsewhere_with_how_to_go_on(photo, painting, tmp_path,
                                                                                     capsys, monkeypatch):
    folder = tmp_path / "prints"
    folder.mkdir()
    _signals_in_runs(monkeypatch, signal.SIGINT, step=2, also=lambda: shutil.rmtree(folder))
    assert main([photo, painting, "-o", str(folder / "out.png"), *QUICK[1:], "-n", "5", "-q"]) == 130  # as asked
    err = capsys.readouterr().err
    kept = Path(re.fullmatch(rf"impasto: error: {re.escape(str(folder))}/out\.png: folder .* does not exist; the best "
                             r"image so far \(step 2\) is kept in (.*) instead; to go on from it: impasto --resume \1\n",
                             err).group(1))
    try:
        assert read_metadata(kept)["stopped_at"]["steps_at_size"] == 2
    finally:
        kept.unlink()


def test_a_painting_that_can_be_written_nowhere_is_said_to_be_lost(photo, painting, tmp_path, capsys, monkeypatch):
    folder, real_stylize = tmp_path / "prints", runner.stylize
    folder.mkdir()

    def painted_while_its_folder_goes(*args, **kwargs):
        result = real_stylize(*args, **kwargs)
        shutil.rmtree(folder)
        return result

    monkeypatch.setattr("impasto.runner.stylize", painted_while_its_folder_goes)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-temp"))  # the temporary folder is gone too
    assert main([photo, painting, "-o", str(folder / "out.png"), *QUICK[1:], "-q"]) == 1
    assert capsys.readouterr().err == (
        f"impasto: error: {folder}/out.png: folder {str(folder)!r} does not exist; nor could it be kept in the "
        f"temporary folder {tmp_path / 'no-temp'} (No such file or directory): the picture is lost\n")


def test_a_painting_whose_copy_cannot_be_written_either_leaves_no_file_behind(photo, painting, tmp_path, capsys,
                                                                           monkeypatch):
    # A disk filled during the run: the output cannot be written, nor then its copy in the temporary folder
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    def disk_full(image, path, **kwargs):
        raise ImageError(f"{path}: No space left on device")

    monkeypatch.setattr("impasto.result.save_image", disk_full)
    out = tmp_path / "out.png"
    assert main([photo, painting, "-o", str(out), *QUICK]) == 1
    assert re.fullmatch(rf"impasto: error: {re.escape(str(out))}: No space left on device; nor could it be kept in "
                        rf"{re.escape(str(temp))}/out-\w+\.png \(No space left on device\): the picture is lost\n",
                        capsys.readouterr().err)
    assert list(temp.iterdir()) == []  # the empty file made for the copy is gone too


def test_a_batch_photo_kept_elsewhere_is_not_said_to_be_skipped(painting, tmp_path, capsys, monkeypatch):
    # a's folder goes away as a is painted: its painting is kept in the temporary folder, and b is painted
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    real_stylize = runner.stylize

    def painted_while_its_folder_goes(content, *args, **kwargs):
        result = real_stylize(content, *args, **kwargs)
        if Path(content).stem == "a":
            shutil.rmtree(tmp_path / "a")
        return result

    monkeypatch.setattr("impasto.runner.stylize", painted_while_its_folder_goes)
    for seed, name in enumerate("ab"):
        _write_photo(tmp_path / f"{name}.png", seed)
        (tmp_path / name).mkdir()
    assert main(["-c", str(tmp_path / "a.png"), "-c", str(tmp_path / "b.png"), painting, "-o",
                 str(tmp_path / "{stem}" / "out.png"), *QUICK]) == 1
    [kept] = temp.iterdir()
    assert capsys.readouterr().err.startswith(
        f"impasto: error: {tmp_path / 'a' / 'out.png'}: folder {str(tmp_path / 'a')!r} does not exist; the painting "
        f"is kept in {kept} instead (photo {tmp_path / 'a.png'})\n")
    assert read_metadata(kept)["steps"] == 2 and (tmp_path / "b" / "out.png").is_file()


def test_a_resumed_run_that_fails_before_its_first_step_writes_nothing(photo, painting, tmp_path, capsys,
                                                                     monkeypatch):
    # Stopped at the end of its first size, it fails as the second size's targets are built (out of memory,
    # say): its picture is the stopped one, not to be copied to -o as the best image so far.
    stopped, out = tmp_path / "stopped.png", tmp_path / "out.png"
    stylize(photo, painting, Config(**TWO_SIZES), callback=lambda event: event.step == 12).save(stopped)
    fail_at_the_second_size(monkeypatch)
    assert main(["--resume", str(stopped), "-o", str(out), "-q"]) == 1
    assert capsys.readouterr().err == "impasto: error: out of memory; try a smaller --max-size (or --device cpu)\n"
    assert not out.exists()


def test_a_stopped_picture_is_said_to_be_of_its_best_step(images, photo, tmp_path, capsys, monkeypatch):
    # Adam at a large rate overshoots (as in test_api): the best image so far is of an earlier step than the last
    real_save = runner._save_or_rescue

    def signal_then_save(*args):  # Ctrl-C again while the picture is written: the message says which step it is
        signal.raise_signal(signal.SIGTERM)
        return real_save(*args)

    _signals_in_runs(monkeypatch, signal.SIGINT, step=8)
    monkeypatch.setattr("impasto.runner._save_or_rescue", signal_then_save)
    out = tmp_path / "out.png"
    assert main([photo, str(images / "style/starry_night.jpg"), "-o", str(out), "-q", "-s", "48", "-n", "9",
                 "--optimizer", "adam", "--learning-rate", "0.5", "--margin", "0", "--despeckle", "0",
                 "--tolerance", "0"]) == 143
    best = read_metadata(out)["image_step"]
    assert best < 8 and capsys.readouterr().err == (f"impasto: error: interrupted; the best image so far (step {best}) "
                                                    f"is kept in {out}; to go on from it: impasto --resume {out}\n")


def test_a_failure_mid_run_keeps_the_best_image_so_far(photo, painting, tmp_path, capsys, monkeypatch):
    # The machine failing at step 5 (out of memory, say), which no tiny run can do for real.
    step = optimize.ProjectedLBFGS.step
    calls = []

    def fails_at_the_fifth_step(self, image, grad):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        step(self, image, grad)

    monkeypatch.setattr(optimize.ProjectedLBFGS, "step", fails_at_the_fifth_step)
    out = tmp_path / "out.png"
    assert main([photo, painting, "-o", str(out), "-q", "-s", "32", "-n", "20", "--tolerance", "0"]) == 1
    assert capsys.readouterr().err == (
        f"impasto: the best image so far (step 5) is kept in {out}; to go on from it: impasto --resume {out}\n"
        "impasto: error: out of memory; try a smaller --max-size (or --device cpu)\n")
    monkeypatch.undo()
    assert read_metadata(out)["stopped_at"] == {"size_index": 0, "size": 32, "steps_at_size": 5}
    assert main(["--resume", str(out), "-q"]) == 0 and read_metadata(out)["steps"] == 20


def test_settings_are_named_as_typed_but_not_inside_paths():
    assert cli.as_typed("masks and style_blend cannot be combined") == "--masks and --style-blend cannot be combined"
    assert cli.as_typed("sweeps/style_weight/a.png: too narrow (raise max_size or crop it).") == \
        "sweeps/style_weight/a.png: too narrow (raise --max-size or crop it)."


def test_a_small_photo_or_painting_enlarged_much_gets_a_note(photo, painting, tmp_path, capsys):
    _write_photo(tmp_path / "icon.png", 0)  # 32x24
    assert main([str(tmp_path / "icon.png"), painting, "-o", str(tmp_path / "out.png"), "-s", "160", "-n", "1"]) == 0
    assert (f"impasto: note: {tmp_path / 'icon.png'} is 32x24 px; painted at 160 px, 5.0 times larger, it will "
            "look soft (-s 32 paints it at its own size)\n") in capsys.readouterr().err
    assert main([str(tmp_path / "icon.png"), painting, "-o", str(tmp_path / "out.png"), "-s", "160", "--dry-run"]) == 0
    assert "160 px, 5.0 times larger, it will look soft" in capsys.readouterr().err  # a dry run says it too
    (tmp_path / "icon.png").rename(tmp_path / "new\nline.png")  # a note stays on one line too
    assert main([str(tmp_path / "new\nline.png"), painting, "-o", str(tmp_path / "new\nout.png"), "-s", "160",
                 "-n", "1"]) == 0
    err = capsys.readouterr().err
    assert f"impasto: note: {tmp_path}/new\\nline.png is 32x24 px; painted at 160 px" in err
    assert f"\nwrote {tmp_path}/new\\nout.png (1 step, " in err
    (tmp_path / "new\nline.png").rename(tmp_path / "icon.png")
    assert main([str(tmp_path / "icon.png"), painting, "-o", str(tmp_path / "out.png"), "--print-size", "1.6in",
                 "--dpi", "100", "-n", "1"]) == 0  # 160 px again, for a print
    assert ("painted at 160 px, 5.0 times larger, it will look soft (-s 32 paints it at its own size; at 100 dpi, "
            "a print 0.8 cm long)\n") in capsys.readouterr().err
    Image.fromarray(noise(20, 30)).save(tmp_path / "icon-painting.png")  # a painting that small: blurred strokes
    assert main([photo, str(tmp_path / "icon-painting.png"), "-o", str(tmp_path / "out.png"), "-s", "160",
                 "-n", "1"]) == 0
    assert (f"impasto: note: {tmp_path / 'icon-painting.png'} is 30x20 px; seen 5.3 times larger, its strokes "
            "will be blurred") in capsys.readouterr().err
    Image.fromarray(noise(14, 60)).save(tmp_path / "strip.png")  # too narrow for VGG-19 at its own size
    assert main([str(tmp_path / "strip.png"), painting, "-o", str(tmp_path / "out.png"), "-s", "256", "-n", "1"]) == 0
    assert "painted at 256 px, 4.3 times larger, it will look soft\n" in capsys.readouterr().err
    Image.fromarray(noise(16, 64)).save(tmp_path / "strip16.png")  # just wide enough: painted at its size, it works
    assert main([str(tmp_path / "strip16.png"), painting, "-o", str(tmp_path / "out.png"), "-s", "320", "-n", "1"]) == 0
    assert "painted at 320 px, 5.0 times larger, it will look soft (-s 64 paints it at its own size)\n" in (
        capsys.readouterr().err)
    assert main([str(tmp_path / "icon.png"), painting, "-o", str(tmp_path / "out.png"), "-s", "128", "-n", "1"]) == 0
    assert "note" not in capsys.readouterr().err  # 4 times: no note
    frames = [Image.fromarray(noise(48, 64, seed)) for seed in range(3)]  # animated: its first frame, said so
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert main([str(tmp_path / "anim.gif"), str(tmp_path / "anim.gif"), "-o", str(tmp_path / "out.png"), "-s", "64",
                 "-n", "1"]) == 0
    err = capsys.readouterr().err
    assert f"impasto: note: {tmp_path / 'anim.gif'} is animated (3 frames): its first frame is painted\n" in err
    assert f"impasto: note: {tmp_path / 'anim.gif'} is animated (3 frames): its first frame is the painting\n" in err


def test_batch_skips_a_broken_photo_and_exits_1(images, painting, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").symlink_to(images / "content/golden_gate.jpg")
    (photos / "b.png").write_bytes(b"not really a png")  # its metadata cannot be read: not taken for a result
    (photos / "c.jpg").symlink_to(images / "content/rainier.jpg")
    (photos / "notes.txt").write_text("not an image, not picked up")
    (photos / "._a.jpg").write_bytes(b"macOS's resource fork, left on a USB stick")  # hidden: not a photo
    out = tmp_path / "out"
    out.mkdir()
    code = main([str(photos), painting, "-o", f"{out}/", "-s", "32", "-n", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a-the_scream.png", "c-the_scream.png"]
    assert f"impasto: error: {photos / 'b.png'}: not an image file, or not in a format impasto reads (skipped)" in err
    assert "[3/3] c.jpg" in err and re.search(r"\nimpasto: 1 of 3 photos failed; 2 painted in \d+\.\d+ s\n$", err)
    with Image.open(out / "c-the_scream.png") as image:
        assert max(image.size) == 32


def test_a_folder_of_iphone_photos_is_painted_and_without_pillow_heif_says_what_it_leaves_out(painting, tmp_path,
                                                                                             capsys):
    from impasto.imageio import read_formats

    assert "HEIF" in read_formats()  # pillow-heif, which the tests install, registers its writer too
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir(), out.mkdir()
    Image.fromarray(noise(24, 32, seed=1)).save(photos / "IMG_0001.HEIC", format="HEIF")
    Image.fromarray(noise(24, 32, seed=2)).save(photos / "b.png")
    assert main([str(photos), painting, "-o", f"{out}/", "-s", "32", "-n", "1", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["IMG_0001-the_scream.png", "b-the_scream.png"]
    assert capsys.readouterr().err == ""
    script = ("import sys; sys.modules['pillow_heif'] = None\n"  # as on a machine without it
              "from impasto.cli import main\n"
              "print(main(sys.argv[1:]))\n")
    args = [sys.executable, "-c", script, "photos", painting, "-o", "again/", "-s", "32", "-n", "1"]
    (tmp_path / "again").mkdir()
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.stdout == "0\n", done.stderr
    assert ("impasto: note: photos: leaving out 1 HEIC image, which needs pillow-heif (pip install pillow-heif): "
            "IMG_0001.HEIC\n") in done.stderr
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["b-the_scream.png"]
    done = subprocess.run([*args, "-q", "-o", "again/quiet-{stem}.png"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert (done.stdout, done.stderr) == ("0\n", "")  # -q: no note either
    (tmp_path / "fresh").mkdir()  # a process that lists the folder before reading any image: pillow-heif
    fresh = [sys.executable, "-m", "impasto", "photos", painting, "-o", "fresh/", "-s", "32", "-n", "1", "-q"]
    done = subprocess.run(fresh, cwd=tmp_path, capture_output=True, text=True, timeout=300)  # registers then
    assert (done.returncode, done.stderr) == (0, "")
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == ["IMG_0001-the_scream.png", "b-the_scream.png"]
    (photos / "b.png").unlink()
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.stdout == "2\n", done.stderr
    assert done.stderr == ("impasto: error: photos: folder holds no photo impasto can read but 1 HEIC image, which "
                           "needs pillow-heif (pip install pillow-heif): IMG_0001.HEIC\n")


def test_a_folder_painted_again_into_itself_leaves_out_its_painting_and_earlier_results(images, tmp_path, capsys):
    folder = tmp_path / "shoot"
    folder.mkdir()
    _write_photo(folder / "photo.png", 0)
    shutil.copy(images / "style/the_scream.jpg", folder / "scream.jpg")  # the painting, kept beside the photo
    (folder / "older").mkdir()  # a folder in it: left out, as it was, but no longer without a word
    _write_photo(folder / "older" / "photo.png", 1)
    argv = [str(folder), str(folder / "scream.jpg"), "-o", f"{folder}/", *QUICK[1:]]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"impasto: note: {folder}: leaving out 1 image that is a painting or an earlier result: scream.jpg\n" in err
    assert f"impasto: note: {folder}: leaving out 1 folder in it (only the folder's own photos are painted): older\n" \
        in err
    assert main(argv) == 0  # the same command again: the result is not a photo to paint
    assert ("leaving out 2 images that are a painting or an earlier result: photo-scream.png, scream.jpg\n"
            in capsys.readouterr().err)
    assert sorted(p.name for p in folder.iterdir()) == ["older", "photo-scream.png", "photo.png", "scream.jpg"]


def test_a_batch_photo_failing_for_a_mask_is_named(painting, images, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    _write_photo(photos / "a.png", 0)
    Image.fromarray(noise(30, 30)).save(photos / "b.png")  # square: not the masks' proportions
    masks = []
    for name, top in (("sky.png", True), ("land.png", False)):  # the top half, the bottom half
        mask = np.zeros((24, 32), np.uint8)
        mask[(slice(None, 12) if top else slice(12, None))] = 255
        Image.fromarray(mask).save(tmp_path / name)
        masks.append(str(tmp_path / name))
    code = main([str(photos), painting, str(images / "style/starry_night.jpg"), "-o", f"{tmp_path}/{{stem}}-m.png",
                 "--masks", ",".join(masks), *QUICK])
    err = capsys.readouterr().err
    assert code == 1 and (tmp_path / "a-m.png").exists(), err
    assert re.search(rf"impasto: error: {re.escape(masks[0])}: .* \(photo {re.escape(str(photos / 'b.png'))}, "
                     r"skipped\)\n", err), err
    assert re.search(r"\nimpasto: 1 of 2 photos failed; 1 painted in [^\n]+\n$", err), err  # said even with -q


def test_batch_output_needs_a_placeholder(images, painting, tmp_path, capsys):
    photos = ["--content", str(images / "content/golden_gate.jpg"), "--content", str(images / "content/rainier.jpg")]
    assert main([*photos, painting, "-o", str(tmp_path / "out.png"), *QUICK]) == 2
    assert (f"golden_gate.jpg and rainier.jpg would be written to the same file, {tmp_path / 'out.png'}; "
            "put {stem} or {index}") in capsys.readouterr().err
    loss = tmp_path / "loss.png"  # one plot for two photos
    assert main([*photos, painting, "-o", str(tmp_path / "{stem}.png"), "--plot", str(loss), *QUICK]) == 2
    assert capsys.readouterr().err == (f"impasto: error: --plot {loss}: golden_gate.jpg and rainier.jpg would be "
                                       f"written to the same file, {loss}; put {{stem}} or {{index}} in the name, or "
                                       "give a folder\n")
    assert main([*photos, painting, "-o", str(tmp_path / "{nope}.png"), *QUICK]) == 2
    assert "bad placeholder {nope}; use {stem}, {style} or {index}" in capsys.readouterr().err
    assert main([*photos, painting, "-o", str(tmp_path / "{stem"), *QUICK]) == 2
    assert "{stem: a brace that is not closed; use {stem}, {style} or {index}" in capsys.readouterr().err


def test_a_config_files_whole_floats_are_whole_numbers(tmp_path):
    settings = tmp_path / "run.toml"
    settings.write_text("max_size = 64.0\nstyle_weight = 5\n")  # TOML writes 64.0 for a float, 64 for an int
    assert cli.read_config_file(settings) == {"max_size": 64, "style_weight": 5.0}
    settings.write_text("max_size = 64.5\n")
    with pytest.raises(ConfigError, match=r"run\.toml: max_size: '64\.5' is not a whole number"):
        cli.read_config_file(settings)


def test_config_file_and_print_config(tmp_path, capsys):
    settings = tmp_path / "run.toml"
    settings.write_text('max_size = 40\nstyle_layers = ["relu1_1", "relu2_1"]\nstyle_layer_weights = [1, 2]\n'
                        'learning_rate = 0.5\ninit = "noise"\n')
    assert main(["--config", str(settings), "--print-config", "-s", "48", "--seed", "7"]) == 0
    printed = capsys.readouterr().out
    data = tomllib.loads(printed)
    expected = Config(max_size=48, style_layers=("relu1_1", "relu2_1"), style_layer_weights=(1.0, 2.0),
                      learning_rate=0.5, init="noise", seed=7)
    assert data["max_size"] == 48 and data["seed"] == 7 and data["style_layer_weights"] == [1.0, 2.0]
    assert Config.from_dict(data) == expected  # the printed file reads back as the same settings
    assert "# weights = (not set)" in printed
    (tmp_path / "printed.toml").write_text(printed)
    assert main(["--config", str(tmp_path / "printed.toml"), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    # Windows editors and PowerShell's > write UTF-8 with a byte-order mark, or UTF-16
    for encoding in ("utf-8-sig", "utf-16"):
        settings.write_bytes('seed = 3\nmasks = ["café.png"]\n'.encode(encoding))
        assert main(["--config", str(settings), "--print-config"]) == 0
        printed = capsys.readouterr().out
        assert tomllib.loads(printed)["seed"] == 3 and tomllib.loads(printed)["masks"] == [str(tmp_path / "café.png")]
    # --style-layers alone weights its layers equally; flags may mend the file; list items keep commas
    assert main(["--print-config", "--style-layers", "relu1_1,relu2_1"]) == 0
    assert tomllib.loads(capsys.readouterr().out)["style_layers"] == ["relu1_1", "relu2_1"]
    settings.write_text('style_layers = ["relu1_1", "relu2_1"]\nstyle_layer_weights = [1, 2, 3]\nmasks = ["a,b.png"]\n')
    assert main(["--config", str(settings), "--print-config"]) == 2
    assert "run.toml: style_layer_weights has 3 values for 2 style layers" in capsys.readouterr().err
    assert main(["--config", str(settings), "--print-config", "--style-layer-weights", "1,1"]) == 0
    assert tomllib.loads(capsys.readouterr().out)["masks"] == [str(tmp_path / "a,b.png")]  # beside the file
    # a flag's file name is the current folder's; printed, it is absolute
    assert main(["--print-config", "--init", "start.png", "--masks", "sky.png"]) == 0
    absolute = tomllib.loads(capsys.readouterr().out)
    assert absolute["init"] == os.path.abspath("start.png") and absolute["masks"] == [os.path.abspath("sky.png")]
    settings.write_text("style_layer_weights = [1, 2, 3, 4, 5]\n")  # other layers on the command line: equal
    assert main(["--config", str(settings), "--print-config", "--style-layers", "relu1_1,relu2_1"]) == 0
    assert tomllib.loads(capsys.readouterr().out)["style_layer_weights"] == []
    settings.write_text('style_layers = ["relu1_1", "relu2_1"]\n')  # the file's layers over a base's weights
    args = build_parser().parse_args(["--config", str(settings)])
    assert config_from_args(args, {"style_layer_weights": (1, 1, 1, 1, 2)}).style_layer_weights == ()
    with contextlib.redirect_stdout(io.StringIO()) as text:  # a text stream without .buffer
        assert main(["--print-config"]) == 0
    assert tomllib.loads(text.getvalue())["max_size"] == 512
    groups = {f.metadata["group"] for f in dataclasses.fields(Config)}
    assert config_to_toml(Config()).count("\n\n# ") == len(groups) and "\n\n# optimisation\n" in printed
    odd = Config(init="/photos/a\x7fb.png")  # DEL, which no TOML string may hold as it is
    assert tomllib.loads(config_to_toml(odd))["init"] == odd.init


@pytest.mark.parametrize(
    "text, message",
    [
        ("max_sise = 40\n", "run.toml: unknown setting 'max_sise'; did you mean 'max_size'?"),
        ("max_size = 2.5\n", "run.toml: max_size: '2.5' is not a whole number"),
        ("max_size = 8\n", "run.toml: max_size must be at least 16 pixels, not 8"),
        ("max_size = \n", "run.toml: not valid TOML"),
        ('init = "Noise"\n', "run.toml: init must be one of content, palette, noise, style or an image file, not 'Noise'"),
        ('init = ""\n', "run.toml: init must be one of content, palette, noise, style or an image file, not ''"),
        ('masks = [""]\n', "run.toml: masks has an empty file name"),
        ("max_size = true\n", "run.toml: max_size: true is not a valid value"),  # as TOML writes it, not Python's True
        ("max_size = [512]\n", "run.toml: max_size: a list, not a whole number"),  # it had been an AttributeError
        ("style_weight = {a = 1}\n", "run.toml: style_weight: a table is not a valid value"),
        ('print_size = "A4"\n', "run.toml: print_size is the command-line option --print-size, not a setting of a "
         "--config file; for a print, give max_size and dpi"),  # not "did you mean 'min_size'?"
        ("save-every = 3\n", "run.toml: save-every is the command-line option --save-every, not a setting"),
        ("max-size = 64\n", "run.toml: unknown setting 'max-size'; did you mean 'max_size'?"),
        ("[size]\nmax_size = 64\n", "run.toml: [size] is a table; a --config file holds only `name = value` "
         "settings, without tables"),  # --print-config's group comments made into tables
    ],
)
def test_bad_config_file_exits_2(tmp_path, capsys, text, message):
    (tmp_path / "run.toml").write_text(text)
    assert main(["--config", str(tmp_path / "run.toml"), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{tmp}/missing.jpg", "{style}", "-o", "{out}"], "{tmp}/missing.jpg: no such file"),
        (["{tmp}/new\nline.jpg", "{style}", "-o", "{out}"], "{tmp}/new\\nline.jpg: no such file"),  # as Python writes it
        (["{tmp}/text.jpg", "{style}", "-o", "{out}"], "{tmp}/text.jpg: not an image file, or not in a format impasto reads"),
        (["{content}", "{tmp}/cut.jpg", "-o", "{out}"], "{tmp}/cut.jpg: truncated or corrupt image (the painting)\n"),
        (["{content}", "{style}", "{tmp}/missing.jpg", "-o", "{out}"],
         "{tmp}/missing.jpg: no such file (the painting 2)\n"),
        (["{tmp}/huge.png", "{style}", "-o", "{out}"], "{tmp}/huge.png: too large to read safely"),
        (["{content}", "{style}", "-o", "{tmp}/no/such/dir/out.png"], "folder '{tmp}/no/such/dir' does not exist"),
        (["{content}", "{style}", "-o", "/sys/impasto-out.png"], "/sys/impasto-out.png: cannot write in folder '/sys'"),
        (["{content}", "{style}", "-o", "{out}", "--save-every", "1", "--save-dir", "/sys"],
         "--save-dir /sys: cannot write in folder '/sys'"),
        (["{content}", "{style}", "-o", "{out}", "--save-every", "1", "--save-dir", "/sys", "--dry-run"],
         "--save-dir /sys: cannot write in folder '/sys'"),  # a dry run makes no folder, but checks one there
        (["{content}", "{style}", "-o", "{tmp}/out.gif"], "out.gif: unsupported extension '.gif'"),
        (["{content}", "{style}", "-o", "{tmp}/kept.jpg"],  # a JPEG's metadata goes beside it, where a folder is
         "kept.jpg.json: is a folder, cannot write a file there"),
        (["{content}", "{style}", "-o", "{tmp}/" + "写真" * 43 + ".png"],  # 262 bytes: an unexpected OSError
         "写真.png: cannot write (File name too long)"),
        (["{content}", "{style}", "-o", "{tmp}/out.webp", "-s", "16384", "--dry-run"],  # not after the run
         "out.webp: a WEBP picture is at most 16383 px a side, not 16384; save it as .png or .tif"),
        (["{content}", "{style}", "-o", "{style}"], "the_scream.jpg: -o would overwrite an input image"),
        (["{content}", "{style}", "-o", "{out}", "--log-json", "{content}"],
         "golden_gate.jpg: --log-json would overwrite an input image"),
        (["{content}", "{style}", "-o", "{out}", "--plot", "{style}"], "--plot would overwrite an input image"),
        (["{content}", "{style}", "-o", "{out}", "--init", "{tmp}/start.png", "--plot", "{tmp}/start.png"],
         "start.png: --plot would overwrite an input image"),
        (["{content}", "{style}", "-o", "{out}", "--plot", "{out}"], "out.png: -o and --plot would write the same file"),
        (["{content}", "{style}", "-o", "{out}", "--log-json", "{out}"], "-o and --log-json would write the same file"),
        (["{content}", "{style}", "-o", "{tmp}/out.jpg", "--log-json", "{tmp}/out.jpg.json"],
         "out.jpg.json: -o's metadata and --log-json would write the same file"),
        (["{content}", "{style}", "-o", "{out}", "--config", "{tmp}/run.toml", "--log-json", "{tmp}/run.toml"],
         "run.toml: --log-json would overwrite the --config file"),
        (["{content}", "{style}", "-o", "{out}", "--style-weight", "nan"],
         "invalid option: --style-weight must be a finite number, not nan"),
        (["{content}", "{style}", "-o", "{out}", "--denoise", "inf"], "invalid option: --denoise must be a finite number"),
        (["{content}", "{style}", "-o", "{out}", "-s", "20"],
         "golden_gate.jpg: 20×15 at 20 px is too narrow (VGG-19's relu5_1 needs a short edge of at least 16 px"),
        (["{content}", "{style}", "-o", "{out}", "--style-scale", "1e-9"], "the_scream.jpg: seen at 1×1 for a 32 px"),
        (["{content}", "{style}", "-o", "{out}", "--weights", "{tmp}/text.jpg"],
         "{tmp}/text.jpg: not a PyTorch weights file"),
        (["--config", "{tmp}/cut.jpg", "--print-config"], "cut.jpg: not valid TOML (not UTF-8 text)"),
        (["--demo", "{content}", "-o", "{out}"], "--demo takes no CONTENT, STYLE or --content"),
        (["--demo", "-c", "{content}", "-o", "{out}"], "--demo takes no CONTENT, STYLE or --content"),
        (["{content}", "{style}", "-o", "{out}", "--plot", "{tmp}/loss.gif"], "loss.gif: unsupported extension"),
        (["{content}", "{style}", "-o", "{out}", "--content-layer", "relu9_9"],
         "invalid option: unknown VGG-19 layer 'relu9_9'"),
        (["{content}", "{style}", "-o", "{out}", "-n", "0"], "invalid option: --iterations must be at least 1"),
        (["{content}", "{style}", "-o", "{out}", "--device", "cuda:7"], "'cuda:7' asked for, but {no_gpu7}"),
        (["{content}", "{style}", "-o", "{out}", "--config", "{tmp}/gpu.toml"],
         "error: {tmp}/gpu.toml: device 'cuda:7' asked for, but {no_gpu7}"),  # the file that asks for it
        (["{content}", "{style}", "-o", "{out}", "--config", "{tmp}/gpu.toml", "--device", "cuda:7"],
         "error: device 'cuda:7' asked for, but {no_gpu7}"),  # the option's, not the file's
        (["{content}", "{style}", "-o", "{out}", "-s", "5000", "--max-memory", "1.5"],
         "GB even with checkpointing, but --max-memory is 1.5 GB: use --max-size "),
        (["{content}", "{style}", "-o", "{out}", "--style-blend", "1,2"], "invalid option: --style-blend has 2 weights for 1 style image\n"),
        (["{content}", "{style}", "-o", "{out}", "--config", "{tmp}/run.toml", "--style-blend", "1,2"],
         "invalid option: --style-blend has 2 weights for 1 style image\n"),  # the option's fault, not the file's
        (["{content}", "{style}", "{style}", "-o", "{out}", "--style-blend", "1"],
         "--style-blend has 1 weight for 2 style images\n"),
        (["{content}", "{style}", "-o", "{out}", "--config", "{tmp}/run.toml", "--config", "{tmp}/blend.toml"],
         "--config given twice ({tmp}/run.toml and {tmp}/blend.toml): put the settings in one file"),
        (["{content}", "{style}", "{style}", "-o", "{out}", "--config", "{tmp}/blend.toml"],
         "{tmp}/blend.toml: style_blend has 3 weights for 2 style images\n"),  # the file's key, as written there
        (["{content}", "{style}", "{style}", "-o", "{out}", "--style-blend", "1,1", "--masks", "{tmp}/text.jpg,{tmp}/text.jpg"],
         "invalid option: --masks and --style-blend cannot be combined"),
        (["{content}", "{style}", "-o", "{out}", "-s", "256", "--min-size", "16"],
         "golden_gate.jpg: 16×12 at 16 px is too narrow (VGG-19's relu5_1 needs a short edge of at least 16 px: "
         "raise --min-size to 21 px or more, or crop the image)"),
        (["{content}", "{style}", "-o", "{out}", "--init", "{tmp}/missing.png"], "{tmp}/missing.png: no such file"),
        (["{content}", "{style}", "-o", "{out}", "--save-dir", "{tmp}"], "--save-dir needs --save-every N"),
        (["--rerun", "{out}", "--continue"], "--continue goes on with photos to paint: give it without --rerun"),
        (["{content}", "{style}", "-o", "{out}", "--masks", "{tmp}/missing.png"], "{tmp}/missing.png: no such file"),
        (["{content}", "{style}", "-o", "{out}", "--masks", "{tmp}/text.jpg,{tmp}/text.jpg"],
         "invalid option: --masks has 2 images for 1 style image (one each)"),
        (["{content}", "{style}", "-o", "{out}", "--masks", "{tmp}/huge.png"], "{tmp}/huge.png: too large"),
        (["{content}", "{style}", "-o", "{out}", "--masks", "{style}"],
         "the_scream.jpg: a mask must have the photo's shape"),
        (["{content}", "{style}", "-o", "{out}", "--preserve-color", "hsv"], "invalid choice: 'hsv'"),
        (["--rerun", "{content}"], "golden_gate.jpg: carries no impasto metadata (it would be in golden_gate.jpg.json, "
         "beside it, which is missing), cannot rerun it"),
        (["--rerun", "{content}", "{style}"], "--rerun takes no CONTENT"),
        (["--resume", "{content}", "--demo"], "--resume takes no CONTENT, STYLE, --content or --demo"),
        (["{content}", "{style}"], "no -o OUTPUT: name the file to write, -o out.png say"),
        (["{content}", "{style}", "-o", ""], "-o is empty: name the file to write"),
        (["{content}", "-o", "{out}"], "no STYLE image: give one or more paintings after the photo"),
        (["-c", "{content}", "-o", "{out}"], "no STYLE image: give one or more paintings as the images besides --content"),
        (["-o", "{out}"], "give CONTENT, at least one STYLE and -o OUTPUT"),
        (["{content}", "{style}", "-o", "{tmp}/out"], "out: no extension to tell the format; use one of .png, .jpg"),
        (["{content}", "{style}", "-o", "{out}", "--init", "nosie"],
         "invalid option: --init must be one of content, palette, noise, style or an image file, not 'nosie' "
         "(did you mean noise?)"),
        (["{content}", "{style}", "-o", "{out}", "--init", "{tmp}/cut.jpg"], "cut.jpg: truncated or corrupt image (the init image)"),
        (["{content}", "{style}", "-o", "{out}", "--masks", "{tmp}/text.jpg"],
         "text.jpg: not an image file, or not in a format impasto reads (the mask)"),
        (["{content}", "{style}", "-o", "{out}", "--save-every", "1", "--save-dir", "{content}"],
         "golden_gate.jpg: it is a file, not a folder"),
        (["{content}", "{style}", "-o", "{out}", "--style-layers", "RELU1_1"],
         "invalid option: unknown VGG-19 layer 'RELU1_1'; did you mean 'relu1_1'?"),
    ],
)
def test_errors_are_one_line_and_exit_2(images, tmp_path, capsys, argv, message):
    values = {"content": images / "content/golden_gate.jpg", "style": images / "style/the_scream.jpg",
              "out": tmp_path / "out.png", "tmp": tmp_path,
              "no_gpu7": "there is no such CUDA GPU" if torch.cuda.is_available() else "no CUDA GPU is available"}
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "cut.jpg").write_bytes((images / "style/the_scream.jpg").read_bytes()[:5000])
    (tmp_path / "huge.png").write_bytes(png_claiming(100_000, 100_000))
    save_image(torch.full((3, 24, 32), 0.5), tmp_path / "start.png")
    (tmp_path / "run.toml").write_text("seed = 1\n")
    (tmp_path / "blend.toml").write_text("style_blend = [1, 1, 1]\n")
    (tmp_path / "gpu.toml").write_text('device = "cuda:7"\n')
    (tmp_path / "kept.jpg.json").mkdir()
    code = main(["-q", "-s", "32", "-n", "1"] + [a.format(**values) for a in argv])  # later options win
    err = capsys.readouterr().err
    assert code == 2 and message.format(**values) in err
    assert err.startswith("impasto: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["a.jpg", "b.jpg", "-o", "c.png", "--max-size", "big"], "argument --max-size/-s: 'big' is not a whole number"),
        (["a.jpg", "b.jpg", "-o", "c.png", "--save-every", "0"], "'0' is not a positive whole number"),
        (["a.jpg", "b.jpg", "-o", "c.png", "--optimizer", "sgd"], "invalid choice: 'sgd'"),
        (["a.jpg", "b.jpg", "-o", "c.png", "--max-sise", "9"], "(did you mean --max-size?)"),
        (["a.jpg", "b.jpg", "-o", "c.png", "--bogus"], "unrecognized arguments: --bogus (see impasto --help)"),
        # values that look like options to argparse are read as values, and checked as such
        (["a.jpg", "b.jpg", "--style-blend", "-1,2"], "--style-blend must be non-negative with a positive sum, not "
                                                      "-1, 2"),
        (["a.jpg", "b.jpg", "--tv-weight", "-1e-3"], "--tv-weight must not be negative, not -0.001"),
    ],
)
def test_bad_option_value_exits_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("impasto: error: ") and err.count("\n") == 1


def test_images_may_come_before_between_and_after_options():
    parse = build_parser().parse_args
    for argv in (["a.jpg", "b.jpg", "-o", "c.png", "-s", "64"], ["a.jpg", "-o", "c.png", "b.jpg", "-s", "64"],
                 ["-s", "64", "a.jpg", "-o", "c.png", "b.jpg"], ["a.jpg", "-s", "64", "b.jpg", "-o", "c.png"]):
        args = parse(argv)
        assert (args.inputs, args.output, args.max_size) == (["a.jpg", "b.jpg"], "c.png", 64), argv
    assert parse(["a.jpg", "b.jpg", "-o", "c.png", "d.jpg", "--remove-noise", "e.jpg"]).inputs == [
        "a.jpg", "b.jpg", "d.jpg", "e.jpg"]


def test_a_value_that_looks_like_an_option_is_its_options_value():
    args = build_parser().parse_args(["a.jpg", "b.jpg", "-o", "-1.png", "-w", "-1e3", "--tv-weight", "-.5"])
    assert (args.output, args.style_weight, args.tv_weight, args.inputs) == ("-1.png", -1000.0, -0.5, ["a.jpg", "b.jpg"])
    assert build_parser().parse_args(["--tv-weight", "-.5e-3"]).tv_weight == -0.0005  # argparse takes it for an option


def test_unexpected_error_is_one_line_exit_1(photo, painting, tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("something broke\nsecond line")  # stands in for a bug: none can be provoked on purpose

    monkeypatch.setattr("impasto.runner.stylize", broken)
    argv = [photo, painting, "-o", str(tmp_path / "out.png"), "-q"]
    assert main(argv) == 1
    assert capsys.readouterr().err == \
        "impasto: error: unexpected ValueError: something broke (run with --debug for the traceback)\n"
    assert main([*argv, "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("impasto: error: unexpected ValueError: something broke\n")


def test_serve_dispatches_to_the_web_app(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "impasto.web", None)  # as if the web extra were not installed
    assert main(["serve", "--port", "8000"]) == 2
    assert capsys.readouterr().err.endswith("pip install -c constraints.txt -e '.[web]'\n")
    monkeypatch.delitem(sys.modules, "impasto.web")  # the real web app gets the arguments after `serve`
    assert main(["serve", "--workers", "0"]) == 2
    assert "impasto serve: error: --workers must be at least 1" in capsys.readouterr().err


def test_ctrl_c_before_the_run_starts_exits_130(monkeypatch, capsys):
    def interrupted(args):  # Ctrl-C while torch loads: too early to send one for real
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupted)
    assert main(["a.jpg", "b.jpg", "-o", "c.png"]) == 130
    assert capsys.readouterr().err == "impasto: error: interrupted before the painting started; nothing was written\n"


def test_a_second_signal_aborts_at_once():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as info:
        with runner.Interrupts() as interrupts:
            signal.raise_signal(signal.SIGTERM)
            assert interrupts.signum == signal.SIGTERM  # the first only asks the run to stop
            signal.raise_signal(signal.SIGINT)
    assert info.value.exit_code == 130
    assert str(info.value) == "interrupted again: quit at once, without saving the picture"
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_signal_while_the_result_is_written_waits_for_it():
    written = False
    with pytest.raises(KeyboardInterrupt) as info:
        with runner.Interrupts() as interrupts:
            signal.raise_signal(signal.SIGINT)
            with interrupts.hold():
                signal.raise_signal(signal.SIGTERM)  # a JPEG and its sidecar must not be cut apart
                written = True
            interrupts.abort_if_pending("out.jpg is whole")
    assert written and info.value.exit_code == 143 and str(info.value) == "interrupted; out.jpg is whole"


def test_a_second_signal_while_the_stopped_picture_is_written_says_where_it_is(photo, painting, tmp_path, capsys,
                                                                             monkeypatch):
    real_save = runner._save_or_rescue

    def signal_then_save(*args):  # Ctrl-C again while the picture is written
        signal.raise_signal(signal.SIGTERM)
        return real_save(*args)

    _signals_in_runs(monkeypatch, signal.SIGINT, step=2)  # Ctrl-C in the second step: it stops after it
    monkeypatch.setattr("impasto.runner._save_or_rescue", signal_then_save)
    out = tmp_path / "out.png"
    assert main([photo, painting, "-o", str(out), *QUICK[1:], "-n", "5", "-q"]) == 143
    assert capsys.readouterr().err == (f"impasto: error: interrupted; the best image so far (step 2) is kept in {out}; "
                                       f"to go on from it: impasto --resume {out}\n")
    assert read_metadata(out)["stopped_at"]["steps_at_size"] == 2


def test_a_signal_after_the_last_step_is_reported_with_the_finished_picture(photo, painting, tmp_path, capsys,
                                                                            monkeypatch):
    real_stylize = runner.stylize

    def stylize_then_signal(*args, **kwargs):  # the run ends by its steps; Ctrl-C comes before the write
        result = real_stylize(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr("impasto.runner.stylize", stylize_then_signal)
    out = tmp_path / "late.png"
    assert main([photo, painting, "-o", str(out), *QUICK[1:]]) == 130
    assert "stopped by iterations; SIGINT came after the last step" in capsys.readouterr().err
    assert read_metadata(out)["stop_reason"] == "iterations"


def test_the_terminal_closing_keeps_the_best_image_so_far(photo, painting, tmp_path, capsys, monkeypatch):
    _signals_in_runs(monkeypatch, signal.SIGHUP, step=2)  # the terminal closes: it stops after this step
    out, plot, steps = tmp_path / "out.png", tmp_path / "loss.png", tmp_path / "steps"
    assert main([photo, painting, "-o", str(out), *QUICK[1:], "-n", "5", "--plot", str(plot), "--save-every", "4",
                 "--save-dir", str(steps)]) == 129
    err = capsys.readouterr().err.splitlines()
    assert "stopped by SIGHUP: the best image so far" in err[-2]
    # the command that goes on keeps the plot and the snapshots where they were, which --resume cannot know
    assert err[-1] == (f"impasto: to go on where it stopped: impasto --resume {out} --plot {plot} --save-every 4 "
                       f"--save-dir {steps}")
    assert read_metadata(out)["stopped_at"]["steps_at_size"] == 2


def test_a_run_started_with_nohup_goes_on_when_the_terminal_closes(photo, painting, tmp_path, monkeypatch):
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup starts it (the autouse fixture puts SIGHUP back)
    _signals_in_runs(monkeypatch, signal.SIGHUP, step=2)
    out = tmp_path / "out.png"
    assert main([photo, painting, "-o", str(out), *QUICK, "-n", "4"]) == 0
    assert read_metadata(out)["steps"] == 4 and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


def _batch(painting, tmp_path, *options):
    """main on a batch of three photos, a, b and c (written if missing), with ``options``; its exit code."""
    photos = [tmp_path / f"{name}.png" for name in ("a", "b", "c")]
    for seed, photo in enumerate(photos):
        if not photo.exists():
            _write_photo(photo, seed)
    return main([*(arg for p in photos for arg in ("-c", str(p))), painting, "-o", str(tmp_path / "{stem}-out.png"),
                 *QUICK[1:], *options])


def test_a_batch_stopped_by_a_signal_names_the_photos_left(painting, tmp_path, capsys, monkeypatch):
    _signals_in_runs(monkeypatch, signal.SIGINT, step=2, photo="a")
    code = _batch(painting, tmp_path)
    err = capsys.readouterr().err
    assert code == 130 and "impasto: stopped by SIGINT; 2 photos not painted: b.png, c.png" in err
    assert read_metadata(tmp_path / "a-out.png")["steps"] == 2
    assert not (tmp_path / "b-out.png").exists()


def test_a_stopped_batch_continues_with_what_is_left(painting, tmp_path, capsys, monkeypatch):
    _signals_in_runs(monkeypatch, signal.SIGINT, step=2, photo="b")
    assert _batch(painting, tmp_path, "-n", "5") == 130
    assert "1 photo not painted: c.png (the same command with --continue paints what is left)" in (
        capsys.readouterr().err)
    monkeypatch.undo()
    finished = (tmp_path / "a-out.png").read_bytes()
    assert _batch(painting, tmp_path, "-n", "5", "--continue") == 0
    err = capsys.readouterr().err
    assert f"impasto: {tmp_path / 'a-out.png'} is already painted with these settings; skipped (--continue)" in err
    assert f"impasto: resuming {tmp_path / 'b-out.png'} at step 3 of 5" in err
    assert (tmp_path / "a-out.png").read_bytes() == finished
    assert read_metadata(tmp_path / "b-out.png")["resumed_from"]["steps"] == 2
    assert all(read_metadata(tmp_path / f"{name}-out.png")["steps"] == 5 for name in "abc")
    assert _batch(painting, tmp_path, "-n", "6", "--continue") == 0  # other settings: painted afresh
    assert all(read_metadata(tmp_path / f"{name}-out.png")["steps"] == 6 for name in "abc")
    assert "skipped" not in capsys.readouterr().err
    (tmp_path / "b-out.png").write_bytes(b"not a picture")  # an output whose metadata cannot be read
    assert _batch(painting, tmp_path, "-n", "6", "--continue") == 0  # is painted afresh, as without --continue
    assert capsys.readouterr().err.count("skipped (--continue)") == 2
    assert read_metadata(tmp_path / "b-out.png")["steps"] == 6


def test_a_log_added_to_keeps_only_the_steps_that_led_to_each_picture(photo, painting, tmp_path):
    log, steps = tmp_path / "log.jsonl", tmp_path / "steps"
    common = [*QUICK, "-n", "4", "--log-json", str(log), "--continue"]

    def logged() -> dict[str, list[int]]:
        records = [json.loads(line) for line in log.read_bytes().splitlines() if line.startswith(b"{")]
        return {name: [r["step"] for r in records if r["output"] == str(tmp_path / name)] for name in ("a.png", "b.png")}

    assert main([photo, painting, "-o", str(tmp_path / "a.png"), *common]) == 0
    b = [photo, painting, "-o", str(tmp_path / "b.png"), *common, "--save-every", "2", "--save-dir", str(steps)]
    assert main(b) == 0
    (tmp_path / "b.png").unlink()  # b killed outright after step 4, before its snapshot of step 4 was written
    (steps / "b-step00004.png").unlink()
    assert main(b) == 0  # resumed from step 2: its steps 3 and 4 are logged once
    assert logged() == {"a.png": [1, 2, 3, 4], "b.png": [1, 2, 3, 4]}
    assert main([*b, "-n", "3"]) == 0  # other settings: b painted afresh, the run it replaces forgotten
    assert logged() == {"a.png": [1, 2, 3, 4], "b.png": [1, 2, 3]}
    with log.open("ab") as file:
        file.write(b"caf\xe9, a line that is not UTF-8 text\n")  # not the log's to clean: the painting goes on
    assert main([*b, "-n", "2"]) == 0
    assert b"caf\xe9, a line that is not UTF-8 text" in log.read_bytes().splitlines()
    assert logged() == {"a.png": [1, 2, 3, 4], "b.png": [1, 2, 3, 1, 2]}


def test_a_second_signal_during_the_plot_keeps_the_written_picture_out_of_the_unpainted(
        painting, tmp_path, capsys, monkeypatch):
    def signals_then_plot(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr("impasto.runner.plot_losses", signals_then_plot)
    assert _batch(painting, tmp_path, "--plot", str(tmp_path / "{stem}-loss.png")) == 130
    assert capsys.readouterr().err.endswith(f"impasto: error: interrupted again; the painting is kept in "
                                            f"{tmp_path / 'a-out.png'}; 2 photos not painted: b.png, c.png\n")


def test_a_snapshot_of_the_last_step_is_finished_with_a_word(photo, painting, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main([photo, painting, "-o", str(out), *QUICK, "-n", "4", "--save-every", "4"]) == 0
    last = tmp_path / "out-step00004.png"
    assert main(["--resume", str(last), "-o", str(tmp_path / "finished.png")]) == 0
    assert f"impasto: {last} had no steps left to paint; finishing it\n" in capsys.readouterr().err
    meta = read_metadata(tmp_path / "finished.png")
    assert meta["steps"] == 4 and meta["stop_reason"] == "iterations" and "stopped_at" not in meta


def test_a_resumed_runs_plot_draws_the_whole_run_from_the_log(photo, painting, tmp_path, monkeypatch):
    out, log, plot = tmp_path / "out.png", tmp_path / "log.jsonl", tmp_path / "loss.png"
    _signals_in_runs(monkeypatch, signal.SIGINT, step=3)
    assert main([photo, painting, "-o", str(out), *QUICK, "-n", "6", "--log-json", str(log)]) == 130
    monkeypatch.undo()
    drawn = []
    monkeypatch.setattr("impasto.runner.plot_losses", lambda history, *args, **kwargs: drawn.append(history))
    assert main(["--resume", str(out), "-q", "--log-json", str(log), "--plot", str(plot)]) == 0
    assert [row["step"] for row in drawn[0]] == [1, 2, 3, 4, 5, 6]
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert drawn[0][0] == {"step": 1, "scale": 0, "loss": logged[0]["loss"], **logged[0]["terms"]}


def test_continue_goes_on_from_the_picture_furthest_along(photo, painting, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.png"
    argv = [photo, painting, "-o", str(out), *QUICK[1:], "-n", "9", "--save-every", "2"]
    _signals_in_runs(monkeypatch, signal.SIGINT, step=3)
    assert main(argv) == 130  # stopped at step 3
    stopped_at_3 = out.read_bytes()
    _signals_in_runs(monkeypatch, signal.SIGINT, step=7)
    assert main(["--resume", str(out), "--save-every", "2"]) == 130  # resumed: snapshots of steps 4 and 6
    monkeypatch.undo()
    out.write_bytes(stopped_at_3)  # as if the resumed run had been killed outright after step 7
    capsys.readouterr()
    assert main([*argv, "--continue"]) == 0
    assert f"impasto: resuming {tmp_path / 'out-step00006.png'} at step 7 of 9" in capsys.readouterr().err
    # A stopped picture of other settings is replaced, and the note says why (a typo would lose a long print)
    other = tmp_path / "other.png"
    _signals_in_runs(monkeypatch, signal.SIGINT, step=3)
    assert main([photo, painting, "-o", str(other), *QUICK[1:], "-n", "9", "--style-weight", "400"]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main([photo, painting, "-o", str(other), *QUICK[1:], "-n", "9", "--continue"]) == 0
    assert (f"impasto: note: {other} was stopped part way with --style-weight 400.0, not 200.0; replacing it"
            in capsys.readouterr().err)


def test_continue_paints_again_what_was_painted_from_another_start_image(photo, painting, tmp_path, capsys):
    start, out = tmp_path / "start.png", tmp_path / "out.png"
    _write_photo(start, 0)
    shutil.copy(photo, tmp_path / "photo.jpg")
    argv = [str(tmp_path / "photo.jpg"), painting, "-o", str(out), *QUICK[1:], "--init", str(start), "--continue"]
    assert main(argv) == 0
    assert main(argv) == 0 and "skipped (--continue)" in capsys.readouterr().err
    _write_photo(start, 1)  # the same settings, but another start image
    before = out.read_bytes()
    assert main(argv) == 0 and "skipped" not in capsys.readouterr().err
    assert out.read_bytes() != before


def test_a_second_signal_while_a_batchs_picture_is_written_names_only_the_photos_after_it(
        painting, tmp_path, capsys, monkeypatch):
    real_save = runner._save_or_rescue

    def signal_then_save(result, output):  # Ctrl-C again while b's stopped picture is written: b is kept
        if output.name == "b-out.png":
            signal.raise_signal(signal.SIGINT)
        return real_save(result, output)

    _signals_in_runs(monkeypatch, signal.SIGINT, step=2, photo="b")
    monkeypatch.setattr("impasto.runner._save_or_rescue", signal_then_save)
    assert _batch(painting, tmp_path, "-n", "5") == 130
    assert capsys.readouterr().err.endswith(f"impasto: error: interrupted; the best image so far (step 2) is kept in "
                                            f"{tmp_path / 'b-out.png'}; to go on from it: impasto --resume "
                                            f"{tmp_path / 'b-out.png'}; 1 photo not painted: c.png\n")


def test_a_signal_before_a_photos_first_step_leaves_its_output_alone(painting, tmp_path, capsys, monkeypatch):
    # Ctrl-C just as b starts (a's picture written): b's earlier painting is not replaced by one step of a new one
    (tmp_path / "b-out.png").write_bytes(b"an earlier painting")
    _signals_in_runs(monkeypatch, signal.SIGINT, step=0, photo="b")
    code = _batch(painting, tmp_path)
    err = capsys.readouterr().err
    assert code == 130 and "impasto: stopped by SIGINT; 2 photos not painted: b.png, c.png" in err
    assert "stopping before the painting starts" in err and "stopping after this step" not in err
    assert read_metadata(tmp_path / "a-out.png")["stop_reason"] == "iterations"
    assert (tmp_path / "b-out.png").read_bytes() == b"an earlier painting"


def test_a_second_signal_in_a_batch_names_the_photos_left(painting, tmp_path, capsys, monkeypatch):
    _signals_in_runs(monkeypatch, signal.SIGINT, signal.SIGINT, step=2, photo="b")
    code = _batch(painting, tmp_path)
    assert code == 130 and capsys.readouterr().err.endswith(
        "impasto: error: interrupted again: quit at once, without saving the picture; "
        "2 photos not painted: b.png, c.png\n")
    assert (tmp_path / "a-out.png").exists() and not (tmp_path / "b-out.png").exists()


def test_a_signal_before_the_first_step_of_one_photo_writes_nothing(photo, painting, tmp_path, capsys, monkeypatch):
    _signals_in_runs(monkeypatch, signal.SIGINT, step=0)
    assert main([photo, painting, "-o", str(tmp_path / "out.png"), *QUICK[1:]]) == 130
    assert capsys.readouterr().err.endswith(
        "impasto: stopped by SIGINT before the painting started; nothing was written\n")
    assert not (tmp_path / "out.png").exists()


def test_signals_write_the_best_image_and_exit_130_or_143(photo, painting, tmp_path):
    """Real processes: SIGINT on a normal run, SIGTERM on the built-in demo (python -m impasto --demo)."""
    inputs = {signal.SIGINT: [photo, painting], signal.SIGTERM: ["--demo"]}
    runs = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        out, log = tmp_path / f"{sig.name}.png", tmp_path / f"{sig.name}.jsonl"
        proc = subprocess.Popen(
            [sys.executable, "-m", "impasto", *inputs[sig], "-o", str(out), "-s", "40", "-n", "100000",
             "--tolerance", "0", "--log-json", str(log)],
            stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even if our runner ignores it
        runs[sig] = proc, out, log
    for sig, (proc, out, log) in runs.items():
        deadline = time.monotonic() + 240  # a guard against hanging only, not a timing assertion
        while not (log.exists() and log.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(sig)
    for sig, (proc, out, log) in runs.items():
        err = proc.communicate(timeout=240)[1]
        assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], err
        # Ctrl-C is answered at once (a step may take a minute); a service manager's SIGTERM needs no answer
        stopping = "impasto: stopping after this step, keeping the best image so far (Ctrl-C again quits at once"
        assert (stopping in err) == (sig == signal.SIGINT), err
        assert "\nstep 1/100000, " in "\n" + err  # a log says at once that the run started (the next line: step 10000)
        assert err.splitlines()[-2].startswith(f"wrote {out} (") and err.splitlines()[-2].endswith(
            f"stopped by {sig.name}: the best image so far)")
        # with the run's log, which --resume does not take from the picture
        assert err.splitlines()[-1] == f"impasto: to go on where it stopped: impasto --resume {out} --log-json {log}"
        with Image.open(out) as image:
            assert image.size == {signal.SIGINT: (40, 30), signal.SIGTERM: (34, 40)}[sig]  # the demo photo: 512×600
        meta = read_metadata(out)
        assert meta["stop_reason"] == "cancelled" and 1 <= meta["steps"] < 100000
        assert meta["steps"] == len(log.read_text().splitlines())
