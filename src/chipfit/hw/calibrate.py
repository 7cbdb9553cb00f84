"""Measure this machine into a ``host`` chip profile: achieved fp32 matmul ops/s, memory bandwidth, op overhead.

The peak written is an achieved figure (a large ``torch.mm``), not a datasheet number, so the profile's
efficiency is 1.0. Memory bandwidth is a copy far larger than the caches, counting bytes read plus bytes written.
Each figure is the median of repeats after a warm-up; the machine should be otherwise idle.
"""

from __future__ import annotations

import datetime
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from chipfit.hw.chip import Chip, load_chip, user_chip_dir

# (matmul sizes, copy MiB, repeats); quick is for tests: seconds, rough figures
_FULL = ((1024, 2048), 256, 10)
_QUICK = ((128, 256), 16, 3)


def _median_time(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure_matmul(n: int, repeats: int) -> float:
    """Median achieved fp32 ops/s of an n x n by n x n ``torch.mm`` (2 n^3 operations each)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    return 2 * n**3 / _median_time(lambda: torch.mm(a, b, out=out), repeats)


def measure_bandwidth(mib: int, repeats: int) -> float:
    """Median achieved bytes/s of copying ``mib`` MiB (bytes read + bytes written)."""
    import torch

    src = torch.ones(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / _median_time(lambda: dst.copy_(src), repeats, warmup=1)


def measure_op_overhead(repeats: int) -> float:
    """Median seconds of one eager PyTorch op on a one-element tensor: the fixed cost every op pays."""
    import torch

    x = torch.ones(1)
    out = torch.empty(1)
    inner = 100

    def hundred_adds() -> None:
        for _ in range(inner):
            torch.add(x, x, out=out)

    return _median_time(hundred_adds, repeats) / inner


def cpu_name() -> str:
    """This CPU's model name (``/proc/cpuinfo``), or what ``platform`` says where that is not readable."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cpu_mhz() -> float | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def caches() -> list[tuple[int, int, str]]:
    """(level, bytes, description) of cpu0's data and unified caches, from sysfs; empty where it says nothing."""
    out = []
    try:
        for idx in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
            if (idx / "type").read_text().strip() == "Instruction":
                continue
            level = int((idx / "level").read_text().strip())
            size = (idx / "size").read_text().strip().upper()
            nbytes = int(size.rstrip("KMG")) * {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1], 1)
            shared = (idx / "shared_cpu_list").read_text().strip() if (idx / "shared_cpu_list").exists() else "?"
            out.append((level, nbytes, f"L{level} {size} shared by CPUs {shared}"))
    except (OSError, ValueError):
        return []
    return out


def _last_level_cache() -> tuple[int, str] | None:
    """(bytes, description) of cpu0's largest data/unified cache."""
    found = caches()
    return max(((b, d) for _, b, d in found), key=lambda c: c[0]) if found else None


def _sig(x: float) -> float:
    return float(f"{x:.4g}")


def calibrate(out: Path | None = None, quick: bool = False) -> Chip:
    """Measure this machine and write a ``host`` chip profile.

    Args:
        out: destination YAML; default ``user_chip_dir() / "host.yaml"``, which then overrides the built-in
            ``host`` profile.
        quick: small sizes (seconds, for tests); the figures are then rough.

    Returns:
        The profile, as read back from ``out``.

    Raises:
        OSError: the file cannot be written.
    """
    import torch
    from rich.console import Console

    sizes, mib, repeats = _QUICK if quick else _FULL
    threads = torch.get_num_threads()
    cpu = cpu_name()
    console = Console(stderr=True)
    with console.status("measuring fp32 matmul throughput...") as status:
        by_size = {n: measure_matmul(n, repeats) for n in sizes}
        status.update(f"measuring memory bandwidth ({mib} MiB copy)...")
        bandwidth = measure_bandwidth(mib, repeats)
        status.update("measuring per-op overhead...")
        overhead = measure_op_overhead(repeats)
    n_best = max(by_size, key=by_size.__getitem__)
    when = datetime.date.today().isoformat()
    measured = f"measured by chipfit hw calibrate on {when}, {cpu}, {threads} threads"
    tried = ", ".join(f"n={n}: {v / 1e9:.1f}" for n, v in by_size.items())
    cache = _last_level_cache()
    data: dict[str, Any] = {
        "name": "host",
        "description": f"This machine ({cpu}, {threads} threads), measured on {when}; `chipfit hw calibrate` "
        "measures yours into a user profile that replaces this one",
        "kind": "cpu",
        "peak_ops_per_s": {"fp32": {"value": _sig(by_size[n_best]), "source": (
            f"{measured}: best of n x n fp32 torch.mm ({tried} GFLOP/s), median of {repeats} after warm-up, "
            "2 n^3 ops each; an achieved figure, not a datasheet peak")}},
        "dram_bandwidth_bytes_per_s": {"value": _sig(bandwidth), "source": (
            f"{measured}: {mib} MiB tensor copy, bytes read + written, median of {repeats}")},
        "onchip_bytes": {"value": cache[0], "source": (
            f"sysfs on {when}: cpu0's last-level cache, {cache[1]} (under a VM it may be shared with other guests)")}
        if cache else {"value": 2**20, "source": "assumption: 1 MiB; sysfs gave no cache sizes"},
        "efficiency": {"value": 1.0, "source": "1.0 by construction: the peak above is already an achieved "
                       "matmul figure"},
        "op_overhead_s": {"value": _sig(overhead), "source": (
            f"{measured}: one eager torch.add on one-element tensors, median of {repeats} x 100")},
        "concurrent_ops": {"value": False, "source": "PyTorch eager on a CPU runs ops one after another"},
    }
    mhz = _cpu_mhz()
    if mhz:
        data["clock_hz"] = {"value": _sig(mhz * 1e6), "source": f"/proc/cpuinfo 'cpu MHz' on {when}"}
    out = Path(out) if out is not None else user_chip_dir() / "host.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# {measured}; re-run `chipfit hw calibrate` to refresh.\n"
    out.write_text(header + yaml.safe_dump(data, sort_keys=False, width=1000, default_flow_style=None))
    return load_chip(out)
