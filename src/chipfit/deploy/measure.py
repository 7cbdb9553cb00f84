"""Measured latency, by a protocol a benchmark engineer would accept: ``chipfit measure``.

Each of ``processes`` fresh Python processes loads the model, runs ``warmup`` untimed inferences, then ``repeats``
timed ones (``time.perf_counter`` around each run) on one fixed random input (seed 0), and returns every sample.
A fresh process per series, because a process's memory layout, thread placement and the runtime's choice of kernels
change from one start to the next, and one process cannot show that. The figure is the median of the per-process
medians; ``spread`` ((max - min) / median) and ``sigma`` (population standard deviation / mean) of those medians
say how far one start differs from another. Every raw sample is kept (:meth:`Measurement.to_dict`).

Runtimes, all on this machine's CPU:

- ``ort``: ONNX Runtime on an ``.onnx`` file; ``intra_op_num_threads=threads``, one inter-op thread, sequential
  execution, every graph optimization.
- ``openvino``: OpenVINO on an ``.onnx`` or ``.xml`` file; ``INFERENCE_NUM_THREADS=threads``, the latency hint, one
  stream, f32 for float layers (the optional extra ``chipfit[openvino]``).
- ``torch``: a ``.pt2`` file of ``torch.export.save``, run as ``torch.export.load(f).module()`` under
  ``torch.no_grad()`` with ``torch.set_num_threads(threads)``.
- ``remote``: the user's own benchmark command (:mod:`chipfit.deploy.remote`), run ``processes`` times; its
  output's numbers are the samples.

``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` are set to ``threads`` in each child. The
1-minute load average is read before the first process and after the last; a machine busier than the free cores
that the measurement needs gets a warning in :attr:`Measurement.warnings` (the figures may be inflated), as do
per-process medians more than 10% apart.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chipfit.deploy.openvino import OPENVINO_MISSING
from chipfit.deploy.remote import compile_parse, run_process, run_remote, runner_args, unit_scale
from chipfit.hw.calibrate import cpu_name
from chipfit.hw.estimate import Estimate

RUNTIMES = ("ort", "openvino", "torch", "remote")
SUFFIXES = {"ort": (".onnx",), "openvino": (".onnx", ".xml"), "torch": (".pt2",)}
UNSTABLE_SPREAD = 0.10  # per-process medians further apart than this get a warning
WORKER = Path(__file__).with_name("_measure_worker.py")
STDERR_LINES = 5


@dataclass(frozen=True)
class Measurement:
    """One network's measured latency on one runtime, with everything needed to judge and repeat it.

    Attributes:
        runtime: ``ort``, ``openvino``, ``torch`` or ``remote``.
        runtime_version: the runtime's version (``None`` for a remote runner).
        model: the file measured (or the model spec it was exported from).
        input_shape: the input it ran on (``None`` where a remote runner decides).
        threads: intra-op threads (``None`` for a remote runner).
        processes: fresh processes, each one series of runs.
        repeats: timed runs per process (``None`` for a remote runner: its own tool decides).
        warmup: untimed runs before them (``None`` for a remote runner).
        samples_s: every timed run's seconds, one list per process.
        process_medians_s: each process's median.
        median_s: the median of the per-process medians: the figure to report.
        spread: (max - min) / median of the per-process medians.
        sigma: population standard deviation / mean of the per-process medians.
        load_before: the 1-minute load average before the first process (``None`` where the OS has none).
        load_after: the same after the last.
        cpu: this machine's CPU model.
        cores: ``os.cpu_count()``.
        chipfit_version: the version that measured.
        when: the start, ISO 8601 with the time zone.
        warnings: what makes the figures doubtful (a busy machine, unstable medians).
        settings: how the runtime was configured (threads, execution mode; the runner and REGEX for remote).
    """

    runtime: str
    runtime_version: str | None
    model: str
    input_shape: tuple[int, ...] | None
    threads: int | None
    processes: int
    repeats: int | None
    warmup: int | None
    samples_s: list[list[float]]
    process_medians_s: list[float]
    median_s: float
    spread: float
    sigma: float
    load_before: float | None
    load_after: float | None
    cpu: str
    cores: int
    chipfit_version: str
    when: str
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-able (raw samples included)."""
        d = asdict(self)
        d["input_shape"] = list(self.input_shape) if self.input_shape is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Measurement:
        """The inverse of :meth:`to_dict`."""
        d = dict(d)
        if d.get("input_shape") is not None:
            d["input_shape"] = tuple(int(x) for x in d["input_shape"])
        d["samples_s"] = [[float(x) for x in s] for s in d["samples_s"]]
        d["process_medians_s"] = [float(x) for x in d["process_medians_s"]]
        d["warnings"] = list(d.get("warnings", []))
        d["settings"] = dict(d.get("settings", {}))
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @property
    def protocol(self) -> str:
        """The protocol in words: processes x repeats after warm-up, threads."""
        if self.runtime == "remote":
            n = sum(len(s) for s in self.samples_s)
            return f"{self.processes} run{'s' if self.processes != 1 else ''} of the runner ({n} samples in all)"
        return (f"{self.processes} process{'es' if self.processes != 1 else ''} x {self.repeats} timed runs after "
                f"{self.warmup} warm-up, "
                f"{self.threads} thread{'s' if self.threads != 1 else ''}")

    def estimate(self, target: str = "host", model: str | None = None, precision: str = "fp32") -> Estimate:
        """This measurement as the common latency record (source ``measured``; no energy, no layers).

        Args:
            target: what it ran on (``host``: this machine).
            model: the network's label; default the file's stem.
            precision: the precision the file runs at.
        """
        runtime = self.runtime if self.runtime_version is None else f"{self.runtime} {self.runtime_version}"
        notes = (f"measured with {runtime} on {self.cpu} ({self.cores} cores): {self.protocol}",
                 f"median of per-process medians; spread {self.spread:.1%}, sigma {self.sigma:.1%}",
                 "the runtime fuses layers as it chooses; energy is not measured", *self.warnings)
        return Estimate(source="measured", target=target, model=model or Path(self.model).stem, precision=precision,
                        fused=True, latency_s=self.median_s, energy_j=None, notes=notes,
                        extra={"spread": self.spread, "sigma": self.sigma, "runtime": self.runtime,
                               "runtime_version": self.runtime_version, "process_medians_s": self.process_medians_s,
                               "samples": sum(len(s) for s in self.samples_s)})


def _load() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chipfit")
    except PackageNotFoundError:
        return "unknown"


def _stats(medians: Sequence[float]) -> tuple[float, float, float]:
    """(median, spread, sigma) of the per-process medians."""
    med = statistics.median(medians)
    mean = statistics.fmean(medians)
    spread = (max(medians) - min(medians)) / med if med > 0 else 0.0
    sigma = statistics.pstdev(medians) / mean if mean > 0 else 0.0
    return med, spread, sigma


def _busy(load: float | None, cores: int, threads: int, own: float = 0.0) -> bool:
    """Whether other work left fewer free cores than the measurement's threads (half a core of slack)."""
    return load is not None and load - own > cores - threads + 0.5


def _check(model_path: Path, runtime: str, threads: int, processes: int, repeats: int, warmup: int,
           timeout_s: float) -> None:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    for name, value, low in (("threads", threads, 1), ("processes", processes, 1), ("repeats", repeats, 1),
                             ("warmup", warmup, 0)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s!r}")
    if runtime == "remote":
        return
    if not model_path.is_file():
        raise ValueError(f"{model_path}: no such file")
    if model_path.suffix.lower() not in SUFFIXES[runtime]:
        wants = {"ort": "an .onnx file", "openvino": "an .onnx or OpenVINO .xml file",
                 "torch": "a .pt2 file written by torch.export.save"}[runtime]
        raise ValueError(f"the {runtime} runtime runs {wants}, not {model_path.name}")
    if runtime == "openvino":
        try:
            import openvino  # noqa: F401
        except ImportError:
            raise ValueError(OPENVINO_MISSING) from None


def _worker(request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """One fresh process of :mod:`chipfit.deploy._measure_worker`; its answer, or a ValueError with its stderr."""
    threads = str(request["threads"])
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    # By path, not -m: the package's __init__ imports torch, which would load into an ORT or OpenVINO measurement.
    args = [sys.executable, "-P", str(WORKER), json.dumps(request)]
    where = f"the {request['runtime']} worker on {request['model']}"
    try:
        code, out, errs = run_process(args, timeout_s=timeout_s, env=env, merge=False)
    except TimeoutError:
        raise ValueError(f"{where} did not finish in {timeout_s:g} s (killed): lower repeats or raise the time-out") \
            from None
    if code != 0:
        lines = [x for x in errs.splitlines() if x.strip()][-STDERR_LINES:]
        said = "\n".join(f"  | {x}" for x in lines) or "  (no message)"
        raise ValueError(f"{where} failed (exit code {code}):\n{said}")
    lines = [x for x in out.splitlines() if x.startswith("{")]
    try:
        answer = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise ValueError(f"{where} printed no result line; its output ended: {out[-300:]!r}") from None
    return answer


def measure(model_path: str | Path, *, runtime: str = "ort", input_shape: Sequence[int] | None = None,
            threads: int = 1, processes: int = 3, repeats: int = 30, warmup: int = 5, runner: str | None = None,
            parse: str | None = None, unit: str = "ms", timeout_s: float = 300.0,
            progress: Callable[[int, int], None] | None = None) -> Measurement:
    """Measure a model file's latency by the protocol of the module docstring.

    Args:
        model_path: an ``.onnx`` file (``ort``, ``openvino``), an OpenVINO ``.xml`` (``openvino``), a ``.pt2`` of
            ``torch.export.save`` (``torch``), or whatever the runner takes (``remote``: passed as it is).
        runtime: ``ort``, ``openvino``, ``torch`` or ``remote``.
        input_shape: the input to feed, e.g. (1, 3, 32, 32); default the model's own static input shape.
        threads: intra-op threads of the runtime (and OMP/MKL threads of the process).
        processes: fresh processes, one series of runs each.
        repeats: timed runs per process.
        warmup: untimed runs before them.
        runner: ``remote``: the benchmark command, with ``{model}`` where the path goes.
        parse: ``remote``: a regular expression with one group around the number.
        unit: ``remote``: the numbers' unit (``us``, ``ms``, ``s``) where REGEX has no ``unit`` group.
        timeout_s: the most seconds one process may take; then it is killed.
        progress: called as ``progress(done, processes)`` before the first process and after each one.

    Raises:
        ValueError: a bad option, a missing file or one of the wrong kind for the runtime, OpenVINO not installed,
            a worker or runner that fails (its last output lines in the message).
    """
    path = Path(model_path)
    _check(path, runtime, threads, processes, repeats, warmup, timeout_s)
    shape = tuple(int(d) for d in input_shape) if input_shape is not None else None
    if shape is not None and (not shape or any(d <= 0 for d in shape)):
        raise ValueError(f"input_shape must be positive integers such as (1, 3, 32, 32), got {input_shape!r}")
    remote = runtime == "remote"
    if remote:
        if not runner or not parse:
            raise ValueError("the remote runtime needs a runner command with {model} (--runner) and a REGEX with "
                             "one group around the number (--parse)")
        runner_args(runner, path)
        compile_parse(parse)
        unit_scale(unit)
    elif runner is not None or parse is not None:
        raise ValueError("a runner and a REGEX (--runner, --parse) are for the remote runtime (--runtime remote)")
    cores = os.cpu_count() or 1
    when = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    load_before = _load()
    started = time.monotonic()
    samples: list[list[float]] = []
    version: str | None = None
    settings: dict[str, Any] = {}
    if progress:
        progress(0, processes)
    for i in range(processes):
        if remote:
            samples.append(run_remote(runner, path, parse, unit=unit, timeout_s=timeout_s))  # type: ignore[arg-type]
        else:
            answer = _worker({"runtime": runtime, "model": str(path), "input_shape": list(shape) if shape else None,
                              "threads": threads, "warmup": warmup, "repeats": repeats, "seed": 0}, timeout_s)
            samples.append([float(x) for x in answer["samples_s"]])
            shape = tuple(answer["input_shape"])
            version, settings = answer["runtime_version"], answer["settings"]
        if progress:
            progress(i + 1, processes)
    elapsed = time.monotonic() - started
    load_after = _load()
    if remote:
        settings = {"runner": runner, "parse": parse, "unit": unit,
                    "shell": runner_args(runner, path)[1]}  # type: ignore[arg-type]
    medians = [statistics.median(s) for s in samples]
    med, spread, sigma = _stats(medians)
    warns = []
    used = 1 if remote else threads
    # The 1-minute load average after the run holds the run's own threads, decayed in: take them out.
    own = used * (1 - math.exp(-elapsed / 60.0))
    for label, load, mine in (("before", load_before, 0.0), ("after", load_after, own)):
        if _busy(load, cores, used, mine):
            where = " (this matters if the runner runs on this machine)" if remote else ""
            warns.append(f"machine busy: load {load:.2f} on {cores} cores {label} the measurement; figures may be "
                         f"inflated{where}")
    if not remote and threads > cores:
        warns.append(f"{threads} threads on {cores} cores: threads wait for each other; figures are inflated")
    if len(medians) > 1 and spread > UNSTABLE_SPREAD:
        warns.append(f"per-process medians differ by {spread:.0%} of the median: this machine's latency is not "
                     "stable; rerun on a quieter machine or with more processes")
    return Measurement(runtime=runtime, runtime_version=version, model=str(model_path),
                       input_shape=shape, threads=None if remote else threads, processes=processes,
                       repeats=None if remote else repeats, warmup=None if remote else warmup, samples_s=samples,
                       process_medians_s=medians, median_s=med, spread=spread, sigma=sigma, load_before=load_before,
                       load_after=load_after, cpu=cpu_name(), cores=cores, chipfit_version=_version(), when=when,
                       warnings=warns, settings=settings)
