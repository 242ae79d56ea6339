"""The README's promises: its Python example runs, its settings table matches Config."""

import dataclasses
import re
from pathlib import Path

import torch

import impasto
from impasto.cli import read_config_file

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_first_lines_are_the_setup_commands():
    assert README.splitlines()[2].split("#")[0].strip() == "make demo"
    assert README.splitlines()[3].split("#")[0].strip() == "make test"
    ci = (Path(__file__).parents[1] / ".ci/run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_python_example_runs(images, tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    code = code.replace('"photo.jpg"', repr(str(images / "content/golden_gate.jpg")))
    code = code.replace('"painting.jpg"', repr(str(images / "style/starry_night.jpg")))
    code = code.replace("max_size=512", "max_size=48, iterations=2")  # tiny, same calls
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(code, "README.md", "exec"), names)
    assert impasto.read_image(tmp_path / "out.png").shape == (3, 36, 48)
    assert names["again"].config == names["result"].config  # read back from the saved picture
    assert torch.equal(names["again"].image, names["result"].image)


def test_settings_table_lists_every_field():
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", README, re.M))
    for f in dataclasses.fields(impasto.Config):
        assert f.name in rows, f"README's settings table lacks {f.name}"
        if isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
            assert float(rows[f.name].split()[0]) == f.default, f.name


def test_artistic_controls_example_runs(images, tmp_path):
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", README, re.S) if "preserve_color" in block]
    assert "masks=" in code
    photo = images / "content/golden_gate.jpg"
    mask = torch.zeros(3, 30, 40)
    mask[:, :15] = 1.0  # sky above, land below
    impasto.save_image(mask, tmp_path / "sky.png")
    impasto.save_image(1.0 - mask, tmp_path / "land.png")
    for name, path in {"photo.jpg": photo, "painting.jpg": images / "style/starry_night.jpg",
                       "monet.jpg": images / "style/autumn_oak.jpg", "hokusai.jpg": images / "style/the_scream.jpg",
                       "sky.png": tmp_path / "sky.png", "land.png": tmp_path / "land.png"}.items():
        code = code.replace(f'"{name}"', repr(str(path)))
    code = code.replace("impasto.Config(", "impasto.Config(max_size=32, scales=1, iterations=2, ")  # tiny, same calls
    exec(compile(code, "README.md", "exec"), {"impasto": impasto})


def test_artistic_controls_cli_examples_parse():
    from impasto.cli import build_parser

    lines = re.search(r"## Artistic controls\n(.*?)```python", README, re.S).group(1)
    commands = [line.split("#")[0].split()[1:] for line in lines.splitlines() if line.startswith("    impasto ")]
    assert len(commands) == 6
    for argv in commands:
        build_parser().parse_args(argv)  # every flag exists and its value parses


def test_config_file_example_is_read(tmp_path):
    (example,) = re.findall(r"```toml\n(.*?)```", README, re.S)
    (tmp_path / "run.toml").write_text(example)
    config = impasto.Config(**read_config_file(tmp_path / "run.toml"))
    assert config.max_size == 1024 and config.preserve_color == "luminance" and len(config.style_layers) == 4
