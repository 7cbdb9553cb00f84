"""Reading checkpoints: every damaged file or content is one ``CheckpointError`` line naming the file.

The bugs fuzzing found (tests/train/test_checkpoint_fuzz.py) each have a case here.
"""

from __future__ import annotations

import argparse
import json
import os

import pytest
import torch

from chipfit.load import load_model
from chipfit.train.checkpoint import CheckpointError, error_reason, load_checkpoint, save_checkpoint
from tests._fuzz import _tiny_checkpoint_state


def _one_line(e: pytest.ExceptionInfo, path) -> str:
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg and "\x1b" not in msg
    assert len(msg.replace(str(path), "")) < 300
    return msg


def test_an_empty_file(tmp_path):
    """0 bytes: torch's error has an empty message, and ``str(e).splitlines()[0]`` raised IndexError."""
    path = tmp_path / "best.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"best\.pt: the file is empty \(0 bytes\), not a checkpoint") as e:
        load_model(path)
    _one_line(e, path)
    assert error_reason(EOFError()) == "EOFError: (no message)"


def test_a_pickled_class_gives_the_reason_without_colour_codes(tmp_path):
    """torch's refusal of an unknown global wraps the reason in advice with ANSI bold codes (\\x1b[1m)."""
    path = tmp_path / "c.pt"
    torch.save({"model": {}, "model_spec": "{}", "args": argparse.Namespace(a=1)}, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = _one_line(e, path)
    assert "not a chipfit checkpoint readable with weights-only loading (UnpicklingError: Unsupported global: " \
           "GLOBAL argparse.Namespace was not an allowed global by default" in msg
    assert "[1m" not in msg


def test_a_blocked_function_gives_the_reason(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / "c.pt"
    torch.save({"model": {}, "model_spec": "{}", "x": Evil()}, path)
    with pytest.raises(CheckpointError, match=r"UnpicklingError: Trying to load unsupported GLOBAL posix\.getcwd "
                                              r"whose module posix is blocked") as e:
        load_checkpoint(path)
    _one_line(e, path)


@pytest.mark.parametrize("change,pattern", [
    ({"model_spec": "{not json"}, r"its model spec is not JSON \(Expecting property name"),
    ({"model_spec": "[1]"}, r"its model spec must be JSON text of an object \(name, class, config\), got JSON list"),
    ({"model_spec": 7}, r"its model spec must be JSON text of an object .*got int"),
    ({"model": [1, 2]}, r"its model weights must be a mapping of names to tensors, got list"),
    ({"model": {"w": 3}}, r"its model weights must map names to tensors; entry 'w' is a int"),
])
def test_contents_load_checkpoint_refuses(tmp_path, change, pattern):
    path = save_checkpoint(tmp_path / "c.pt", {**_tiny_checkpoint_state(), **change})
    with pytest.raises(CheckpointError, match=pattern) as e:
        load_checkpoint(path)
    _one_line(e, path)


def _spec(**config_changes):
    state = _tiny_checkpoint_state()
    spec = json.loads(state["model_spec"])
    spec["config"].update(config_changes)
    return {**state, "model_spec": json.dumps(spec)}


def _drop(key):
    state = _tiny_checkpoint_state()
    return {**state, "model": {k: v for k, v in state["model"].items() if k != key}}


def _stage(**changes):
    state = _tiny_checkpoint_state()
    spec = json.loads(state["model_spec"])
    spec["config"]["stages"][0].update(changes)
    return {**state, "model_spec": json.dumps(spec)}


@pytest.mark.parametrize("state,pattern", [
    (lambda: {**_tiny_checkpoint_state(), "model_spec": json.dumps({"name": "no_such_net", "config": None})},
     r"saved for an unknown model 'no_such_net'"),
    (lambda: {**_tiny_checkpoint_state(), "model_spec": json.dumps({"name": ["x"], "config": None})},
     r"its model spec names the model \"\['x'\]\", not a string"),
    (lambda: _spec(num_classes="ten"), r"the model config it holds is invalid \(TypeError: '<' not supported"),
    (lambda: _spec(input_size=0), r"the model config it holds is invalid \(ValueError: input_size must be >= 1"),
    (lambda: _spec(bogus=1), r"invalid \(ValueError: model config: unknown keys \['bogus'\]"),
    # built on the meta device first: a width of a million is refused without allocating 16 TB
    (lambda: _stage(channels=10**6), r"its weights do not fit the network its model spec describes: "
                                     r"'stem\.0\.weight' \(and \d+ more\) has shape \[8, 1, 2, 2\], the network "
                                     r"\[1000000, 1, 2, 2\]"),
    # a million blocks took minutes to build even on the meta device: refused by counting
    (lambda: _stage(depth=10**6), r"its model config has 1000000 blocks but the checkpoint holds only 24 tensors"),
    (lambda: _drop("stem.0.weight"), r"its weights do not fit .*: 'stem\.0\.weight' is missing"),
])
def test_contents_load_model_refuses(tmp_path, state, pattern):
    """Each raised from deep inside before: json, ModelConfig, the registry, load_state_dict or the allocator."""
    path = save_checkpoint(tmp_path / "best.pt", state())
    with pytest.raises(CheckpointError, match=pattern) as e:
        load_model(path)
    _one_line(e, path)


def test_the_tiny_checkpoint_loads(tmp_path):
    path = save_checkpoint(tmp_path / "best.pt", _tiny_checkpoint_state())
    loaded = load_model(path)
    assert loaded.kind == "checkpoint" and loaded.input_shape == (1, 1, 8, 8)


def test_a_compressed_checkpoints_pruning_plan_is_checked_before_it_runs(tmp_path):
    """The plan is replayed on an input of its own shape: a huge one was a huge allocation, a wrong one a traceback
    printed by torch.fx before the error."""
    state = {**_tiny_checkpoint_state(), "compress_config": json.dumps({"fold": True}),
             "prune_plan": json.dumps({"version": 2, "input_shape": [1, 1, 10**5, 10**5], "keep": {}})}
    path = save_checkpoint(tmp_path / "compressed.pt", state)
    with pytest.raises(CheckpointError, match=r"its pruning plan's input_shape must be \[1, 1, H, W\] \(at most 2\^24 "
                                              r"numbers\), got \[1, 1, 100000, 100000\]") as e:
        load_model(path)
    _one_line(e, path)
    path = save_checkpoint(tmp_path / "compressed.pt", {**state, "compress_config": "{", "prune_plan": "null"})
    with pytest.raises(CheckpointError, match=r"cannot rebuild the compressed network it holds \(JSONDecodeError: "):
        load_model(path)
