"""Notebook 02's inline builds (`# build:` cells) equal the package: 1D RoPE and the rotating pair, the
vision (row, col) ids bit-equal on any grids (hypothesis), and the 2D rotary cos/sin and rotated q/k
within 1e-6 of ``qwenvl_study.rope``.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from nbbuild import notebook_build

from qwenvl_study import rope

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (conftest)

NB = "02_vision_rope"
grids = st.lists(st.tuples(st.integers(1, 3), st.integers(1, 8).map(lambda x: 2 * x),
                           st.integers(1, 8).map(lambda x: 2 * x)), min_size=1, max_size=4)


@pytest.fixture(scope="module")
def build():
    return notebook_build(NB, "vision_rotary")


def test_rotate_pair_is_a_rotation_with_the_relative_property(build):
    rotate, dot = build["rotate_pair"], build["dot"]
    assert rotate((1.0, 0.0), math.pi / 2) == pytest.approx((0.0, 1.0), abs=1e-12)
    q, k, w = (0.7, -0.2), (0.1, 0.9), 0.37
    for m, n in [(0, 4), (3, 7), (11, 15)]:
        assert dot(rotate(q, m * w), rotate(k, n * w)) == pytest.approx(dot(q, rotate(k, 4 * w)), abs=1e-12)


@given(length=st.integers(1, 64), head_dim=st.sampled_from([8, 64, 80, 128]), theta=st.sampled_from([1e4, 1e6]),
       seed=st.integers(0, 1000))
def test_rope_1d_build_equals_package(build, length, head_dim, theta, seed):
    pos = torch.randperm(4 * length, generator=torch.Generator().manual_seed(seed))[:length]
    cos, sin = build["rope_cos_sin"](pos, head_dim, theta)
    pcos, psin = rope.rope_cos_sin(pos, head_dim, theta)
    assert (cos - pcos).abs().max() <= 1e-6 and (sin - psin).abs().max() <= 1e-6
    x = torch.randn(1, 2, length, head_dim, generator=torch.Generator().manual_seed(seed))
    ours = build["apply_rope"](x, cos, sin)
    theirs, _ = rope.apply_rotary(x, x, pcos[None], psin[None])
    assert (ours - theirs).abs().max() <= 1e-6


@given(grid=grids)
def test_vision_position_ids_build_equals_package(build, grid):
    ours = build["vision_position_ids"](torch.tensor(grid))
    theirs = rope.vision_position_ids(torch.tensor(grid))
    assert ours.dtype == theirs.dtype == torch.long
    assert torch.equal(ours, theirs)


@given(grid=grids, head_dim=st.sampled_from([16, 40, 80]), seed=st.integers(0, 1000))
def test_vision_rotary_build_equals_package(build, grid, head_dim, seed):
    pos = rope.vision_position_ids(torch.tensor(grid))
    angles = build["vision_rotary_angles"](pos, head_dim)
    assert (angles - rope.vision_rotary_angles(pos, head_dim)).abs().max() <= 1e-6
    cos, sin = build["vision_cos_sin"](pos, head_dim)
    pcos, psin = rope.vision_cos_sin(pos, head_dim)
    assert (cos - pcos).abs().max() <= 1e-6 and (sin - psin).abs().max() <= 1e-6
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, len(pos), 2, head_dim, generator=g)
    ours, theirs = build["apply_rotary_vision"](q, k, cos, sin), rope.apply_rotary_vision(q, k, pcos, psin)
    assert all((a - b).abs().max() <= 1e-6 for a, b in zip(ours, theirs))
    half = build["apply_rotary_vision"](q.bfloat16(), k.bfloat16(), cos, sin)  # computed in float32, cast back
    assert half[0].dtype == torch.bfloat16
    assert torch.equal(half[0], rope.apply_rotary_vision(q.bfloat16(), k.bfloat16(), pcos, psin)[0])


def test_the_builds_are_self_contained():
    from nbbuild import _cells

    names = [name for name, _ in _cells(NB)]
    assert names == ["rotate_pair", "rope_1d", "vision_position_ids", "vision_rotary"]
    assert not any("qwenvl_study" in src for _, src in _cells(NB))  # written in the open, not imported
