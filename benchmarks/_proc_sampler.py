"""The benchmark's process accounting: CPU seconds and memory of the driver, its Ray workers and Ray's own
daemons, read from /proc (used by paper_latency.py)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------- processes
SYSTEM_TITLES = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")  # Ray's own agents carry worker-like titles
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode(errors="replace")
    except OSError:
        return None


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent not idle (/proc/stat), all processes."""
    f = [int(x) for x in (_read("/proc/stat") or "cpu 0 0 0 0").splitlines()[0].split()[1:]]
    return (sum(f) - f[3] - (f[4] if len(f) > 4 else 0)) / CLK_TCK


@dataclass
class Sample:
    t: float
    cpu: dict[int, float]  # pid -> CPU seconds so far (user + system)
    rss: dict[int, int]  # pid -> bytes
    pss: dict[int, int] | None  # pid -> bytes (every few samples: reading it costs more)
    machine_busy: float


@dataclass
class Sampler:
    """Samples this run's processes from /proc: the driver, its Ray worker processes and Ray's own daemons."""

    interval: float = 0.5
    pss_every: int = 6
    samples: list[Sample] = field(default_factory=list)
    kind: dict[int, str] = field(default_factory=dict)  # pid -> "driver" | "worker" | "ray system"
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            self.samples.append(self.take(with_pss=n % self.pss_every == 0))
            n += 1
            self._stop.wait(self.interval)
        self.samples.append(self.take(with_pss=True))

    def pids(self) -> list[int]:
        """The driver and every process descending from it (Ray started here: GCS, raylet, workers, agents)."""
        children: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                st = _read(f"/proc/{d}/stat")
                if st:
                    children.setdefault(int(st[st.rfind(")") + 2:].split()[1]), []).append(int(d))
        out, todo = [], [os.getpid()]
        while todo:
            p = todo.pop()
            out.append(p)
            todo += children.get(p, [])
        return out

    def take(self, with_pss: bool) -> Sample:
        cpu, rss, pss = {}, {}, {} if with_pss else None
        for pid in self.pids():
            st = _read(f"/proc/{pid}/stat")
            if st is None:
                continue
            f = st[st.rfind(")") + 2:].split()
            if pid not in self.kind:
                title = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ").strip()
                worker = title.startswith("ray::") or "default_worker.py" in title
                self.kind[pid] = ("driver" if pid == os.getpid() else
                                  "worker" if worker and not title.startswith(SYSTEM_TITLES) else "ray system")
            cpu[pid] = (int(f[11]) + int(f[12])) / CLK_TCK
            rss[pid] = int(f[21]) * PAGE
            if pss is not None and self.kind[pid] != "ray system":
                roll = _read(f"/proc/{pid}/smaps_rollup") or ""
                kb = [ln.split()[1] for ln in roll.splitlines() if ln.startswith("Pss:")]
                pss[pid] = int(kb[0]) * 1024 if kb else rss[pid]
        return Sample(time.time(), cpu, rss, pss, machine_busy_s())

    def mine(self, s: Sample, kinds: tuple[str, ...]) -> list[int]:
        return [p for p in s.rss if self.kind.get(p) in kinds]

    def peak(self, kinds: tuple[str, ...]) -> tuple[float, int, int]:
        """(peak of the summed RSS, number of those processes then, peak of the summed PSS) over the run."""
        best = max(self.samples, key=lambda s: sum(s.rss[p] for p in self.mine(s, kinds)))
        pss = max((sum(s.pss.get(p, 0) for p in self.mine(s, kinds)) for s in self.samples if s.pss), default=0)
        return sum(best.rss[p] for p in self.mine(best, kinds)), len(self.mine(best, kinds)), pss

    def cpu_between(self, t0: float, t1: float) -> dict[str, float]:
        """CPU seconds used between two times, per kind of process, plus the whole machine's (interpolated)."""
        def at(t: float) -> tuple[dict[int, float], float]:
            later = [s for s in self.samples if s.t >= t] or self.samples[-1:]
            earlier = [s for s in self.samples if s.t <= t] or self.samples[:1]
            a, b = earlier[-1], later[0]
            w = 0.0 if b.t <= a.t else (t - a.t) / (b.t - a.t)
            pids = set(a.cpu) | set(b.cpu)
            cpu = {p: a.cpu.get(p, 0.0) + w * (b.cpu.get(p, a.cpu.get(p, 0.0)) - a.cpu.get(p, 0.0)) for p in pids}
            return cpu, a.machine_busy + w * (b.machine_busy - a.machine_busy)
        (c0, m0), (c1, m1) = at(t0), at(t1)
        out = dict.fromkeys(("driver", "worker", "ray system"), 0.0)
        for p in set(c0) | set(c1):
            out[self.kind.get(p, "ray system")] += c1.get(p, c0.get(p, 0.0)) - c0.get(p, 0.0)
        out["machine"] = m1 - m0
        return out


def wait_for_workers_to_exit(sampler: Sampler, timeout: float = 20.0) -> None:
    """Killed actors' processes take a moment to go; the next variant must not count them."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = sampler.take(with_pss=False)
        if all(t.startswith(("ray::IDLE", "ray::Dashboard", "ray::RuntimeEnv")) or sampler.kind.get(p) != "worker"
               for p in s.rss for t in [(_read(f"/proc/{p}/cmdline") or "")]):
            return
        time.sleep(0.5)
