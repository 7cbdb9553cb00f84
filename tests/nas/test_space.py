"""Search spaces are data: every choice expands to a zoo config that round-trips through JSON and builds the network
it names; sizes match their closed forms; bad space files are refused with the file and the field at fault."""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
import re
from collections import Counter

import pytest
import torch
import torch.nn as nn
import yaml

from chipfit.models.blocks import InvertedResidual, MetaBlock
from chipfit.models.build import build_model
from chipfit.models.config import ModelConfig
from chipfit.nas.space import SPACES, Arch, Op, SearchSpace, SpaceError, StageSpace, load_space

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ("quadranet_s28", "mbconv_s28")
# Feature-map side of each space stage at 28 px, from the module docstring: metaformer stem 2x2 stride 2 then 2x2
# stride-2 downsamplers (floor); MBConv stride-1 stem then 3x3 stride-2 depthwise convs padded by 1 (ceil).
MAP_SIDES = {"quadranet_s28": (14, 7, 3, 1), "mbconv_s28": (28, 14, 7, 4, 4, 4)}
LABEL = re.compile(r"(?P<kind>[a-z0-9]+)_k(?P<k>\d+)_e(?P<e>[\d.]+)")


def _json(d: dict) -> dict:
    return json.loads(json.dumps(d))


def _chosen(space: SearchSpace, arch: Arch) -> list[tuple[int, list[str]]]:
    """Per stage, (width, op labels of its slots) as a search sees them: through the genes' option labels."""
    genes, values = dict(space.genes()), space.encode(arch)

    def pick(name: str, only: str) -> str:  # a gene with one option is absent from genes(): its only option
        return genes[name][values[name]] if name in genes else only

    return [(int(pick(f"s{i}.width", str(st.widths[0]))),
             [pick(f"s{i}.b{j}", st.slot_ops(j)[0].label()) for j in range(st.slots)])
            for i, st in enumerate(space.stages)]


def _expected_blocks(space: SearchSpace, arch: Arch) -> list[tuple[str, int, int, float, int]]:
    """(kind, width, kernel, expansion, map side) of every block the point asks for, identity slots left out."""
    out = []
    for (width, labels), side in zip(_chosen(space, arch), MAP_SIDES[space.name], strict=True):
        for label in labels:
            if label != "identity":
                m = LABEL.fullmatch(label)
                out.append((m["kind"], width, int(m["k"]), float(m["e"]), side))
    return out


def _built_blocks(net: nn.Module, x: torch.Tensor) -> list[tuple[str, int, int, float, int]]:
    """(kind, width, kernel, expansion, map side) of every block of a built network, read off its modules and a
    forward pass (hooks record each block's output map)."""
    blocks = [m for m in net.modules() if isinstance(m, (MetaBlock, InvertedResidual))]
    sides: dict[int, tuple[int, int]] = {}
    hooks = [b.register_forward_hook(lambda mod, _, y: sides.__setitem__(id(mod), (y.shape[1], y.shape[-1])))
             for b in blocks]
    with torch.no_grad():
        out = net(x)
    for h in hooks:
        h.remove()
    assert out.shape == (1, net.config.num_classes) and torch.isfinite(out).all()
    rows = []
    for b in blocks:
        width, side = sides[id(b)]
        if isinstance(b, MetaBlock):
            rows.append((b.kind, width, b.mixer.kernel_size[0], b.pw1.out_channels / b.pw1.in_channels, side))
        else:
            convs = [c for c in b.body.modules() if isinstance(c, nn.Conv2d)]
            dw = next(c for c in convs if c.groups > 1)  # hidden = cin * t channels, one group each
            rows.append(("mbv2", width, dw.kernel_size[0], dw.in_channels / convs[0].in_channels, side))
    return rows


def _check_point(space: SearchSpace, arch: Arch) -> nn.Module:
    """expand -> JSON -> config equals; the network built from the JSON runs and holds exactly the chosen blocks."""
    cfg = space.expand(arch)
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.input_size == space.input_sizes[arch.resolution] == 28
    net = build_model(again).eval()
    x = torch.randn(1, space.in_chans, again.input_size, again.input_size, generator=torch.Generator().manual_seed(0))
    chosen = _chosen(space, arch)
    expected = _expected_blocks(space, arch)
    assert len(expected) == sum(lab != "identity" for _, labels in chosen for lab in labels)
    assert _built_blocks(net, x) == expected
    with torch.no_grad():
        feats = net.forward_features(x)
    # metaformer: the last stage's downsampler sets the width even when all its slots are identity
    assert feats.shape[1] == (chosen[-1][0] if space.family == "metaformer" else space.head_channels)
    return net


# --- every choice expands, round-trips and builds ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "gene"), [(n, g) for n in SMALL for g, _ in load_space(n).genes()])
def test_every_single_choice_round_trips_through_config_json_and_builds(name, gene):
    space = load_space(name)
    options = dict(space.genes())[gene]
    assert len(options) > 1
    for v in range(len(options)):  # the others at option 0: the narrowest widths, the first op
        _check_point(space, space.decode({gene: v}))


@pytest.mark.parametrize("name", SMALL)
def test_largest_and_sampled_points_build_and_largest_has_most_parameters(name):
    space = load_space(name)
    big = space.largest()
    assert space.widths_of(big) == [max(st.widths) for st in space.stages]
    assert all(lab != "identity" for _, labels in _chosen(space, big) for lab in labels)
    params = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    most = params(_check_point(space, big))
    rng = random.Random(3)
    for _ in range(6):
        assert params(_check_point(space, space.sample(rng))) <= most


def test_empty_stages_keep_their_downsampler_and_width():
    space = load_space("quadranet_s28")
    identity = len(space.stages[1].ops) - 1
    arch = Arch((0, 1, 2, 1), ((0, 3), (identity, identity), (5, identity, 5, 0), (identity, identity)))
    net = _check_point(space, arch)
    assert len(_expected_blocks(space, arch)) == 2 + 3  # stages 1 and 3 hold none
    assert net.head.fc.in_features == space.stages[3].widths[1]


def test_with_data_changes_classes_channels_and_input_size():
    space = load_space("quadranet_s28").with_data(num_classes=100, in_chans=3, input_size=32)
    assert (space.num_classes, space.in_chans, space.input_sizes) == (100, 3, (32,))
    cfg = space.expand(space.sample(random.Random(0)))
    assert (cfg.num_classes, cfg.in_chans, cfg.input_size) == (100, 3, 32)
    with torch.no_grad():
        assert build_model(cfg).eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 100)
    with pytest.raises(SpaceError, match=r"input_sizes\[0\] = 8"):
        load_space("quadranet_s28").with_data(10, 1, input_size=8)


# --- size, genes, sampling ---------------------------------------------------------------------------------------


def _closed_form_size(space: SearchSpace) -> int:
    """widths x, per slot, its candidates (a fixed first slot never holds identity) x input sizes."""
    n = len(space.input_sizes)
    for st in space.stages:
        n *= len(st.widths)
        for j in range(st.slots):
            n *= len(st.ops) - (st.fixed_first and j == 0 and Op("identity") in st.ops)
    return n


@pytest.mark.parametrize("name", list(SPACES))
def test_size_is_the_closed_form_product(name):
    space = load_space(name)
    assert space.size() == _closed_form_size(space)
    assert space.size() == math.prod(len(opts) for _, opts in space.genes())


def test_size_of_the_builtin_spaces_by_the_papers_counts():
    # QuadraNet: 3 widths per stage, 6 QuadraBlocks + identity in each of 2+2+4+2 slots
    assert load_space("quadranet_s28").size() == 3**4 * 7**10
    assert load_space("quadranet").size() == 3**4 * 7**(2 + 3 + 9 + 2)
    # ProxylessNAS: widths 2*3*2*2*2; the first slot of each of 5 stages takes one of 6 MBConvs, the other 7 slots
    # one of 6 or identity; the fixed k3 t1 stage adds nothing
    for name in ("mbconv_s28", "mbconv"):
        assert load_space(name).size() == 2 * 3 * 2 * 2 * 2 * 6**5 * 7**7


def _tiny() -> SearchSpace:
    a, b, s, ident = Op("quadra", 3, 2.0), Op("conv", 5, 4.0), Op("skip"), Op("identity")
    return SearchSpace("tiny", "metaformer", (StageSpace(2, (8, 16), (a, b, ident), stride=1),
                                              StageSpace(2, (16,), (a, s, ident), fixed_first=True)),
                       input_sizes=(16, 32))


def test_tiny_space_size_equals_brute_force_enumeration():
    space = _tiny()
    # every (input size, per stage width and slot labels) a reading of the definition allows
    per_stage = []
    for st in space.stages:
        labels = [o.label() for o in st.ops]
        slots = [[lab for lab in labels if lab != "identity"] if st.fixed_first and j == 0 else labels
                 for j in range(st.slots)]
        per_stage.append([(w, seq) for w in st.widths for seq in itertools.product(*slots)])
    points = {(size, *stages) for size in space.input_sizes for stages in itertools.product(*per_stage)}
    assert len(points) == space.size() == 2 * (2 * 3 * 3) * (1 * 2 * 3) == 216

    genes = space.genes()
    archs = {space.decode(dict(zip([g for g, _ in genes], vals, strict=True)))
             for vals in itertools.product(*[range(len(opts)) for _, opts in genes])}
    assert len(archs) == space.size()
    described = {(space.input_size(a), *[(s["width"], tuple(s["blocks"])) for s in space.describe(a)["stages"]])
                 for a in archs}
    assert described == points
    # identity placement aside, distinct points are distinct networks: drop identity and count again
    networks = {(p[0], *[(w, tuple(lab for lab in seq if lab != "identity")) for w, seq in p[1:]]) for p in points}
    assert len({space.expand(a).replace(name="") for a in archs}) == len(networks) == 2 * (2 * 7) * 6


@pytest.mark.parametrize("name", list(SPACES))
def test_decode_inverts_encode_on_sampled_points(name):
    space = load_space(name)
    genes = dict(space.genes())
    rng = random.Random(11)
    for _ in range(200):
        arch = space.sample(rng)
        space.check(arch)
        values = space.encode(arch)
        assert set(values) == set(genes)
        assert all(0 <= v < len(genes[g]) for g, v in values.items())
        assert space.decode(values) == arch


@pytest.mark.parametrize("name", SMALL)
def test_sample_is_reproducible_with_a_seed(name):
    space = load_space(name)
    first = [space.sample(random.Random(5)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng_a, rng_b = random.Random(5), random.Random(5)
    assert [space.sample(rng_a) for _ in range(20)] == [space.sample(rng_b) for _ in range(20)]
    assert len({space.sample(rng_a) for _ in range(20)}) == 20


@pytest.mark.parametrize(("name", "gene"), [("quadranet_s28", "s2.b3"), ("quadranet_s28", "s1.width"),
                                            ("mbconv_s28", "s3.b0"), ("mbconv_s28", "s2.width")])
def test_sample_is_uniform_on_a_gene(name, gene):
    space = load_space(name)
    options = dict(space.genes())[gene]
    n, rng = 700 * len(options), random.Random(2024)
    counts = Counter(space.encode(space.sample(rng))[gene] for _ in range(n))
    assert set(counts) == set(range(len(options)))  # a fixed first slot's options hold no identity to draw
    expected = n / len(options)
    chi2 = sum((counts[k] - expected) ** 2 / expected for k in range(len(options)))
    # df <= 6: P(chi2 > 40) < 1e-6 for a uniform draw; the seed is fixed, so this cannot flake
    assert chi2 < 40


# --- round trips of points and spaces ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SMALL)
def test_arch_round_trips_through_json(name):
    space = load_space(name)
    rng = random.Random(1)
    for arch in [space.largest(), *(space.sample(rng) for _ in range(20))]:
        again = Arch.from_dict(_json(arch.to_dict()))
        assert again == arch and again.key() == arch.key()
        assert space.expand(again) == space.expand(arch)


def test_arch_from_dict_names_the_missing_field():
    with pytest.raises(SpaceError, match=r"arch\.ops"):
        Arch.from_dict({"widths": [0, 0]})
    with pytest.raises(SpaceError, match="unknown field"):
        Arch.from_dict({"widths": [0], "ops": [[0]], "width": [0]})
    with pytest.raises(SpaceError, match="mapping"):
        Arch.from_dict([[0], [[0]]])


@pytest.mark.parametrize("name", list(SPACES))
def test_space_round_trips_through_dict_json_and_yaml_files(name, tmp_path):
    space = load_space(name)
    assert SearchSpace.from_dict(_json(space.to_dict())) == space
    json_file, yaml_file, yml_file = tmp_path / "space.json", tmp_path / "space.yaml", tmp_path / "space.yml"
    json_file.write_text(json.dumps(space.to_dict(), indent=2))
    yaml_file.write_text(yaml.safe_dump(space.to_dict()))
    yml_file.write_text(yaml.safe_dump(space.to_dict()))
    arch = space.sample(random.Random(0))
    for f in (json_file, yaml_file, yml_file):
        loaded = load_space(f)
        assert loaded == space
        assert loaded.expand(arch) == space.expand(arch)
    assert load_space(space) is space


# --- bad files name the file and the field -----------------------------------------------------------------------


def _set(path: tuple, value):
    def edit(d: dict) -> None:
        for key in path[:-1]:
            d = d[key]
        d[path[-1]] = value
    return edit


def _drop(key: str):
    return lambda d: d.pop(key)


BAD = [  # (id, base space, edit of its to_dict(), what the message must say)
    ("unknown_field", "quadranet_s28", _set(("input_size",), 28), ["['input_size']", "did you mean ['input_sizes']"]),
    ("missing_family", "quadranet_s28", _drop("family"), ["family: required"]),
    ("family_typo", "quadranet_s28", _set(("family",), "metaformr"), ["family 'metaformr'"]),
    ("missing_stages", "quadranet_s28", _drop("stages"), ["stages"]),
    ("widths_not_a_list", "quadranet_s28", _set(("stages", 1, "widths"), 24), ["stages[1].widths"]),
    ("width_zero", "quadranet_s28", _set(("stages", 1, "widths"), [24, 0]), ["stages[1]", "widths", "[24, 0]"]),
    ("width_text", "quadranet_s28", _set(("stages", 1, "widths"), [24, "48"]), ["stages[1]", "widths"]),
    ("widths_repeat", "quadranet_s28", _set(("stages", 1, "widths"), [24, 24]), ["stages[1]", "widths repeat"]),
    ("stage_field_typo", "quadranet_s28", _set(("stages", 0, "width"), [16]), ["stages[0]", "did you mean ['widths']"]),
    ("slots_zero", "quadranet_s28", _set(("stages", 0, "slots"), 0), ["stages[0]", "slots"]),
    ("stride_3", "quadranet_s28", _set(("stages", 2, "stride"), 3), ["stages[2]", "stride must be 1 or 2, got 3"]),
    ("even_kernel", "quadranet_s28", _set(("stages", 1, "ops", 2), "quadra_k4_e2"),
     ["stages[1].ops[2]", "'quadra_k4_e2'", "odd"]),
    ("kind_typo", "quadranet_s28", _set(("stages", 1, "ops", 2), "qadra_k3_e2"),
     ["stages[1].ops[2]", "'qadra'", "did you mean 'quadra'"]),
    ("not_a_label", "quadranet_s28", _set(("stages", 1, "ops", 2), "quadra3"), ["stages[1].ops[2]", "'quadra3'"]),
    ("op_field_typo", "quadranet_s28", _set(("stages", 1, "ops", 2), {"kind": "quadra", "kernal_size": 3}),
     ["stages[1].ops[2]", "['kernal_size']", "did you mean ['kernel_size']"]),
    ("op_of_other_family", "quadranet_s28", _set(("stages", 1, "ops", 2), "mbv2_k3_e6"),
     ["stages[1].ops[2]", "'mbv2_k3_e6'", "metaformer"]),
    ("quadra_in_mobilenet", "mbconv_s28", _set(("stages", 2, "ops", 1), "quadra_k3_e2"),
     ["stages[2].ops[1]", "'quadra_k3_e2'", "mobilenetv2"]),
    ("fractional_mbconv", "mbconv_s28", _set(("stages", 1, "ops", 0), "mbv2_k3_e2.5"),
     ["stages[1].ops[0]", "whole number"]),
    ("fixed_first_only_identity", "mbconv_s28", _set(("stages", 3, "ops"), ["identity"]), ["stages[3]", "fixed_first"]),
    ("input_too_small", "quadranet_s28", _set(("input_sizes",), [28, 8]), ["input_sizes[1] = 8", "too small"]),
    ("input_sizes_not_a_list", "quadranet_s28", _set(("input_sizes",), 28), ["input_sizes"]),
    ("layer_scale_text", "quadranet_s28", _set(("layer_scale",), "1e-6"), ["layer_scale", "'1e-6'"]),
    ("fractional_channels", "mbconv_s28", _set(("in_chans",), 1.5), ["in_chans", "1.5"]),
]


@pytest.mark.parametrize("suffix", ["json", "yaml"])
@pytest.mark.parametrize(("case", "base", "edit", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_space_file_names_the_file_and_the_field(tmp_path, suffix, case, base, edit, says):
    d = copy.deepcopy(load_space(base).to_dict())
    edit(d)
    path = tmp_path / f"bad_{case}.{suffix}"
    path.write_text(json.dumps(d) if suffix == "json" else yaml.safe_dump(d))
    with pytest.raises(SpaceError) as err:
        load_space(path)
    msg = str(err.value)
    assert path.name in msg
    for part in says:
        assert part in msg


RAW = [  # (file name, text, what the message must say)
    ("broken.json", '{"name": "x", "family": ', "not valid JSON"),
    ("broken.yaml", "name: x\nstages: [1, 2\n", "not valid YAML"),
    ("list.json", "[1, 2]", "expected a mapping"),
    ("text.yml", "just some words\n", "expected a mapping"),
    ("empty.yaml", "", "expected a mapping"),
]


@pytest.mark.parametrize(("file", "text", "says"), RAW, ids=[r[0] for r in RAW])
def test_unreadable_space_file_names_the_file(tmp_path, file, text, says):
    path = tmp_path / file
    path.write_text(text)
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert path.name in str(err.value) and says in str(err.value)


def test_hand_written_yaml_exponent_is_named(tmp_path):
    # PyYAML reads an exponent without a dot (1e-6) as text: the message must name the field, not a '<' failure
    text = yaml.safe_dump(load_space("quadranet").to_dict()).replace("layer_scale: 1.0e-06", "layer_scale: 1e-6")
    assert "layer_scale: 1e-6" in text
    path = tmp_path / "quadranet_224.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=r"quadranet_224\.yaml: layer_scale must be a number, got '1e-6'"):
        load_space(path)


def test_unknown_builtin_name_suggests_the_close_match():
    with pytest.raises(SpaceError, match="did you mean 'quadranet_s28'"):
        load_space("quadranet_s82")
    with pytest.raises(SpaceError, match="did you mean 'mbconv_s28'"):
        load_space("mbconv-s28")
    with pytest.raises(SpaceError, match="no such built-in space or file") as err:
        load_space("spaces/nowhere.json")
    assert all(name in str(err.value) for name in SPACES)


# --- a point of another space is refused, naming the stage and slot ----------------------------------------------


def _with_op(arch: Arch, stage: int, slot: int, index: int) -> Arch:
    ops = [list(s) for s in arch.ops]
    ops[stage][slot] = index
    return Arch(arch.widths, tuple(map(tuple, ops)), arch.resolution)


def _refused(space: SearchSpace, arch: Arch, pattern: str) -> None:
    for verb in (space.check, space.expand, space.encode, space.describe):
        with pytest.raises(SpaceError, match=pattern):
            verb(arch)


def test_arch_of_another_space_names_the_stage_count():
    quadra, mbconv = load_space("quadranet_s28"), load_space("mbconv_s28")
    _refused(mbconv, quadra.largest(), r"4 widths and 4 op lists; space 'mbconv_s28' has 6 stages")
    _refused(quadra, mbconv.largest(), r"6 widths and 6 op lists; space 'quadranet_s28' has 4 stages")


def test_out_of_range_choices_name_the_stage_and_slot():
    quadra, mbconv = load_space("quadranet_s28"), load_space("mbconv_s28")
    base = quadra.decode({})
    _refused(quadra, _with_op(base, 2, 3, 7), r"stage 2 slot 3: op index 7 out of range \(0\.\.6\)")
    _refused(quadra, _with_op(base, 1, 0, -1), r"stage 1 slot 0: op index -1")
    # a fixed first slot has no identity: index 6 (identity elsewhere in the stage) is out of its range
    _refused(mbconv, _with_op(mbconv.decode({}), 1, 0, 6), r"stage 1 slot 0: op index 6 out of range \(0\.\.5\)")
    _refused(quadra, Arch((0, 3, 0, 0), base.ops), r"stage 1: width index 3 out of range \(0\.\.2\)")
    _refused(quadra, Arch(base.widths, (base.ops[0], base.ops[1], (0, 0, 0), base.ops[3])),
             r"stage 2: 3 slot choices for 4 slots")
    _refused(quadra, Arch(base.widths, base.ops, resolution=1), r"resolution index 1 out of range \(0\.\.0\)")
    with pytest.raises(SpaceError, match=r"s1\.b0: option 6 out of range \(0\.\.5\)"):
        mbconv.decode({"s1.b0": 6})
