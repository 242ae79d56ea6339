"""The command line, through main(argv) and one real subprocess."""

import subprocess
import sys

import pytest
from PIL import Image

from impasto.cli import build_parser, config_from_args, main
from impasto.config import Config
from impasto.imageio import read_metadata


def test_options_reach_the_config():
    args = build_parser().parse_args([
        "a.jpg", "b.jpg", "-o", "o.png", "-s", "300", "--style-layers", "relu1_1,relu3_1",
        "--style-layer-weights", "2,1", "--optimizer", "adam", "--learning-rate", "0.05", "-n", "7",
        "--style-blend", "1", "--init", "noise", "--seed", "3", "--pooling", "max", "-w", "2e3"])
    config = config_from_args(args)
    assert config == Config(max_size=300, style_layers=("relu1_1", "relu3_1"), style_layer_weights=(2.0, 1.0),
                            optimizer="adam", learning_rate=0.05, iterations=7, style_blend=(1.0,),
                            init="noise", seed=3, pooling="max", style_weight=2000.0)
    assert config_from_args(build_parser().parse_args(["a", "b", "-o", "c"])) == Config()


def test_help_groups_options_with_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert "objective:" in out and "optimisation:" in out and "(default: relu4_2)" in out


def test_run_writes_image_with_metadata(images, tmp_path, capsys):
    out = tmp_path / "painted.jpg"
    code = main([str(images / "content/golden_gate.jpg"), str(images / "style/starry_night.jpg"),
                 "-o", str(out), "-s", "48", "-n", "3", "--tolerance", "0"])
    assert code == 0
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.size == (48, 36)
    assert read_metadata(out)["config"]["max_size"] == 48  # JSON sidecar for JPEG
    err = capsys.readouterr().err
    assert "wrote" in err and "3 steps" in err and "3/3" in err  # the progress bar reached the end


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing.jpg", "{style}", "-o", "{out}"], "missing.jpg: no such file"),
        (["{content}", "{style}", "-o", "{tmp}/no/such/dir/out.png"], "out.png"),
        (["{content}", "{style}", "-o", "{out}", "--content-layer", "relu9_9"], "invalid option: unknown VGG-19 layer 'relu9_9'"),
        (["{content}", "{style}", "-o", "{out}", "-n", "0"], "invalid option: iterations must be at least 1"),
        (["{content}", "{style}", "-o", "{tmp}/out.gif"], "out.gif"),
    ],
)
def test_errors_are_one_line_and_exit_2(images, tmp_path, capsys, argv, message):
    values = {"content": images / "content/golden_gate.jpg", "style": images / "style/starry_night.jpg",
              "out": tmp_path / "out.png", "tmp": tmp_path}
    code = main(["-q", "-s", "32", "-n", "1"] + [a.format(**values) for a in argv])  # later options win
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert err.startswith("impasto: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_bad_option_value_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["a.jpg", "b.jpg", "-o", "c.png", "--max-size", "big"])
    assert info.value.code == 2 and "--max-size: 'big' is not a valid int" in capsys.readouterr().err


def test_missing_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["photo.jpg"])
    assert info.value.code == 2 and "give CONTENT" in capsys.readouterr().err


def test_python_dash_m_demo(tmp_path):
    out = tmp_path / "demo.png"
    proc = subprocess.run([sys.executable, "-m", "impasto", "--demo", "-o", str(out), "-s", "40", "-n", "2", "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as image:
        assert image.size == (34, 40)  # the sample photo is 512×600 (portrait)
