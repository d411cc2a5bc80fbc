"""The progress display: plain lines off a terminal, a live display on one, honest ETAs."""

from __future__ import annotations

import io

import pytest

from effnet import progress as progress_module
from effnet.progress import Display, open_step_bar


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress_module.time, "perf_counter", c)
    return c


def test_plain_lines_name_model_step_loss_and_both_times_left(clock):
    out = io.StringIO()
    d = Display([1e6, 1e6, 2e6], title="study quick", live=False, stream=out, every_s=30)
    d.start_run(0, "baseline seed 0")
    bar = d.step_bar(100)
    bar.set_description("epoch 1")
    for _ in range(25):
        clock.now += 2.0  # 2 s a step
        bar.set_postfix(loss="1.234", img_s="64")
        bar.update()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1  # one line per 30 s, not per step
    last = lines[-1]
    assert "[1/3] baseline seed 0 step 15/100 (epoch 1) loss 1.234 img/s 64" in last
    assert "0:30 elapsed, 2:50 left" in last  # 85 steps at 2 s
    # the study: 150 s left of this run, then 3e6 multiply-adds at the measured 50 s per
    # quarter of a 1e6 run (200 s per 1e6)
    assert d.time_left() == pytest.approx(150 + 600)
    assert "study quick 0:50 elapsed" in d.status_line()


def test_study_eta_uses_finished_runs_and_skips_runs_done_before(clock):
    d = Display([1.0, 1.0, 3.0], live=False, stream=io.StringIO(), every_s=float("inf"))
    d.start_run(0, "a")
    d.finish_run(skipped=True)  # finished in an earlier call: no time measured
    assert d.time_left() is None
    d.start_run(1, "b")
    bar = d.step_bar(10)
    clock.now += 60.0
    bar.update(10)
    d.finish_run("b done")
    assert d.time_left() == pytest.approx(180.0)  # 3 units left at 60 s a unit
    assert not d.shows_steps


def test_live_display_draws_on_a_terminal_and_hands_back_the_lines(clock):
    out = io.StringIO()
    d = Display([1.0, 1.0], title="study t", live=True, stream=out)
    d.start_run(0, "depth seed 0")
    bar = d.step_bar(4)
    bar.update(2)
    bar.write("epoch=1 train_loss=0.9")
    d.finish_run("depth seed 0: test top-1 80.00%")
    d.close()
    text = out.getvalue()
    assert "epoch=1 train_loss=0.9" in text and "test top-1 80.00%" in text
    assert "study t" in text


def test_open_step_bar():
    assert open_step_bar(False, 10) is None
    d = Display([1.0], live=False, stream=io.StringIO())
    assert open_step_bar(d, 10, 3).n == 3
    own = open_step_bar(True, 10)
    assert own is not None and own.owns_display
    own.close()
