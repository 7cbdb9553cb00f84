"""Channel dependency groups: counted by hand for the zoo's skeletons, frozen where channels cannot move."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from chipfit.compress.prune.depgraph import TraceError, channel_groups
from chipfit.models import create_model

X28 = torch.zeros(1, 1, 28, 28)


def _groups(name):
    return {g.name: g for g in channel_groups(create_model(name, num_classes=10, in_chans=1), X28)}


def _layers(group):
    return {(layer, role) for uses in group.classes for layer, role, _ in uses}


def test_quadranet_streams_and_hidden_widths():
    """quadranet_s28: stages of depth 1/1/3/1 at widths 24/48/96/192, MLP ratio 3. A stage's stream touches the layer
    that opens it, seven layers per block (norm1, mixer, gamma1, norm2, pw1 in, pw2 out, gamma2) and the two that
    close it (the next LayerNorm and conv in, or the head's norm and fc)."""
    g = _groups("quadranet_s28")
    streams = {"stem.0:out": (24, 1), "stages.1.0.1:out": (48, 1), "stages.2.0.1:out": (96, 3),
               "stages.3.0.1:out": (192, 1)}
    for name, (width, depth) in streams.items():
        opening = 2 if name == "stem.0:out" else 1  # the stem's LayerNorm follows its conv
        assert len(g[name]) == width
        assert len(_layers(g[name])) == opening + 7 * depth + 2
    hidden = [n for n in g if n.endswith("pw1:out")]
    assert sorted(len(g[n]) for n in hidden) == [72, 144, 288, 288, 288, 576]
    assert all(_layers(g[n]) == {(n[:-4], "out"), (n[:-8] + ".pw2", "in")} for n in hidden)
    # the stage-2 stream runs through every block's residual add: one group, not three
    assert {(f"stages.2.{i}.mixer", "through") for i in (1, 2, 3)} <= _layers(g["stages.2.0.1:out"])
    # input and output channels are never pruned
    assert all(("stem.0", "in") not in _layers(x) and ("head.fc", "out") not in _layers(x) for x in g.values())


def test_mobilenetv2_residual_stream_spans_the_stage():
    """Stage 2 of mobilenetv2_s28 (three blocks, 16 channels): the first block's project conv opens the stream,
    blocks 2 and 3 add to it, so their project convs and every block's expansion input share one group."""
    g = _groups("mobilenetv2_s28")["stages.2.0.body.2.0:out"]
    assert len(g) == 16
    layers = _layers(g)
    for b in range(3):
        assert (f"stages.2.{b}.body.2.0", "out") in layers  # project conv (each block's output joins the stream)
        assert (f"stages.2.{b}.body.2.1", "through") in layers  # its BatchNorm
    assert ("stages.3.0.body.0.0", "in") in layers  # the next stage's expansion reads it
    assert len(g.classes[0]) == len(layers)  # one position per layer
    assert g.is_stream and g.writers == [f"stages.2.{b}.body.2.0" for b in range(3)]


def test_only_residual_streams_count_as_streams():
    """mobilenetv2_s28 has residual adds in its five stages of more than one block; every other group (expansions,
    stem, single-block stages, head) is written by one layer."""
    groups = _groups("mobilenetv2_s28")
    streams = {n for n, g in groups.items() if g.is_stream}
    assert len(streams) == 5 and "stages.2.0.body.2.0:out" in streams
    assert not groups["stages.1.1.body.0.0:out"].is_stream
    assert groups["stages.1.1.body.0.0:out"].writers == ["stages.1.1.body.0.0"]


def test_depthwise_groups_follow_their_expansion():
    g = _groups("mobilenetv2_s28")["stages.1.1.body.0.0:out"]
    assert _layers(g) == {("stages.1.1.body.0.0", "out"), ("stages.1.1.body.0.1", "through"),
                          ("stages.1.1.body.1.0", "through"), ("stages.1.1.body.1.1", "through"),
                          ("stages.1.1.body.2.0", "in")}


def test_shufflenet_split_and_shuffle_freeze_the_stream():
    """A channel split needs equal halves and the shuffle interleaves them: stream channels stay; the branches'
    inner widths and the head are prunable."""
    g = _groups("shufflenetv2_s28")
    layers = set().union(*(_layers(x) for x in g.values()))
    assert not any(role == "out" and name.endswith("right.2.0") for name, role in layers)  # feeds the concat
    assert len(g["stages.1.2.right.0.0:out"]) == 48
    assert ("stages.1.2.right.1.0", "through") in layers  # depthwise in the branch
    assert len(g["stages.3.0:out"]) == 512


@pytest.mark.parametrize("name", ["hornet_s28", "swin_s28"])
def test_mixers_with_inner_widths_read_and_write_the_stream(name):
    mixer = {"hornet_s28": ("stages.0.0.mixer", "in"), "swin_s28": ("stages.0.0.mixer", "in")}[name]
    g = _groups(name)["stem.0:out"]
    assert mixer in _layers(g) and (mixer[0], "out") in _layers(g)
    assert len(g) == 24


class _Flip(nn.Module):
    """An op the engine does not follow (reversing the channels) between two convs."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.c(self.b(self.a(x)).flip(1))


def test_unknown_ops_freeze_what_they_touch():
    g = {x.name: x for x in channel_groups(_Flip(), torch.zeros(1, 3, 4, 4))}
    assert list(g) == ["a:out"]  # a -> b can shrink; b's output goes through flip, so it stays
    assert _layers(g["a:out"]) == {("a", "out"), ("b", "in")}


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow cannot be traced
            return self.conv(x)
        return x


def test_untraceable_network_is_a_clear_error():
    with pytest.raises(TraceError, match="cannot be traced for channel pruning.*unstructured"):
        channel_groups(_Branchy(), torch.zeros(1, 3, 4, 4))


class _Flatten0(nn.Module):
    """Flattening the channels into the batch dimension hides them: the conv before cannot shrink."""

    def __init__(self):
        super().__init__()
        self.a, self.fc = nn.Conv2d(3, 8, 1), nn.Linear(1, 2)

    def forward(self, x):
        return self.fc(self.a(x).mean((2, 3), keepdim=True).flatten(0, 2))


def test_a_reshape_that_moves_channels_freezes_them():
    assert channel_groups(_Flatten0(), torch.zeros(1, 3, 4, 4)) == []
