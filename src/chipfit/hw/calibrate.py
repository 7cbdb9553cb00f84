"""Measure this machine into a ``host`` chip profile: achieved fp32 matmul ops/s and memory bandwidth."""

from __future__ import annotations

import datetime
import platform
import statistics
import time
from pathlib import Path

import yaml

from chipfit.hw.chip import Chip, parse_chip, user_chip_dir


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_matmul(n: int, repeats: int) -> float:
    """Median achieved fp32 ops/s of an n x n matmul (2 n^3 ops each)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times)


def measure_bandwidth(mbytes: int, repeats: int) -> float:
    """Median achieved bytes/s of a large copy (bytes read + bytes written)."""
    import torch

    src = torch.ones(mbytes * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t)
    return 2 * src.numel() * 4 / statistics.median(times)


def calibrate(out: Path | None = None, quick: bool = False) -> Chip:
    """Measure this machine and write a ``host`` profile (default: the user profile folder).

    Args:
        out: destination YAML; default ``user_chip_dir() / "host.yaml"``.
        quick: small sizes (seconds, for tests); the figures are then rough.
    """
    import torch
    from rich.console import Console

    console = Console(stderr=True)
    n, mb, reps = (256, 16, 3) if quick else (2048, 256, 7)
    with console.status("measuring fp32 matmul throughput..."):
        ops = measure_matmul(n, reps)
    with console.status("measuring memory bandwidth..."):
        bw = measure_bandwidth(mb, reps)
    threads = torch.get_num_threads()
    when = datetime.date.today().isoformat()
    where = f"measured by chipfit hw calibrate on {when}, {_cpu_name()}, {threads} threads"
    data = {
        "name": "host",
        "description": f"This machine ({_cpu_name()}, {threads} threads), as measured; `chipfit hw calibrate` "
        "re-measures it into a user profile",
        "kind": "cpu",
        "peak_ops_per_s": {"fp32": {"value": float(f"{ops:.4g}"), "source": f"{where}: {n}x{n} fp32 matmul, "
                                    f"median of {reps}"}},
        "dram_bandwidth_bytes_per_s": {"value": float(f"{bw:.4g}"),
                                       "source": f"{where}: {mb} MB copy, bytes read + written, median of {reps}"},
        "onchip_bytes": {"value": float(_l2_bytes()), "source": "this machine's L2 cache (sysfs), or 512 KB assumed"},
        "efficiency": {"value": 1.0, "source": "the peak above is already an achieved figure"},
        "op_overhead_s": {"value": 1.0e-5, "source": "assumption: PyTorch eager dispatch per op, about 10 us"},
        "concurrent_ops": False,
    }
    out = Path(out) if out else user_chip_dir() / "host.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False, width=200))
    return parse_chip(data, str(out))


def _l2_bytes() -> int:
    try:
        for idx in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
            if (idx / "level").read_text().strip() == "2":
                size = (idx / "size").read_text().strip().upper()
                mult = {"K": 1024, "M": 2**20}.get(size[-1], 1)
                return int(size.rstrip("KM")) * mult
    except (OSError, ValueError):
        pass
    return 512 * 1024
