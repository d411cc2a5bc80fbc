"""Training's thread count is the one whose steps are fastest, measured as it trains."""

import pytest
import torch

from effnet.errors import EffnetError
from effnet.threads import ThreadGovernor


class Machine:
    """A fake clock: a step with n threads takes ``cost[n]`` seconds."""

    def __init__(self, cost):
        self.cost, self.t = dict(cost), 0.0

    def train(self, governor, steps):
        for _ in range(steps):
            self.t += self.cost[torch.get_num_threads()]
            governor.tick()


@pytest.fixture
def restore_threads(monkeypatch):
    monkeypatch.delenv("EFFNET_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_quiet_machine_keeps_every_core(restore_threads):
    m = Machine({1: 1.6, 2: 1.0})
    g = ThreadGovernor(most=2, every_s=10, clock=lambda: m.t)
    assert g.start() == 2
    m.train(g, 200)
    assert g.threads == 2 and torch.get_num_threads() == 2
    assert g.history and all(tried == 1 for tried, _, _ in g.history)  # it did look
    # probing cost: 5 slow steps (0.6 s extra each) per ~10 s of training
    assert m.t < 200 * 1.0 * 1.2


def test_busy_neighbour_moves_to_one_thread_and_back(restore_threads):
    m = Machine({1: 1.6, 2: 4.0})  # two threads wait for the core the neighbour holds
    g = ThreadGovernor(most=2, every_s=30, clock=lambda: m.t)
    g.start()
    m.train(g, 40)
    assert g.threads == 1 and torch.get_num_threads() == 1
    m.cost = {1: 1.6, 2: 1.0}  # the neighbour left
    m.train(g, 60)
    assert g.threads == 2


def test_pause_keeps_evaluation_out_of_step_times(restore_threads):
    m = Machine({1: 1.6, 2: 1.0})
    g = ThreadGovernor(most=2, every_s=5, clock=lambda: m.t)
    g.start()
    m.train(g, 20)
    for _ in range(5):
        g.pause()
        m.t += 100.0  # an evaluation pass
        m.train(g, 10)
    assert g.threads == 2
    assert all(ours < 2 for _, ours, _ in g.history)


def test_fixed_env_and_deterministic_never_change(restore_threads, monkeypatch):
    m = Machine({1: 1.0, 2: 4.0, 3: 4.0})
    g = ThreadGovernor(fixed=2, most=2, every_s=1, clock=lambda: m.t)
    assert g.start() == 2
    m.train(g, 30)
    assert g.threads == 2 and not g.history
    torch.set_num_threads(2)
    g = ThreadGovernor(adapt=False, most=2, every_s=1, clock=lambda: m.t)  # --deterministic
    assert g.start() == 2
    m.train(g, 30)
    assert g.threads == 2 and not g.history
    monkeypatch.setenv("EFFNET_THREADS", "3")
    assert ThreadGovernor(most=2).start() == 3
    monkeypatch.setenv("EFFNET_THREADS", "two")
    with pytest.raises(EffnetError, match="EFFNET_THREADS must be a positive integer"):
        ThreadGovernor()
