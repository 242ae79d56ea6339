"""The benchmarks' own code at tiny sizes: the measurements run on demand, never in CI, but the code
that scores and counts them must keep working as the package changes under it."""

import math
import sys
from pathlib import Path

import pytest
import torch

import impasto

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_edges  # noqa: E402
import bench_optimizers  # noqa: E402
import bench_pastiche  # noqa: E402
import bench_print  # noqa: E402
import bench_resume  # noqa: E402
import bench_serve  # noqa: E402
import bench_specks  # noqa: E402
import bench_step  # noqa: E402
import bench_threads  # noqa: E402

CPU = torch.device("cpu")


def test_pastiche_evaluator_scores_in_float32(images):
    evaluate = bench_pastiche.Evaluator(48, CPU)
    photo = evaluate.terms(images / "content/golden_gate.jpg")
    assert list(photo) == ["content/relu4_2", *(f"style/{layer}" for layer in bench_pastiche.STYLE_LAYERS)]
    assert photo["content/relu4_2"] == 0.0  # float32 features: the photo is its own content target
    painting = evaluate(images / "style/starry_night.jpg")
    assert painting[0] > 0.0 and painting[1] < sum(v for k, v in photo.items() if k.startswith("style/"))


def test_impasto_run_stops_once_as_good_and_its_own_steps_are_done(images, tmp_path):
    evaluate = bench_pastiche.Evaluator(48, CPU)
    rows, wall, gflops = bench_pastiche.run_impasto(48, tmp_path, 2, {"iterations": 6}, evaluate,
                                                    (math.inf, math.inf), most_steps=6)
    assert len(rows) == 3  # snapshots at steps 2, 4 and 6: every one as good, but 6 steps are its own
    assert all(math.isfinite(c) and math.isfinite(s) for _, c, s in rows) and wall > 0 and gflops > 0
    assert (tmp_path / "impasto-iterations6-48.png").exists()
    assert bench_pastiche.first_as_good(rows, math.inf, math.inf) == rows[0][0]


def test_as_good_on_both_terms_or_on_their_total():
    scored = [(1.0, 9.0, 9.0), (2.0, 6.0, 1.0), (3.0, 4.0, 3.0), (4.0, 4.5, 0.5)]
    assert bench_pastiche.first_as_good(scored, 5.0, 3.0) == 3.0
    assert bench_pastiche.first_total_as_low(scored, 5.0, 3.0) == 2.0  # 7 <= 8, with the content term above
    assert bench_pastiche.first_as_good(scored, 4.0, 1.0) is None
    assert bench_pastiche.first_total_as_low(scored, 4.0, 1.0) == 4.0  # 5 <= 5


def test_print_scores_rank_photo_and_painting(images):
    photo, painting = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    (photo_content, photo_style), (painting_content, painting_style) = bench_print.scores(
        photo, painting, [photo, painting], impasto.Config(), 48)
    assert photo_content < 1e-3 * painting_content and painting_style < photo_style / 10


def test_optimizer_summary_counts_both_terms_only_after_the_content_term_rose():
    rows = [(1, 10.0, 100.0), (2, 30.0, 50.0), (3, 25.0, 40.0), (4, 15.0, 30.0)]
    line = bench_optimizers.summary(rows, rows, (20.0, 45.0), every=2)
    assert line.startswith("step    3, content     25 |     4 |")  # step 1 is the photo: not counted
    assert line.endswith("2: 30/50 4: 15/30")


def test_continuation_runs_its_stages():
    line, seconds = bench_optimizers.run_continuation(6, [(1.0, 3)], (math.inf, math.inf), 3, 48, "cpu")
    # Every step matches an infinite reference; no content term rises above it, so nothing is counted.
    assert line.startswith("step    1,") and "| never |" in line
    assert " 3: " in line and " 6: " in line and seconds > 0


def test_resume_benchmark_stops_and_finishes_a_run(tmp_path):
    config = impasto.Config(max_size=64, min_size=32, coarse_iterations=4, iterations=4, tolerance=0.0)
    run = bench_resume.paint(config, tmp_path / "stopped.png", 3)
    assert run["stopped_at"] == {"size_index": 0, "size": 32, "steps_at_size": 3} and run["steps"] == 8
    assert impasto.read_metadata(tmp_path / "stopped.png")["resumed_from"]["steps"] == 3


def test_resume_benchmark_reports_a_stop_the_run_never_reached(tmp_path):
    config = impasto.Config(max_size=48, scales=1, iterations=4, tolerance=0.0)
    run = bench_resume.paint(config, tmp_path / "stopped.png", 9)
    assert run["stopped_at"] is None and run["steps"] == 4
    assert "resumed_from" not in impasto.read_metadata(tmp_path / "stopped.png")


def test_edge_steps_measure_a_line_along_an_edge(tmp_path):
    picture = torch.full((3, 40, 60), 0.5)
    picture[:, -1] = 0.4  # a darker bottom row: 25.5 grey levels below the rows inside...
    picture[:, :, 0] = 0.6  # ...and a lighter left column (which its corner pixel takes)
    steps = bench_edges.edge_steps(picture)
    corner = 0.1 * 255 / 60  # the bottom row's left pixel, 0.2 above the rest of it
    assert steps == pytest.approx([0.0, -25.5 + corner, 25.5 + 0.1 * 255 / 40, 0.0], abs=1e-3)
    path = tmp_path / "p.png"
    impasto.imageio.save_image(torch.rand(3, 200, 300), path)
    assert bench_edges.strips(path).size == (2 * 4 * (160 + 4), 4 * 24)


def test_densest_square_holds_the_most_lone_pixels():
    lone = torch.zeros(20, 30, dtype=torch.bool)
    lone[5, 7] = lone[6, 8] = lone[15, 25] = True
    top, left = bench_specks.densest_square(lone, side=4)
    assert top <= 5 and 6 < top + 4 and left <= 7 and 8 < left + 4
    assert bench_specks.densest_square(lone, side=64) == (0, 0)  # the whole picture, smaller than the square


def test_torch_first_step_is_one_over_the_gradients_l1_norm_and_is_undone_after_its_block():
    image, grad = torch.full((1, 3, 64, 64), 0.5), torch.linspace(-1.0, 2.0, 3 * 64 * 64).view(1, 3, 64, 64)
    with bench_specks.first_step("torch"):
        lbfgs = impasto.optimize.make_optimizer("lbfgs", image, 0.5)
        assert isinstance(impasto.optimize.make_optimizer("adam", image, 0.02), impasto.optimize.ProjectedAdam)
    lbfgs.step(image, grad)
    # 0.6.0's rule, lr/‖g‖₁, the more pixels the shorter: the steepest one moves by 1e-4 here, by impasto's 0.025
    assert torch.allclose(image - 0.5, -0.5 * grad / grad.abs().sum(), rtol=0, atol=1e-7)
    assert type(impasto.optimize.make_optimizer("lbfgs", image, 1.0)) is impasto.optimize.ProjectedLBFGS
    with pytest.raises(ZeroDivisionError), bench_specks.first_step("torch"):
        1 / 0
    assert type(impasto.optimize.make_optimizer("lbfgs", image, 1.0)) is impasto.optimize.ProjectedLBFGS
    with pytest.raises(ValueError, match="no first step called 'torh'"), bench_specks.first_step("torh"):
        pass


def test_step_benchmark_times_every_variant_on_the_canvas_a_run_paints(images):
    photo, painting = (impasto.read_image(images / name) for name in ("content/golden_gate.jpg", "style/starry_night.jpg"))
    config = impasto.Config(margin=2)
    canvas, flops, rows = bench_step.measure(photo, painting, 32, config, CPU, repeats=1)
    assert canvas == (24 + 4, 32 + 4)  # golden_gate is 4:3, and the margin is on every side
    assert flops == bench_step.canvas_step_flops(config, 24, 32) == \
        bench_step.canvas_step_flops(config.replace(margin=0), 28, 36)
    assert [name for name, _, _ in rows] == ["NCHW", "channels-last", "checkpointed", "bf16 unfused", "bf16 autocast"]
    assert all(median > 0 and first > 0 for _, median, first in rows)


def test_serve_benchmark_times_a_real_servers_job_and_a_painting_in_a_fresh_main_thread():
    served, painted = bench_serve.serve_job(48, 2, poll_every=0.2), bench_serve.main_run(48, 2)
    for run in (served, painted):
        assert run["seconds"] > 0 and run["faults"] > 0 and run["system"] >= 0


def test_thread_benchmark_paints_in_a_worker_and_counts_its_threads_page_faults():
    run = bench_threads.one_case("own", 48)  # the pytest process's heaps: "own" leaves them as they are
    assert run["seconds"] > 0 and run["faults"] > 0
