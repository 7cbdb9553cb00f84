"""Is the machine as fast now as it was? A canary timed between measurements.

On a shared virtual machine the host's other guests can slow every core for minutes at a time, and nothing inside
the guest shows it: the load average stays low and no steal time is reported. Measured that way on this project's
2-core VM (AMD EPYC, ONNX Runtime 1.31, one thread): in one benchmark the same networks measured 1.4-1.7x slower
for several minutes, then fast again. A benchmark that measures many networks one after another therefore times
a small fixed network, the canary, in its own process before each measurement (:meth:`Canary.wait`): when the
canary runs more than ``tolerance`` slower than the fastest it has run, the machine is waited on, and a measurement
taken while it stayed slow is marked as such.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


class Canary:
    """A small ONNX file (or any callable returning seconds) timed in this process, against its own fastest time.

    Args:
        timer: returns one timing of the canary, in seconds.
        tolerance: how much slower than its fastest the canary may run for the machine to count as steady.
        wait_s: seconds slept between checks while the machine is slow.
        max_wait_s: how long to wait at most before going on (the measurement is then marked slow).
        sleep: the sleeping function (tests replace it).
    """

    def __init__(self, timer: Callable[[], float], *, tolerance: float = 0.08, wait_s: float = 15.0,
                 max_wait_s: float = 300.0, sleep: Callable[[float], None] = time.sleep):
        if tolerance <= 0:
            raise ValueError(f"tolerance must be > 0, got {tolerance}")
        self.timer = timer
        self.tolerance = tolerance
        self.wait_s = wait_s
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.fastest = min(timer() for _ in range(3))
        self.history: list[float] = []  # every ratio checked, in order
        self.waited_s = 0.0

    @classmethod
    def onnx(cls, path: str | Path, runtime: str = "ort", threads: int = 1, **kwargs) -> Canary:
        """A canary timing the file at ``path`` (:func:`chipfit.deploy.ort.time_file`: a median of at least 15
        runs and 0.15 s)."""
        from chipfit.deploy.ort import time_file

        return cls(lambda: time_file(Path(path), runtime, threads=threads), **kwargs)

    def ratio(self) -> float:
        """The canary's time now over its fastest so far (a new fastest time lowers the reference)."""
        t = self.timer()
        self.fastest = min(self.fastest, t)
        r = t / self.fastest
        self.history.append(r)
        return r

    def wait(self, say: Callable[[str], None] | None = None) -> tuple[bool, float]:
        """Wait until the canary runs within ``tolerance`` of its fastest, at most ``max_wait_s``.

        Returns:
            (steady, ratio): whether the machine is as fast as it was, and the canary's last ratio.
        """
        slept = 0.0
        r = self.ratio()
        while r > 1 + self.tolerance and slept < self.max_wait_s:
            if say is not None:
                say(f"machine {r - 1:.0%} slower than it was (canary); waiting {self.wait_s:.0f} s")
            self.sleep(self.wait_s)
            slept += self.wait_s
            r = self.ratio()
        self.waited_s += slept
        return r <= 1 + self.tolerance, r
