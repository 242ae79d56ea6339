"""The loss plot: per-kind sums, and the curves and size marks actually drawn (read back from SVG)."""

import re

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


def test_the_scale_cut_starts_below_a_thirtieth_of_the_settled_curves():
    # The threshold is a thirtieth of the lowest settled value (3e4 here): a start at exactly 1e3 is
    # still drawn whole, one at 1e2 is cut off, with the scale a third below 3e4.
    style = [1e6, 1e5, 6e4, 6e4]
    assert lower_limit({"content": [1e3, 3e4, 3e4, 3e4], "style": style}) is None
    assert lower_limit({"content": [1e2, 3e4, 3e4, 3e4], "style": style}) == pytest.approx(1e4)
    # A term that starts at exactly 0 is not drawn on a log scale at all: nothing to make room for.
    assert lower_limit({"content": [0.0, 4e4, 5e4, 5e4], "style": style}) is None


def test_each_size_change_is_marked_once_and_a_short_sizes_list_labels_what_it_can(tmp_path):
    svg = plot_losses(_history(30, scales=(0, 1, 2)), tmp_path / "loss.svg", sizes=[256, 512]).read_text()
    assert svg.count("stroke: #999999") == 2  # a dashed grey line at each of the 2 size changes
    assert "<!-- 256 px -->" in svg and "<!-- 512 px -->" in svg and svg.count("px -->") == 2  # scale 2: no size
    assert plot_losses(_history(5), tmp_path / "one.svg").read_text().count("stroke: #999999") == 0


def test_the_extension_is_read_in_any_case_and_the_title_defaults(tmp_path):
    svg = plot_losses(_history(5), tmp_path / "LOSS.SVG").read_text()
    assert "<!-- Loss per step -->" in svg
    titled = plot_losses(_history(5), tmp_path / "t.svg", title="van Gogh, 512 px").read_text()
    assert "<!-- van Gogh, 512 px -->" in titled


def test_a_zero_total_and_a_term_missing_from_some_steps_are_left_out(tmp_path):
    # A total of 0 has no place on a log scale; a TV term logged only from step 3 on cannot be drawn
    # against all the steps (and must not fail the plot).
    rows = [dict(row, loss=0.0, **({"tv": 5.0} if row["step"] >= 3 else {})) for row in _history(5)]
    svg = plot_losses(rows, tmp_path / "loss.svg").read_text()
    assert f"stroke: {BLUE}" in svg and f"stroke: {GREY}" not in svg and "stroke: #2ca02c" not in svg


def test_the_first_size_label_sits_at_the_left_edge_not_before_it(tmp_path):
    # The first size starts at step 1, so its label would sit half a step left of the axes; it is
    # moved to the left spine, 4 points in, as every later label is from its dashed line.
    svg = plot_losses(_history(20, scales=(0, 1)), tmp_path / "loss.svg", sizes=[512, 1024]).read_text()
    spine = float(re.search(r'<g id="patch_3">\s*<path d="M ([\d.]+) ', svg)[1])
    label = float(re.search(r"<!-- 512 px -->\s*<g [^>]*translate\(([\d.]+) ", svg)[1])
    assert label == pytest.approx(spine + 4)
