"""Training's thread count follows the cores other processes leave free (effnet.threads)."""

import subprocess
import sys

import pytest
import torch

from effnet import threads
from effnet.errors import EffnetError
from effnet.threads import ThreadGovernor, busy_ticks, threads_for


def stat_file(tmp_path, rows):
    """A /proc/stat with one line per (cpu, busy, idle) in ticks."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{c} {busy} 0 0 {idle} 0 0 0 0 0 0" for c, busy, idle in rows]
    path = tmp_path / "stat"
    path.write_text("\n".join(lines + ["intr 1 2 3", "ctxt 5"]) + "\n")
    return path


def test_threads_for():
    assert threads_for(0.0, 2) == 2
    assert threads_for(0.5, 2) == 2  # a half-busy neighbour: still both cores
    assert threads_for(0.75, 2) == 1
    assert threads_for(1.0, 2) == 1
    assert threads_for(3.0, 2) == 1  # never zero
    assert threads_for(1.0, 8) == 7
    assert threads_for(0.0, 8, limit=4) == 4


def test_busy_ticks_reads_only_our_cores(tmp_path):
    path = stat_file(tmp_path, [(0, 100, 300), (1, 50, 50), (2, 1000, 0)])
    assert busy_ticks([0, 1], path) == (150, 500)
    assert busy_ticks([0], tmp_path / "missing") is None


class Fake:
    """Clocks and a /proc/stat that advance as the test says."""

    def __init__(self, tmp_path, cores):
        self.tmp, self.cores, self.t, self.cpu = tmp_path, cores, 0.0, 0.0
        self.busy = [0] * cores
        self.idle = [1000] * cores  # a machine that has been up a while
        self.write()

    def write(self):
        rows = [(c, self.busy[c], self.idle[c]) for c in range(self.cores)]
        self.path = stat_file(self.tmp, rows)

    def advance(self, seconds, others_cores, our_cores, hz=100):
        """``seconds`` pass with others and us keeping that many cores busy."""
        self.t += seconds
        self.cpu += our_cores * seconds
        busy = min(others_cores + our_cores, self.cores) * seconds * hz
        for c in range(self.cores):
            share = busy / self.cores
            self.busy[c] += int(share)
            self.idle[c] += int(seconds * hz - share)
        self.write()


def governor(fake, monkeypatch, **kw):
    monkeypatch.setattr(threads, "usable_cores", lambda: list(range(fake.cores)))
    monkeypatch.setattr(threads.time, "sleep", lambda s: fake.advance(s, fake.others, 0))
    g = ThreadGovernor(stat=fake.path, clock=lambda: fake.t, cpu_clock=lambda: fake.cpu, **kw)
    g.stat = fake.tmp / "stat"
    return g


def test_governor_follows_the_other_load(tmp_path, monkeypatch):
    monkeypatch.delenv("EFFNET_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        fake = Fake(tmp_path, 2)
        fake.others = 1.0  # one CPU-bound neighbour at the start
        g = governor(fake, monkeypatch)
        assert g.start() == 1 and torch.get_num_threads() == 1
        assert g.others_busy == pytest.approx(1.0)
        fake.advance(10, 1.0, 1.0)
        assert g.tick() == 1  # not yet re-measured (every 30 s)
        fake.advance(25, 0.0, 1.0)  # the neighbour left
        assert g.tick() == 2 and torch.get_num_threads() == 2
        fake.advance(31, 1.0, 1.0)  # it came back: 2 cores busy, 1 of them ours
        assert g.tick() == 1
        fake.advance(31, 0.0, 2.0)  # a quiet machine, both cores ours
        assert g.tick() == 2
    finally:
        torch.set_num_threads(before)


def test_fixed_and_deterministic_never_change(tmp_path, monkeypatch):
    monkeypatch.delenv("EFFNET_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        fake = Fake(tmp_path, 2)
        fake.others = 1.0
        assert governor(fake, monkeypatch, fixed=2).start() == 2
        torch.set_num_threads(2)
        g = governor(fake, monkeypatch, adapt=False)  # what --deterministic gets
        assert g.start() == 2
        fake.advance(60, 1.0, 1.0)
        assert g.tick() == 2
        monkeypatch.setenv("EFFNET_THREADS", "3")
        assert governor(fake, monkeypatch).start() == 3
        monkeypatch.setenv("EFFNET_THREADS", "two")
        with pytest.raises(EffnetError, match="EFFNET_THREADS must be a positive integer"):
            governor(fake, monkeypatch)
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not threads.PROC_STAT.exists(), reason="needs /proc/stat (Linux)")
def test_a_real_busy_process_is_seen(monkeypatch):
    monkeypatch.delenv("EFFNET_THREADS", raising=False)
    before = torch.get_num_threads()
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        g = ThreadGovernor()
        g.start(probe_s=1.0)
        assert g.others_busy >= 0.6, g.others_busy
        assert g.threads <= max(1, len(g.cores) - 1)
    finally:
        spin.kill()
        spin.wait()
        torch.set_num_threads(before)
