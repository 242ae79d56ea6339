"""The README's promises: its Python example runs, its settings table matches Config."""

import dataclasses
import re
from pathlib import Path

import impasto

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
    exec(compile(code, "README.md", "exec"), {})
    assert impasto.read_image(tmp_path / "out.png").shape == (3, 36, 48)


def test_settings_table_lists_every_field():
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", README, re.M))
    for f in dataclasses.fields(impasto.Config):
        assert f.name in rows, f"README's settings table lacks {f.name}"
        if isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
            assert float(rows[f.name].split()[0]) == f.default, f.name
