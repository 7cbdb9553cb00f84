"""Seeded fuzzing of chipfit's parsers: mutators, a runner that classifies every outcome, and one target per parser.

A parser given a mutated file must either parse it or refuse it with its own exception type (a ``ValueError``) whose
message is one line, names the file and stays short. Anything else is a failure: another exception, a message that
breaks those rules, or a call that takes longer than ``CALL_LIMIT_S`` (a hang, caught by ``SIGALRM``). Case ``i`` of a
run with seed ``s`` mutates with ``random.Random(s * 100_000 + i)``, so a failure is replayed by its case number::

    .venv/bin/python -m tests._fuzz onnx --case 1234      # one case, with its traceback
    .venv/bin/python -m tests._fuzz onnx --mutations 2000  # a whole run, as JSON

Tests run each target in a subprocess (:func:`run_in_subprocess`): a crash of native code (protobuf, ONNX, torch)
or a hang outside Python then shows up as a failed run, and the test's timeout bounds everything.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CALL_LIMIT_S = 5.0  # one call past this is a hang (the calls take milliseconds)
MESSAGE_LIMIT = 400  # characters of a refusal's message, not counting the file's path

# --- mutators ---------------------------------------------------------------------------------------------------

INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)
INTERESTING_U32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF)
NUMBER_SWAPS = ("0", "-1", "-0", "1", "99999999999999999999999", "1e400", "1" + "0" * 400, "nan", "NaN", "inf",
                "-inf", "", " ", "abc", "0x10", "1_000", "1.5", "2.", "-2.5e-3", "١٢", "²", "Ⅻ", "½", "null",
                "true", "[]", "{}", "\x00", "é", "𝟙")
TEXT_JUNK = (",", ":", "=", "[", "]", "{", "}", "#", "%", "%(x)s", "\t", "\\", '"', "'", "\x00", "\x1b[1m", "\r",
             "\u2028", "\ufeff", "é", "☃", "𝟙", "&a", "*a", "!!python/object:os.system", "? ", "- ", "~", "|", ">")
_NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def _span(rng: random.Random, n: int, most: int = 64) -> tuple[int, int]:
    a = rng.randrange(n + 1)
    return a, min(n, a + rng.randint(1, most))


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One byte-level mutation: bit flips, interesting bytes or 32-bit words, truncation, insertion, deletion or
    duplication of a chunk."""
    b = bytearray(data)
    op = rng.choice(("flip", "flip", "byte", "u32", "truncate", "insert", "delete", "duplicate"))
    if not b or op == "insert":
        at = rng.randrange(len(b) + 1)
        b[at:at] = rng.randbytes(rng.randint(1, 32))
        return bytes(b), f"insert@{at}"
    if op == "flip":
        spots = [rng.randrange(len(b)) for _ in range(rng.randint(1, 8))]
        for at in spots:
            b[at] ^= 1 << rng.randrange(8)
        return bytes(b), f"flip@{spots[0]}x{len(spots)}"
    if op == "byte":
        at = rng.randrange(len(b))
        b[at] = rng.choice(INTERESTING_BYTES)
        return bytes(b), f"byte@{at}"
    if op == "u32" and len(b) >= 4:
        at = rng.randrange(len(b) - 3)
        b[at:at + 4] = rng.choice(INTERESTING_U32).to_bytes(4, rng.choice(("big", "little")))
        return bytes(b), f"u32@{at}"
    if op == "truncate":
        at = rng.randrange(len(b))
        return bytes(b[:at]), f"truncate@{at}"
    if op == "delete":
        a, z = _span(rng, len(b))
        del b[a:z]
        return bytes(b), f"delete@{a}:{z}"
    a, z = _span(rng, len(b))
    at = rng.randrange(len(b) + 1)
    b[at:at] = b[a:z]
    return bytes(b), f"duplicate@{a}:{z}->{at}"


def mutate_text(text: str, rng: random.Random) -> tuple[str, str]:
    """One line- or field-level mutation: delete, duplicate, swap or cut lines; replace a number by 0, -1, huge,
    NaN, inf, empty, text or unicode; delete, duplicate or swap fields; insert odd characters."""
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    op = rng.choice(("number", "number", "number", "delete_line", "duplicate_line", "swap_lines", "cut_line",
                     "field", "junk", "indent", "case"))
    if op == "number":
        hits = list(_NUMBER.finditer(text))
        if hits:
            m = rng.choice(hits)
            new = rng.choice(NUMBER_SWAPS)
            return text[:m.start()] + new + text[m.end():], f"number {m.group()[:12]!r}->{new[:12]!r}"
        op = "junk"
    if op == "delete_line":
        del lines[i]
    elif op == "duplicate_line":
        lines.insert(rng.randrange(len(lines) + 1), lines[i])
    elif op == "swap_lines":
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "cut_line":
        lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)]
    elif op == "field":
        sep = rng.choice((",", ":", "="))
        parts = lines[i].split(sep)
        j = rng.randrange(len(parts))
        what = rng.choice(("delete", "duplicate", "swap", "empty"))
        if what == "delete" and len(parts) > 1:
            del parts[j]
        elif what == "duplicate":
            parts.insert(j, parts[j])
        elif what == "swap":
            k = rng.randrange(len(parts))
            parts[j], parts[k] = parts[k], parts[j]
        else:
            parts[j] = ""
        lines[i] = sep.join(parts)
        op = f"field {what} {sep!r}"
    elif op == "junk":
        at = rng.randrange(len(lines[i]) + 1)
        junk = rng.choice(TEXT_JUNK)
        lines[i] = lines[i][:at] + junk + lines[i][at:]
        op = f"junk {junk!r}"
    elif op == "indent":
        lines[i] = (" " * rng.choice((1, 2, 4)) + lines[i]) if rng.random() < 0.5 else lines[i].lstrip()
    else:
        lines[i] = lines[i].swapcase()
    return "\n".join(lines), f"{op} (line {i + 1})"


def mutate_text_file(text: str, rng: random.Random, rounds: int = 3) -> tuple[bytes, str]:
    """1-``rounds`` text mutations, then now and again a byte mutation of the encoded text (invalid UTF-8 too)."""
    done = []
    for _ in range(rng.randint(1, rounds)):
        text, what = mutate_text(text, rng)
        done.append(what)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.15:
        data, what = mutate_bytes(data, rng)
        done.append(what)
    return data, "; ".join(done)


def mutate_binary_file(data: bytes, rng: random.Random, rounds: int = 3) -> tuple[bytes, str]:
    done = []
    for _ in range(rng.randint(1, rounds)):
        data, what = mutate_bytes(data, rng)
        done.append(what)
    return data, "; ".join(done)


# --- the runner -------------------------------------------------------------------------------------------------


@dataclass
class Target:
    """One parser under fuzzing.

    Attributes:
        name: the target's name (``idx``, ``onnx``, ...).
        refuses_with: the exception type a refusal must have.
        make: writes the mutant of one case (given its random generator) and returns (the path to parse, what was
            mutated).
        parse: the parser, called on that path.
    """

    name: str
    refuses_with: type[Exception]
    make: Callable[[random.Random], tuple[Path, str]]
    parse: Callable[[Path], object]
    message_limit: int = MESSAGE_LIMIT


@dataclass
class Report:
    name: str
    mutations: int = 0
    parsed: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    slowest_case: str = ""

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


class _Hang(BaseException):
    """Raised by SIGALRM in a call that ran past its limit (a BaseException, so no parser's handler catches it)."""


def _on_alarm(signum, frame):
    raise _Hang


def message_problem(e: BaseException, path: Path, limit: int = MESSAGE_LIMIT) -> str | None:
    """Why a refusal's message breaks the rules (one line, names the file, short), or ``None``."""
    msg = str(e)
    if not msg.strip():
        return "empty message"
    if "\n" in msg or "\r" in msg:
        return "message of several lines"
    if "\x1b" in msg:
        return "terminal escape codes in the message"
    if path.name not in msg:
        return "message does not name the file"
    if len(msg.replace(str(path), "")) > limit:
        return f"message of {len(msg)} characters"
    return None


def case_seed(seed: int, i: int) -> int:
    return seed * 100_000 + i


def run_case(target: Target, cs: int) -> tuple[str, str, float]:
    """(outcome, detail, seconds) of one case: outcome ``parsed``, ``refused:<Type>``, ``failed`` or ``hang``."""
    rng = random.Random(cs)
    path, what = target.make(rng)
    old = signal.signal(signal.SIGALRM, _on_alarm)
    t0 = time.perf_counter()
    try:
        signal.setitimer(signal.ITIMER_REAL, CALL_LIMIT_S)
        try:
            target.parse(path)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        return "parsed", what, time.perf_counter() - t0
    except _Hang:
        return "hang", f"case {cs} ({what}): no answer after {CALL_LIMIT_S:g} s", time.perf_counter() - t0
    except Exception as e:  # the classification itself: anything but the allowed refusal is a failure
        dt = time.perf_counter() - t0
        if isinstance(e, target.refuses_with):
            problem = message_problem(e, path, target.message_limit)
            if problem is None:
                return f"refused:{type(e).__name__}", what, dt
            return "failed", f"case {cs} ({what}): {problem}: {str(e)[:300]!r}", dt
        last = traceback.format_exception(e)[-1].strip()
        return "failed", f"case {cs} ({what}): {last[:300]}", dt
    finally:
        signal.signal(signal.SIGALRM, old)


def run_target(target: Target, mutations: int, seed: int = 0) -> Report:
    """Fuzz ``target`` with ``mutations`` seeded cases."""
    rep = Report(target.name)
    refused: Counter[str] = Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(mutations):
            cs = case_seed(seed, i)
            outcome, detail, dt = run_case(target, cs)
            rep.mutations += 1
            if dt > rep.slowest_s:
                rep.slowest_s, rep.slowest_case = dt, f"case {cs}"
            if outcome == "parsed":
                rep.parsed += 1
            elif outcome.startswith("refused:"):
                refused[outcome.split(":", 1)[1]] += 1
            elif outcome == "hang":
                rep.hangs.append(detail)
            else:
                rep.failures.append(detail)
    rep.refused = dict(refused.most_common())
    return rep


# --- targets ----------------------------------------------------------------------------------------------------


def idx_target(work: Path) -> Target:
    """``read_idx`` on raw and gzip files (byte mutations of the payload, then of the gzip stream), and
    ``load_fashion_mnist`` on a folder with one mutated file (its caller, with the shape checks it adds)."""
    import numpy as np

    from chipfit.data import load_fashion_mnist, read_idx, write_idx
    from chipfit.data.datasets import FASHION_FILES
    from chipfit.data.idx import IdxError

    rng0 = np.random.default_rng(0)
    good = work / "good"
    good.mkdir(parents=True, exist_ok=True)
    n = 12
    arrays = {"train_images": rng0.integers(0, 256, (n, 28, 28), dtype=np.uint8),
              "train_labels": (np.arange(n) % 10).astype(np.uint8),
              "test_images": rng0.integers(0, 256, (4, 28, 28), dtype=np.uint8),
              "test_labels": (np.arange(4) % 10).astype(np.uint8)}
    payloads = {}
    for k, f in FASHION_FILES.items():
        p = write_idx(good / f, arrays[k])
        payloads[k] = gzip.decompress(p.read_bytes())
    extra = {"float": write_idx(work / "f.idx", np.linspace(-1, 1, 24, dtype=">f4").reshape(2, 3, 4)).read_bytes(),
             "short": write_idx(work / "s.idx", np.arange(10, dtype=">i2")).read_bytes()}
    roots = {}
    for k in FASHION_FILES:  # one folder per file that gets mutated, the other three good
        root = work / f"fm_{k}"
        root.mkdir(exist_ok=True)
        for other, f in FASHION_FILES.items():
            if other != k:
                (root / f).write_bytes((good / f).read_bytes())
        roots[k] = root
    ndim: dict[Path, int | None] = {}

    def make(rng: random.Random) -> tuple[Path, str]:
        mode = rng.choice(("raw", "raw", "gz-payload", "gz-stream", "fashion"))
        key = rng.choice(list(FASHION_FILES))
        data = payloads[key] if mode != "raw" or rng.random() < 0.8 else rng.choice(list(extra.values()))
        if mode == "gz-stream":
            new, what = mutate_binary_file(gzip.compress(data, mtime=0), rng)
        else:
            new, what = mutate_binary_file(data, rng)
        if mode == "fashion":
            root = roots[key]
            (root / FASHION_FILES[key]).write_bytes(gzip.compress(new, mtime=0))
            ndim[root] = None
            return root, f"fashion {key}: {what}"
        path = work / ("case.idx.gz" if mode.startswith("gz") else "case.idx")
        path.write_bytes(gzip.compress(new, mtime=0) if mode == "gz-payload" else new)
        ndim[path] = rng.choice((None, 1, 3))
        return path, f"{mode} {key}: {what}"

    def parse(path: Path) -> object:
        if path.is_dir():
            return load_fashion_mnist(val_fraction=0.25, root=path)
        return read_idx(path, expect_ndim=ndim[path])

    return Target("idx", IdxError, make, parse)


TOPOLOGIES = {
    "conv": "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
            "Conv1, 224, 224, 7, 7, 3, 64, 2,\nConv2_DP, 56, 56, 3, 3, 64, 1, 1,\nConv3, 56, 56, 1, 1, 64, 128, 1,\n"
            "FC, 1, 1, 1, 1, 2048, 1000, 1,\n",
    "sparse": "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides, "
              "Sparsity,\nc1, 32, 32, 3, 3, 16, 32, 1, 2:4,\nc2, 16, 16, 3, 3, 32, 32, 2, 1:4,\n"
              "c3, 8, 8, 1, 1, 32, 10, 1, 4:4,\n",
    "gemm": "Layer, M, N, K,\nqkv, 196, 384, 128,\nproj, 196, 128, 128,\nmlp, 196, 512, 128,\n",
}


def topology_target(work: Path) -> Target:
    from chipfit.hw.sim.topology import read_topology

    work.mkdir(parents=True, exist_ok=True)

    def make(rng: random.Random) -> tuple[Path, str]:
        name = rng.choice(list(TOPOLOGIES))
        data, what = mutate_text_file(TOPOLOGIES[name], rng)
        path = work / "topology.csv"
        path.write_bytes(data)
        return path, f"{name}: {what}"

    return Target("topology", ValueError, make, read_topology)


CFGS = {
    "user": "[general]\nrun_name = t\n\n[run_presets]\nInterfaceBandwidth: USER\nUseRamulatorTrace: False\n\n"
            "[architecture_presets]\nArrayHeight: 32\nArrayWidth: 16\nIfmapSramSzkB: 64\nFilterSramSzkB: 64\n"
            "OfmapSramSzkB: 32\nIfmapOffset: 0\nFilterOffset: 10000000\nOfmapOffset: 20000000\nDataflow: ws\n"
            "Bandwidth: 10\nReadRequestBuffer: 32\nWriteRequestBuffer: 32\n\n[sparsity]\nSparsitySupport: true\n",
    "calc": "[general]\nrun_name = google\n\n[architecture_presets]\nArrayHeight:    128\nArrayWidth:     128\n"
            "IfmapSramSzkB:    6144\nFilterSramSzkB:   6144\nOfmapSramSzkB:    2048\nIfmapOffset:    0\n"
            "FilterOffset:   10000000\nOfmapOffset:    20000000\nDataflow : os\nBandwidth : 10,20\n\n[run_presets]\n"
            "InterfaceBandwidth: CALC\n",
}


def cfg_target(work: Path) -> Target:
    """``parse_scalesim_cfg`` and ``load_chip`` (the chip derived from the config), on alternate cases."""
    from chipfit.hw import load_chip
    from chipfit.hw.array import parse_scalesim_cfg

    work.mkdir(parents=True, exist_ok=True)

    def make(rng: random.Random) -> tuple[Path, str]:
        name = rng.choice(list(CFGS))
        text = CFGS[name]
        if rng.random() < 0.2:  # USER mode with an odd Bandwidth: the known bugs' neighbourhood
            text = CFGS["user"].replace("Bandwidth: 10", f"Bandwidth: {rng.choice(NUMBER_SWAPS)}")
        data, what = mutate_text_file(text, rng)
        path = work / (f"{name}.cfg" if rng.random() < 0.5 else f"{name}-chip.cfg")
        path.write_bytes(data)
        return path, f"{name}: {what}"

    def parse(path: Path) -> object:
        return load_chip(path) if path.stem.endswith("-chip") else parse_scalesim_cfg(path)

    return Target("cfg", ValueError, make, parse)


CHIPS = ("tpu-v1", "eyeriss-v1", "jetson-tx2", "edge-npu")


def chip_target(work: Path) -> Target:
    """``load_chip`` on mutated built-in profiles (with and without an ``array:`` section), as text and as YAML
    structures (values replaced by other types, keys dropped or misspelt)."""
    import yaml

    from chipfit.hw import load_chip
    from chipfit.hw.chip import BUILTIN_DIR

    work.mkdir(parents=True, exist_ok=True)
    texts = {c: (BUILTIN_DIR / f"{c}.yaml").read_text() for c in CHIPS if (BUILTIN_DIR / f"{c}.yaml").is_file()}
    trees = {c: yaml.safe_load(t) for c, t in texts.items()}
    odd_values = (None, 0, -1, 1.5, 10**400 // 10**100, float("nan"), float("inf"), "", "text", "1e12", True, [],
                  [1, 2], {}, {"value": 1}, {"value": None, "source": "x"}, {"value": "ws", "source": "x"},
                  {"value": [], "source": "x"}, {"value": 10**30, "source": "x"}, {"value": -5, "source": ""})

    def structural(tree: dict, rng: random.Random) -> tuple[dict, str]:
        tree = copy.deepcopy(tree)
        node, trail = tree, []
        while isinstance(node, dict) and node and rng.random() < 0.7:
            key = rng.choice(list(node))
            if not isinstance(node[key], dict):
                break
            node, trail = node[key], [*trail, str(key)]
        if not isinstance(node, dict) or not node:
            return tree, "unchanged"
        key = rng.choice(list(node))
        what = rng.choice(("value", "value", "drop", "rename", "add"))
        where = ".".join([*trail, str(key)])
        if what == "value":
            node[key] = rng.choice(odd_values)
            return tree, f"{where} = {node[key]!r}"[:80]
        if what == "drop":
            del node[key]
            return tree, f"drop {where}"
        if what == "rename":
            node[str(key)[:-1] + "x"] = node.pop(key)
            return tree, f"rename {where}"
        node[rng.choice(("extra", 3, "value", "source", "rows"))] = rng.choice(odd_values)
        return tree, f"add under {'.'.join(trail) or 'top'}"

    def make(rng: random.Random) -> tuple[Path, str]:
        chip = rng.choice(list(texts))
        if rng.random() < 0.35:
            tree, what = structural(trees[chip], rng)
            data = yaml.safe_dump(tree, allow_unicode=True).encode()
        else:
            data, what = mutate_text_file(texts[chip], rng)
        path = work / f"{chip}.yaml"
        path.write_bytes(data)
        return path, f"{chip}: {what}"

    return Target("chip", ValueError, make, load_chip)


def _tiny_onnx_models(work: Path) -> dict[str, bytes]:
    """Small exported networks (the legacy exporter): a conv net, and one with a Reshape read from shapes."""
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(4 * 4 * 4, 5)

        def forward(self, x):
            x = self.pool(torch.relu(self.bn(self.conv(x))))
            return torch.softmax(self.fc(x.reshape(x.shape[0], -1)), dim=1)

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(2, 2, 3, padding=1, groups=2)
            self.b = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            y = self.b(torch.sigmoid(self.a(x))) + x
            return nn.functional.interpolate(y, scale_factor=2.0).mean(dim=(2, 3))

    out = {}
    torch.manual_seed(0)  # the same weights, so the same bytes, on every run
    for name, net, shape in (("convnet", Net(), (1, 3, 8, 8)), ("residual", Res(), (1, 2, 6, 6))):
        path = work / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net.eval(), (torch.zeros(shape),), str(path), dynamo=False, opset_version=17)
        out[name] = path.read_bytes()
    return out


def _mutate_onnx_model(model, rng: random.Random) -> str:
    """One structural mutation of an ``onnx.ModelProto`` in place: wrong, zero or negative dims, missing or
    truncated initializers, bad or missing attributes, unknown ops, broken wiring, odd types or opsets."""
    from onnx import AttributeProto

    g = model.graph
    op = rng.choice(("input_dim", "input_dim", "init_dims", "drop_init", "raw_data", "attr", "attr", "drop_attr",
                     "op_type", "op_type", "node_input", "drop_node", "swap_nodes", "elem_type", "opset", "output",
                     "duplicate_output", "init_type"))
    odd = rng.choice((0, -1, -7, 1, 2, 3, 5, 1000, 2**31 - 1, 2**40))
    if op == "input_dim" and g.input:
        vi = rng.choice(list(g.input))
        dims = vi.type.tensor_type.shape.dim
        if dims:
            d = rng.choice(list(dims))
            if rng.random() < 0.2:
                d.Clear()
                d.dim_param = "batch"
                return f"input {vi.name} dim symbolic"
            d.dim_value = odd
            return f"input {vi.name} dim = {odd}"
    if op in ("init_dims", "drop_init", "raw_data", "init_type") and g.initializer:
        init = rng.choice(list(g.initializer))
        if op == "init_dims" and init.dims:
            i = rng.randrange(len(init.dims))
            init.dims[i] = odd
            return f"initializer {init.name} dims[{i}] = {odd}"
        if op == "drop_init":
            g.initializer.remove(init)
            return f"drop initializer {init.name}"
        if op == "init_type":
            init.data_type = rng.choice((0, 2, 6, 7, 8, 9, 10, 11, 16, 99))
            return f"initializer {init.name} type {init.data_type}"
        if init.raw_data:
            init.raw_data = init.raw_data[:rng.randrange(len(init.raw_data))]
            return f"initializer {init.name} raw data truncated"
    nodes = list(g.node)
    if not nodes:
        return "no nodes"
    node = rng.choice(nodes)
    if op == "attr" and node.attribute:
        a = rng.choice(list(node.attribute))
        if a.type == AttributeProto.INTS and a.ints:
            i = rng.randrange(len(a.ints))
            a.ints[i] = odd
            if rng.random() < 0.3:
                a.ints.append(odd)
            return f"{node.op_type} {a.name}[{i}] = {odd}"
        if a.type == AttributeProto.INT:
            a.i = odd
            return f"{node.op_type} {a.name} = {odd}"
        if a.type == AttributeProto.FLOAT:
            a.f = rng.choice((float("nan"), float("inf"), -1.0, 0.0))
            return f"{node.op_type} {a.name} = {a.f}"
        a.type = AttributeProto.STRING
        a.s = b"junk"
        return f"{node.op_type} {a.name} becomes a string"
    if op == "attr":
        node.attribute.add(name=rng.choice(("group", "strides", "axis", "bogus")), type=AttributeProto.INT, i=odd)
        return f"{node.op_type} gets an attribute = {odd}"
    if op == "drop_attr" and node.attribute:
        a = rng.choice(list(node.attribute))
        node.attribute.remove(a)
        return f"{node.op_type} loses {a.name}"
    if op == "op_type":
        new = rng.choice(("NoSuchOp", "Conv", "Gemm", "MatMul", "Relu", "Add", "Reshape", "MaxPool", "Softmax",
                          "Resize", "Transpose", "Concat", "GlobalMaxPool", "ConvTranspose", "Einsum"))
        old, node.op_type = node.op_type, new
        return f"{old} -> {new}"
    if op == "node_input" and node.input:
        i = rng.randrange(len(node.input))
        choices = [t for n in nodes for t in n.output] + [i.name for i in g.input] + ["missing", ""]
        node.input[i] = rng.choice(choices)
        return f"{node.op_type} input {i} = {node.input[i]!r}"
    if op == "drop_node":
        g.node.remove(node)
        return f"drop {node.op_type}"
    if op == "swap_nodes" and len(nodes) > 1:
        i, j = rng.sample(range(len(nodes)), 2)
        a, b = copy.deepcopy(g.node[i]), copy.deepcopy(g.node[j])
        g.node[i].CopyFrom(b)
        g.node[j].CopyFrom(a)
        return f"swap nodes {i} {j}"
    if op == "elem_type" and g.input:
        g.input[0].type.tensor_type.elem_type = rng.choice((0, 2, 6, 7, 8, 9, 10, 11, 16, 99))
        return f"input type {g.input[0].type.tensor_type.elem_type}"
    if op == "opset":
        model.opset_import[0].version = rng.choice((0, 1, 7, 11, 13, 19, 22, 99))
        return f"opset {model.opset_import[0].version}"
    if op == "output" and g.output:
        g.output[0].name = rng.choice(["nothing"] + [t for n in nodes for t in n.output])
        return f"output = {g.output[0].name}"
    if op == "duplicate_output" and node.output:
        other = rng.choice(nodes)
        if other.output:
            other.output[0] = node.output[0]
            return f"{other.op_type} writes {node.output[0]!r} too"
    return "unchanged"


def onnx_target(work: Path) -> Target:
    """``capture_onnx`` on exported models mutated as bytes and as ``ModelProto`` structures."""
    import onnx

    from chipfit.cost._capture_onnx import OnnxError, capture_onnx

    work.mkdir(parents=True, exist_ok=True)
    seeds = _tiny_onnx_models(work)
    protos = {k: onnx.load_from_string(v) for k, v in seeds.items()}
    shapes: dict[Path, tuple[int, ...] | None] = {}

    def make(rng: random.Random) -> tuple[Path, str]:
        name = rng.choice(list(seeds))
        path = work / "case.onnx"
        if rng.random() < 0.6:
            m = onnx.ModelProto()
            m.CopyFrom(protos[name])
            done = [_mutate_onnx_model(m, rng) for _ in range(rng.randint(1, 2))]
            data = m.SerializeToString()
            if rng.random() < 0.1:
                data, what = mutate_bytes(data, rng)
                done.append(what)
            what = "; ".join(done)
        else:
            data, what = mutate_binary_file(seeds[name], rng)
        path.write_bytes(data)
        shapes[path] = None
        if rng.random() < 0.15:
            shapes[path] = tuple(rng.choice((0, 1, 2, 3, 6, 8, -1)) for _ in range(rng.choice((3, 4, 4, 4))))
            what += f"; input_shape {shapes[path]}"
        return path, f"{name}: {what}"

    def parse(path: Path) -> object:
        return capture_onnx(path, input_shape=shapes[path])

    return Target("onnx", OnnxError, make, parse)


def _tiny_checkpoint_state() -> dict:
    import torch

    from chipfit.models import ModelConfig, build_model
    from chipfit.models.config import BlockConfig, StageConfig
    from chipfit.train.checkpoint import model_spec

    cfg = ModelConfig("metaformer", (StageConfig(1, 8, BlockConfig("quadra", kernel_size=3), stride=1),),
                      num_classes=3, in_chans=1, input_size=8, stem_kernel=2, stem_stride=2, name="tiny")
    torch.manual_seed(0)
    model = build_model(cfg)
    return {"model": model.state_dict(), "model_spec": model_spec(model, None), "epoch": 2, "step": 10,
            "norm": json.dumps({"mean": [0.3], "std": [0.3]}), "rng": {"torch": torch.get_rng_state()}}


def _tiny_compressed_state(work: Path) -> dict:
    """A compressed checkpoint of the tiny network: channel-pruned by half, BatchNorm folded, int8 per channel."""
    import torch

    from chipfit.compress import CompressConfig, PruneConfig, QuantConfig, compress
    from chipfit.data import DataBundle, Split
    from chipfit.load import load_model
    from chipfit.train.checkpoint import save_checkpoint

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (48, 1, 8, 8), generator=g, dtype=torch.uint8)
    y = torch.arange(48) % 3
    data = DataBundle("toy", ["a", "b", "c"], Split(x[:32], y[:32]), Split(x[32:], y[32:]), Split(x[32:], y[32:]),
                      [0.5], [0.3])
    base = work / "base.pt"
    save_checkpoint(base, _tiny_checkpoint_state())
    cfg = CompressConfig(quant=QuantConfig.from_name("int8", per_channel=True), prune=PruneConfig(0.5, structured=True),
                         calib_images=16, batch_size=16, finetune_epochs=0, max_steps_per_epoch=1)
    out = work / "compressed"
    compress(load_model(base).module, cfg, data, out=out, progress=False)
    return torch.load(out / "compressed.pt", weights_only=True)


def _mutate_compressed(state: dict, rng: random.Random) -> tuple[object, str]:
    """A compressed checkpoint's own parts: its pruning plan and its compression config."""
    state = dict(state)
    if rng.random() < 0.5:
        return _mutate_state(state, rng)
    plan = json.loads(state["prune_plan"])
    what = rng.choice(("input_shape", "keep", "keep_index", "version", "text", "config"))
    if what == "input_shape":
        plan["input_shape"] = rng.choice(([1, 1, 10**5, 10**5], [1, 1, 10**9, 10**9], [1, -1, 8, 8], [0], [], "x",
                                          [1, 1, 8], [1, 3, 8, 8], [1, 1, 2.5, 8], None))
    elif what == "keep":
        key = rng.choice(list(plan["keep"]))
        plan["keep"][key] = rng.choice(([], [0], list(range(100)), "x", None, [0, 0, 0, 0], [-1, 1, 2, 3]))
    elif what == "keep_index":
        key = rng.choice(list(plan["keep"]))
        plan["keep"]["bogus" + key] = plan["keep"].pop(key)
    elif what == "version":
        plan["version"] = rng.choice((1, 3, None, "2"))
    elif what == "text":
        state["prune_plan"] = rng.choice(("", "{", "[]", "7", "null", None, 3))
        return state, f"prune_plan = {state['prune_plan']!r}"
    else:
        cfg = json.loads(state["compress_config"])
        key = rng.choice(list(cfg))
        cfg[key] = rng.choice((None, 0, -1, "text", 10**9, {}, [], True))
        state["compress_config"] = json.dumps(cfg)
        return state, f"compress_config {key} = {cfg[key]!r}"
    state["prune_plan"] = json.dumps(plan)
    return state, f"prune_plan {what}"


def _mutate_state(state: dict, rng: random.Random) -> tuple[object, str]:
    """One structural mutation of a checkpoint's contents: the spec (not JSON, unknown model, wrong config), the
    weights (missing, extra, wrong shape, not tensors) or the whole record."""
    import torch

    state = dict(state)
    op = rng.choice(("spec_text", "spec_name", "config", "config", "config_key", "weight_shape", "weight_drop",
                     "weight_extra", "weight_type", "model_type", "drop_key", "not_dict", "compress"))
    odd = rng.choice((0, -1, 1, 3, 2.5, 10**6, 10**12, "text", None, [], {}, True, float("nan")))
    if op == "spec_text":
        state["model_spec"] = rng.choice(("", "{", "not json", "[]", "null", "3", '"x"', "{}", b"bytes", 7, None,
                                          '{"name": 3}', '{"config": 5}', '{"config": [1]}', "\x1b[1mbold"))
        return state, f"model_spec = {state['model_spec']!r}"
    spec = json.loads(state["model_spec"])
    if op == "spec_name":
        spec["config"] = None
        spec["name"] = rng.choice(("no_such_model", "quadranet_s28x", "", 3, ["x"]))
        state["model_spec"] = json.dumps(spec)
        return state, f"model_spec name = {spec['name']!r}"
    if op in ("config", "config_key"):
        cfg = spec["config"]
        node = cfg
        if rng.random() < 0.5:
            node = rng.choice(cfg["stages"])
            if rng.random() < 0.5:
                node = node["block"]
        key = rng.choice(list(node))
        if op == "config_key":
            if rng.random() < 0.5:
                del node[key]
                what = f"config drops {key}"
            else:
                node["bogus_" + key] = node[key]
                what = f"config adds bogus_{key}"
        else:
            node[key] = odd
            what = f"config {key} = {odd!r}"
        state["model_spec"] = json.dumps(spec)
        return state, what
    weights = dict(state["model"])
    key = rng.choice(list(weights))
    if op == "weight_shape":
        t = weights[key]
        weights[key] = torch.zeros(*[s + rng.choice((1, -1 if s > 1 else 1)) for s in t.shape]) if t.ndim else \
            torch.zeros(2)
        what = f"weight {key} reshaped to {tuple(weights[key].shape)}"
    elif op == "weight_drop":
        del weights[key]
        what = f"drop weight {key}"
    elif op == "weight_extra":
        weights["bogus." + key] = weights[key]
        what = f"extra weight bogus.{key}"
    elif op == "weight_type":
        weights[key] = rng.choice((3, "text", None, [1.0], torch.zeros(3, dtype=torch.int64)))
        what = f"weight {key} = {type(weights[key]).__name__}"
    elif op == "model_type":
        state["model"] = rng.choice(([], "text", torch.zeros(3), None, {1: torch.zeros(1)}))
        return state, f"model = {type(state['model']).__name__}"
    elif op == "drop_key":
        key = rng.choice(("model", "model_spec"))
        del state[key]
        return state, f"drop {key}"
    elif op == "not_dict":
        return rng.choice(([], (1, 2), torch.zeros(2), "text", 3, None)), "the record is not a dict"
    else:
        state["compress_config"] = rng.choice(("", "{", "{}", '{"bogus": 1}', "null", 5))
        return state, f"compress_config = {state['compress_config']!r}"
    state["model"] = weights
    return state, what


def checkpoint_target(work: Path) -> Target:
    """``load_model`` on a mutated training checkpoint, or (one case in ten) a compressed one: contents mutated and
    saved, bytes mutated, or both; ``load_checkpoint`` alone on one case in five."""
    import torch

    from chipfit.load import load_model
    from chipfit.train.checkpoint import CheckpointError, load_checkpoint

    torch.set_num_threads(1)
    work.mkdir(parents=True, exist_ok=True)
    plain = _tiny_checkpoint_state()
    compressed = _tiny_compressed_state(work)
    seeds = {}
    for name, st in (("training", plain), ("compressed", compressed)):
        buf = io.BytesIO()
        torch.save(st, buf)
        seeds[name] = buf.getvalue()
    direct: set[Path] = set()

    def make(rng: random.Random) -> tuple[Path, str]:
        kind = "compressed" if rng.random() < 0.1 else "training"  # a compressed one takes 5x longer to rebuild
        done = [kind]
        if rng.random() < 0.5:
            mutate = _mutate_compressed if kind == "compressed" else _mutate_state
            st, what = mutate(compressed if kind == "compressed" else plain, rng)
            done.append(what)
            b = io.BytesIO()
            torch.save(st, b)
            data = b.getvalue()
            if rng.random() < 0.2:
                data, what = mutate_bytes(data, rng)
                done.append(what)
        else:
            data, what = mutate_binary_file(seeds[kind], rng)
            done.append(what)
        path = work / (("best.pt" if kind == "training" else "compressed.pt") if rng.random() < 0.8 else "case.pt")
        path.write_bytes(data)
        direct.discard(path)
        if rng.random() < 0.2:
            direct.add(path)
        return path, "; ".join(done)

    def parse(path: Path) -> object:
        return load_checkpoint(path) if path in direct else load_model(path)

    return Target("checkpoint", CheckpointError, make, parse, message_limit=300)


TARGETS: dict[str, Callable[[Path], Target]] = {
    "idx": idx_target, "topology": topology_target, "cfg": cfg_target, "chip": chip_target, "onnx": onnx_target,
    "checkpoint": checkpoint_target,
}


# --- running in a subprocess ------------------------------------------------------------------------------------


def run_in_subprocess(name: str, mutations: int = 2000, seed: int = 0, timeout_s: float = 600) -> Report:
    """Run one target's whole fuzz loop in a fresh interpreter; a crash or a hang of it fails the caller."""
    cmd = [sys.executable, "-m", "tests._fuzz", name, "--mutations", str(mutations), "--seed", str(seed)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"fuzzing {name}: the run did not finish in {timeout_s:g} s (a hang)") from None
    if proc.returncode != 0:
        raise AssertionError(f"fuzzing {name}: the run died (exit {proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return Report(**data)


def assert_clean(rep: Report, mutations: int, *, min_parsed: float = 0.01, min_refused: float = 0.1) -> None:
    """What a fuzz test asserts: every case ran, none failed or hung, and both paths (parsed, refused) were taken."""
    assert rep.mutations == mutations
    assert not rep.failures, f"{len(rep.failures)} failures, e.g.: " + " | ".join(rep.failures[:5])
    assert not rep.hangs, f"{len(rep.hangs)} hangs, e.g.: " + " | ".join(rep.hangs[:5])
    assert rep.parsed >= min_parsed * mutations, f"only {rep.parsed} of {mutations} mutations parsed"
    assert rep.refused_total >= min_refused * mutations, f"only {rep.refused_total} of {mutations} refused"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests._fuzz", description="Fuzz one of chipfit's parsers.")
    ap.add_argument("target", choices=sorted(TARGETS))
    ap.add_argument("--mutations", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--case", type=int, help="replay one case (its number from a failure) with its traceback")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix=f"chipfit-fuzz-{args.target}-") as tmp:
        target = TARGETS[args.target](Path(tmp))
        if args.case is not None:
            path, what = target.make(random.Random(args.case))
            print(f"case {args.case}: {what}\n  file {path}", file=sys.stderr)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                print(repr(target.parse(path))[:500])
            return 0
        rep = run_target(target, args.mutations, args.seed)
    print(json.dumps(asdict(rep)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
