"""The loss plot: per-kind sums, and the curves and size marks actually drawn (read back from SVG)."""

import pytest

from impasto.errors import ImageError
from impasto.plot import loss_kinds, lower_limit, plot_losses

BLUE, ORANGE, GREY = "#1f77b4", "#ff7f0e", "#595959"  # content, style (tab: colours), total


def _history(steps: int, scales: tuple[int, ...] = (0,)) -> list[dict]:
    rows = []
    for step in range(1, steps + 1):
        scale = scales[(step - 1) * len(scales) // steps]
        content, style = 10.0 * step, 1000.0 / step
        rows.append({"step": step, "scale": scale, "loss": content + style, "content/relu4_2": content,
                     "style/relu1_1": style / 2, "style/relu2_1": style / 2})
    return rows


def test_loss_kinds_sums_the_layers_of_each_kind():
    assert loss_kinds({"content/relu4_2": 1.5, "style/relu1_1": 2.0, "style/relu5_1": 0.25, "tv": 3.0}) == {
        "content": 1.5, "style": 2.25, "tv": 3.0}


def test_the_curves_and_the_sizes_are_drawn(tmp_path):
    svg = plot_losses(_history(20, scales=(0, 1)), tmp_path / "loss.svg", sizes=[512, 1024]).read_text()
    for colour in (BLUE, ORANGE, GREY):
        assert f"stroke: {colour}" in svg, colour
    assert "<!-- 512 px -->" in svg and "<!-- 1024 px -->" in svg  # each size labelled where it starts
    empty = plot_losses([], tmp_path / "empty.svg").read_text()
    assert not any(f"stroke: {colour}" in empty for colour in (BLUE, ORANGE, GREY))


def test_one_size_has_no_size_marks_and_a_bad_extension_is_refused(tmp_path):
    svg = plot_losses(_history(5), tmp_path / "loss.svg", sizes=[512]).read_text()
    assert "px -->" not in svg and f"stroke: {BLUE}" in svg
    with pytest.raises(ImageError, match=r"loss\.gif: a plot must be one of \.png, \.svg, \.pdf"):
        plot_losses(_history(5), tmp_path / "loss.gif")


def test_the_scale_cuts_only_a_start_far_below_the_rest():
    # From the photo the content term starts near 0: it would squash the curves, so the scale starts
    # a third below the lowest settled value. From the recoloured photo it starts at a third of
    # where it settles: all of it is drawn.
    assert lower_limit({"content": [1e-3, 4e4, 5e4, 5e4], "style": [1e6, 1e5, 6e4, 6e4]}) == pytest.approx(5e4 / 3)
    assert lower_limit({"content": [1.6e4, 4e4, 5e4, 5e4], "style": [1e6, 1e5, 6e4, 6e4]}) is None
    assert lower_limit({}) is None
