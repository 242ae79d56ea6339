"""The web app's job queue (impasto/web/jobs.py), without HTTP: reloading, damaged folders, a data
folder that cannot be written, and the waiting limit, with real runs at tiny sizes."""

import json
import shutil
import threading
import time

import pytest
from PIL import Image

import impasto
from impasto.web import jobs
from impasto.web.jobs import (FINISHED, INTERRUPTED, SERVER_STOPPED, STOPPED_WAITING, Job, JobManager, QueueFull,
                              _without_folder)


def test_a_job_interrupted_by_a_crash_is_reported_not_rerun(tmp_path):
    manager = JobManager(tmp_path)
    job_id, folder = manager.new_folder()
    job = Job(job_id, folder, impasto.Config().to_dict(), "a.jpg", ["b.jpg"], status="running", step=7)
    job.save()
    job.content_path.write_bytes(b"the photo")
    job.style_paths[0].write_bytes(b"the painting")
    reloaded = JobManager(tmp_path).get(job_id)
    assert reloaded.status == "failed" and reloaded.error == INTERRUPTED and reloaded.step == 7
    assert [p.name for p in folder.iterdir()] == ["job.json"]  # its uploads: nothing can use them now
    assert json.loads((folder / "job.json").read_text())["status"] == "failed"
    waiting_id, folder = manager.new_folder()  # killed before its turn: what the server's Ctrl-C says of it
    Job(waiting_id, folder, impasto.Config().to_dict(), "a.jpg", ["b.jpg"], status="queued").save()
    reloaded = JobManager(tmp_path).get(waiting_id)
    assert (reloaded.status, reloaded.stop_reason, reloaded.error) == ("cancelled", "cancelled", STOPPED_WAITING)


@pytest.mark.parametrize("status", ["queued", "running"])
def test_a_resume_interrupted_by_a_crash_can_resume_again(tmp_path, status):
    manager = JobManager(tmp_path)
    job_id, folder = manager.new_folder()
    stopped_at = {"size_index": 0, "size": 32, "steps_at_size": 3}
    job = Job(job_id, folder, impasto.Config().to_dict(), "a.jpg", ["b.jpg"], status=status, step=3,
              points=[[1, 9.0, 5.0, 4.0], [2, 8.0, 5.0, 3.0], [3, 7.0, 5.0, 2.0]], stopped_at=stopped_at)
    job.save()
    Image.new("RGB", (8, 8)).save(job.result_path)  # the stopped picture
    reloaded = JobManager(tmp_path).get(job_id)
    assert reloaded.status == "cancelled" and reloaded.resumable and reloaded.step == 3 and len(reloaded.points) == 3
    assert reloaded.error == f"{INTERRUPTED}; Resume goes on from where it stopped"
    assert reloaded.preview_step == 3  # the page shows the stopped picture while the resumed run prepares
    job.result_path.unlink()  # without its picture it cannot
    job.save()
    assert JobManager(tmp_path).get(job_id).status == "failed"


def test_damaged_job_folders_are_reported_and_skipped(tmp_path, caplog):
    manager = JobManager(tmp_path)
    made = []
    for changes in ({"status": "done"}, {"status": "done", "created": "2024-01-01"}, {"status": "cancelled"}):
        job_id, folder = manager.new_folder()
        Job(job_id, folder, impasto.Config().to_dict(), "a.jpg", ["b.jpg"], **changes).save()
        made.append(job_id)
    reloaded = JobManager(tmp_path)
    assert {job.id for job in reloaded.list()} == {made[0], made[2]}  # the one with a text date is skipped
    assert "created is '2024-01-01'" in caplog.text
    assert reloaded.get(made[0]).status == "failed"  # done, but its result.png is gone
    assert reloaded.get(made[0]).error == "its result.png is missing from the data folder"
    assert reloaded.get(made[2]).status == "cancelled"  # cancelled while queued: it never had a result


def _queue_jobs(manager, images, count):
    jobs = []
    for _ in range(count):
        job_id, folder = manager.new_folder()
        job = Job(job_id, folder, impasto.Config(max_size=32, iterations=2).to_dict(), "a.jpg", ["b.jpg"])
        shutil.copy(images / "content/golden_gate.jpg", job.content_path)
        shutil.copy(images / "style/starry_night.jpg", job.style_paths[0])
        assert manager.submit(job)["status"] == "queued"  # as it was queued: a worker may have taken it up since
        jobs.append(job)
    return jobs


def _wait_until_finished(jobs):
    deadline = time.monotonic() + 120  # a guard against hanging only
    while any(job.status not in FINISHED for job in jobs):
        assert time.monotonic() < deadline, [job.status for job in jobs]
        time.sleep(0.05)


def _wait_until_painting(job):
    """Until ``job`` has made its first step."""
    deadline = time.monotonic() + 120  # a guard against hanging only
    while job.step < 1:
        assert time.monotonic() < deadline and job.status not in FINISHED, job.error
        time.sleep(0.05)


class _Killed(BaseException):
    """What the server's process dying outright looks like to a worker: no handler runs."""


def test_a_job_killed_with_the_server_resumes_from_its_last_checkpoint(tmp_path, images, monkeypatch):
    real_stylize = jobs.stylize

    def killed_at_step_3(*args, callback, **kwargs):
        def step(event):
            if event.step == 3:
                raise _Killed
            return callback(event)
        return real_stylize(*args, callback=step, **kwargs)

    monkeypatch.setattr(jobs, "stylize", killed_at_step_3)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the worker thread dies with it, quietly
    manager = JobManager(tmp_path, checkpoint_seconds=0)  # a checkpoint after every step
    (job,) = _queue_jobs(manager, images, 1)
    job.settings = impasto.Config(max_size=32, iterations=6, tolerance=0.0).to_dict()
    manager.start()
    deadline = time.monotonic() + 120  # a guard against hanging only
    while manager._threads[0].is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job.status == "running" and job.checkpoint_path.is_file() and not job.result_path.exists()
    monkeypatch.undo()

    restarted = JobManager(tmp_path)
    again = restarted.get(job.id)
    assert again.status == "cancelled" and again.resumable and again.step == 2 and again.size == [32, 24]
    assert again.error == f"{INTERRUPTED}; Resume goes on from where it stopped"
    assert not again.checkpoint_path.exists() and impasto.read_metadata(again.result_path)["stopped_at"] == {
        "size_index": 0, "size": 32, "steps_at_size": 2}
    # the chart and the clock as they were at the picture kept, not as job.json was when the run began
    assert [point[0] for point in again.points] == [1, 2]
    assert again.elapsed == impasto.read_metadata(again.result_path)["seconds"] > 0
    assert restarted.resume(again)
    restarted.start()
    try:
        _wait_until_finished([again])
    finally:
        restarted.stop()
    meta = impasto.read_metadata(again.result_path)
    assert again.status == "done" and meta["steps"] == 6 and meta["resumed_from"]["steps"] == 2
    assert again.pace is None  # its run timed steps 3 to 6: 3 after its own first, too few to keep
    assert not again.checkpoint_path.exists()  # a finished job keeps none


def test_a_data_folder_that_cannot_be_written_fails_the_job_not_the_worker(tmp_path, images, caplog):
    manager = JobManager(tmp_path)
    first, second, third = _queue_jobs(manager, images, 3)
    (first.folder / "job.json").unlink()
    (first.folder / "job.json").mkdir()  # job.json cannot be written there any more
    (second.folder / "result.png").mkdir()  # nor the result
    manager.start()
    try:
        _wait_until_finished([first, second, third])
    finally:
        manager.stop()
    assert first.status == "done" and "cannot save job" in caplog.text  # its state lives on in memory
    assert second.status == "failed"
    assert second.error == "cannot write the result: result.png: is a folder, cannot write a file there"
    assert third.status == "done" and third.result_path.is_file()  # the worker went on
    # a job that ends without a picture keeps no uploads (no card on the page could delete them), one with one does
    assert sorted(p.name for p in second.folder.iterdir()) == ["job.json", "result.png"]  # result.png: the folder
    assert third.content_path.is_file() and third.style_paths[0].is_file()


def test_the_queue_limit_holds_for_uploads_that_arrive_together(tmp_path, images):
    manager = JobManager(tmp_path)  # not started: queued jobs stay queued
    _queue_jobs(manager, images, 2)
    job_id, folder = manager.new_folder()
    late = Job(job_id, folder, impasto.Config(max_size=32, iterations=2).to_dict(), "a.jpg", ["b.jpg"])
    with pytest.raises(QueueFull, match="2 jobs are already waiting"):
        manager.submit(late, most_waiting=2)
    assert manager.get(job_id) is None and manager.pending() == 2


def test_a_resume_that_cannot_go_on_keeps_the_stopped_picture(tmp_path, images):
    manager = JobManager(tmp_path)
    (job,) = _queue_jobs(manager, images, 1)
    job.settings = impasto.Config(max_size=32, iterations=50, tolerance=0.0).to_dict()
    job.total = 50
    job.cancel_requested.set()  # stops after its first step
    manager.start()
    try:
        _wait_until_finished([job])
        assert job.status == "cancelled" and job.step == 1 and job.resumable
        assert JobManager(tmp_path).get(job.id).resumable  # a restarted server can resume it too
        impasto.save_image(impasto.read_image(job.result_path), job.result_path)  # its metadata lost
        assert manager.resume(job)["status"] == "queued"  # as it was queued: the worker may have ended it since
        _wait_until_finished([job])
    finally:
        manager.stop()
    assert job.status == "cancelled" and job.has_result and not job.resumable
    assert job.error == "cannot resume: result.png: carries no impasto metadata, cannot resume it"
    assert not manager.resume(job)


def test_jobs_stopped_with_the_server_say_so_not_cancelled_by_the_user(tmp_path, images):
    manager = JobManager(tmp_path)
    running, waiting = _queue_jobs(manager, images, 2)
    running.settings = impasto.Config(max_size=32, iterations=100000, tolerance=0.0).to_dict()
    manager.start()
    try:
        _wait_until_painting(running)
    finally:
        manager.stop()  # as Ctrl-C on `impasto serve` does
    assert running.status == "cancelled" and running.resumable and running.error == SERVER_STOPPED
    assert waiting.status == "cancelled" and not waiting.has_result and waiting.error == STOPPED_WAITING
    assert [p.name for p in waiting.folder.iterdir()] == ["job.json"]
    assert running.content_path.is_file() and running.style_paths[0].is_file()  # Resume paints them on
    reloaded = JobManager(tmp_path).get(running.id)
    assert reloaded.error == SERVER_STOPPED  # and after a restart, its stopped picture still the stage's
    assert reloaded.preview_step == running.preview_step == running.step > 0
    assert JobManager(tmp_path).get(waiting.id).preview_step == 0  # no picture to show


def test_a_queued_job_cancelled_and_deleted_does_not_stop_the_worker(tmp_path, images):
    manager = JobManager(tmp_path)  # not started: both wait in the queue
    gone, kept = _queue_jobs(manager, images, 2)
    assert manager.cancel(gone) and manager.delete(gone) and not gone.folder.exists()
    manager.start()
    try:
        _wait_until_finished([kept])  # the worker skipped the deleted job's id, and lived on
    finally:
        manager.stop()
    assert kept.status == "done" and manager.get(gone.id) is None


def test_a_job_cancelled_while_it_prepares_keeps_no_picture(tmp_path, images):
    manager = JobManager(tmp_path)
    (job,) = _queue_jobs(manager, images, 1)

    def cancel_as_it_starts():  # called by the worker as the job turns running, before its first step
        if job.status == "running" and job.step == 0 and not job.cancel_requested.is_set():
            manager.cancel(job)

    manager.listen(job.id, cancel_as_it_starts)
    manager.start()
    try:
        _wait_until_finished([job])
    finally:
        manager.stop()
    assert job.status == "cancelled" and not job.has_result and not job.resumable  # not a card of the photo
    assert (job.step, job.points) == (0, []) and not job.result_path.exists()
    assert [p.name for p in job.folder.iterdir()] == ["job.json"]  # no uploads left that nothing can use


def test_messages_to_the_page_leave_out_the_servers_folders(tmp_path):
    job = Job("0" * 32, tmp_path / "jobs" / ("0" * 32), {}, "a.jpg", ["b.jpg"])
    message = f"{job.folder}/result.png: cannot write in folder {str(job.folder)!r} (Read-only file system)"
    assert _without_folder(message, job) == "result.png: cannot write in folder its folder (Read-only file system)"



def test_a_jobs_pace_is_kept_from_the_fifth_step_after_its_first(tmp_path, images, monkeypatch):
    monkeypatch.setattr(jobs, "PACE_PIXELS", 32 * 24)  # the suite's jobs are tiny
    manager = JobManager(tmp_path)
    short, long, small = _queue_jobs(manager, images, 3)
    short.settings = impasto.Config(max_size=32, iterations=5, tolerance=0.0).to_dict()  # 4 steps after its first
    long.settings = impasto.Config(max_size=32, iterations=6, tolerance=0.0).to_dict()
    small.settings = impasto.Config(max_size=24, iterations=6, tolerance=0.0).to_dict()  # 24×18: too few pixels
    manager.start()
    try:
        _wait_until_finished([short, long, small])
    finally:
        manager.stop()
    assert short.pace is None and long.pace > 0 and small.pace > 0
    assert manager.pace == long.pace  # the newest job's picture was too small to time the server by
    assert JobManager(tmp_path).pace == long.pace  # kept in its job.json
    work = 150 * 512 * 384 + 100 * (round(1024 * 768 * 278208 / 361152) + 512 * 384)  # as test_web counts it
    assert manager.estimate(impasto.Config(max_size=1024), 734, 979) == pytest.approx(long.pace * work)


def _saved_job(manager, **fields):
    """A job.json in a fresh folder, as an earlier session left it."""
    job_id, folder = manager.new_folder()
    job = Job(job_id, folder, impasto.Config().to_dict(), "a.jpg", ["b.jpg"], **fields)
    job.save()
    return job


def test_a_restarted_server_is_timed_by_the_newest_job_with_at_least_pace_pixels(tmp_path):
    manager = JobManager(tmp_path)
    _saved_job(manager, status="cancelled", pace=2e-6, size=[256, 144], created=10.0, finished=2000.0)  # exactly
    _saved_job(manager, status="cancelled", pace=3e-6, size=[256, 144], created=20.0, finished=1500.0)  # older
    # the newest, but one column short of PACE_PIXELS: a small picture's steps cost more a pixel
    _saved_job(manager, status="cancelled", pace=4e-6, size=[255, 144], created=30.0, finished=3000.0)
    restarted = JobManager(tmp_path)
    assert restarted.pace == 2e-6
    assert restarted.estimate(impasto.Config(max_size=48, iterations=12), 36, 48) == pytest.approx(2e-6 * 12 * 48 * 36)


# JSON's true is a Python int too; a finished job's chart is drawn from its points
@pytest.mark.parametrize("key, value, logged", [("step", True, "step is True"), ("points", None, "points is None")])
def test_a_job_json_with_a_wrong_kind_of_value_is_skipped_as_damaged(tmp_path, caplog, key, value, logged):
    manager = JobManager(tmp_path)
    job = _saved_job(manager, status="cancelled")
    data = json.loads((job.folder / "job.json").read_text())
    (job.folder / "job.json").write_text(json.dumps({**data, key: value}))
    assert JobManager(tmp_path).list() == [] and logged in caplog.text


def test_jobs_are_listed_newest_first_and_only_from_folders_named_by_an_id(tmp_path):
    manager = JobManager(tmp_path)
    made = [_saved_job(manager, status="cancelled", created=created).id for created in (10.0, 30.0, 20.0)]
    stray = tmp_path / "jobs" / "backup"  # not a job id: never a job, so never a folder Delete removes
    stray.mkdir()
    shutil.copy(tmp_path / "jobs" / made[0] / "job.json", stray / "job.json")
    assert [job.id for job in JobManager(tmp_path).list()] == [made[1], made[2], made[0]]


def test_a_job_cancelled_while_it_waits_stays_cancelled_after_a_restart(tmp_path, images):
    manager = JobManager(tmp_path)  # not started: the job waits
    (job,) = _queue_jobs(manager, images, 1)
    assert manager.cancel(job)
    again = JobManager(tmp_path).get(job.id)
    # not "failed" with INTERRUPTED: the user cancelled it, the server lost nothing
    assert (again.status, again.stop_reason, again.error) == ("cancelled", "cancelled", None)


def test_a_running_job_does_not_count_against_the_waiting_limit(tmp_path, images):
    manager = JobManager(tmp_path)
    (running,) = _queue_jobs(manager, images, 1)
    running.settings = impasto.Config(max_size=32, iterations=100000, tolerance=0.0).to_dict()
    manager.start()
    try:
        _wait_until_painting(running)
        job_id, folder = manager.new_folder()
        waiting = Job(job_id, folder, impasto.Config(max_size=32, iterations=2).to_dict(), "a.jpg", ["b.jpg"])
        assert manager.submit(waiting, most_waiting=1)["status"] == "queued"  # none waited: it is the one
        assert manager.pending() == 1
    finally:
        manager.stop()


def test_a_painting_shorter_than_a_minute_writes_no_checkpoint(tmp_path, images):
    manager = JobManager(tmp_path)  # a checkpoint every CHECKPOINT_SECONDS: writing one at 4K takes ~1.2 s
    (job,) = _queue_jobs(manager, images, 1)
    job.settings = impasto.Config(max_size=32, iterations=6, tolerance=0.0).to_dict()
    seen = []
    manager.listen(job.id, lambda: seen.append((job.step, job.checkpoint_path.exists())))
    manager.start()
    try:
        _wait_until_finished([job])
    finally:
        manager.stop()
    assert job.status == "done" and [step for step, _ in seen if step] == [1, 2, 3, 4, 5, 6, 6]
    assert not any(checkpoint for _, checkpoint in seen)


def test_a_resumed_job_shows_no_time_left_until_its_first_step(tmp_path):
    stopped_at = {"size_index": 0, "size": 32, "steps_at_size": 3}
    job = _saved_job(JobManager(tmp_path), status="cancelled", step=3, stopped_at=stopped_at)
    Image.new("RGB", (8, 8)).save(job.result_path)  # the stopped picture
    manager = JobManager(tmp_path)  # not started: it stays queued
    job = manager.get(job.id)
    job.seconds_left = 42.0  # as the stopped run left it
    assert manager.resume(job)["status"] == "queued"
    job.status = "running"  # as the worker marks it, before the resumed run's first step
    assert job.seconds_left is None and job.summary()["eta"] is None  # not the stopped run's 42 s


def test_a_job_cancelled_while_it_waits_is_never_painted(tmp_path, images):
    manager = JobManager(tmp_path)  # not started: both wait in the queue
    cancelled, kept = _queue_jobs(manager, images, 2)
    assert manager.cancel(cancelled)
    changes = []
    manager.listen(cancelled.id, lambda: changes.append(cancelled.status))
    manager.start()
    try:
        _wait_until_finished([kept])  # the worker took up the cancelled one's id before it
    finally:
        manager.stop()
    assert changes == [] and cancelled.step == 0 and not cancelled.result_path.exists()
