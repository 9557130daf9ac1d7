"""Vision 2D-RoPE and M-RoPE application vs transformers (ids builder tests: test_mrope_ids.py)."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from qwenvl_study import reference as ref
from qwenvl_study.rope import (apply_mrope, apply_rotary_vision, mrope_cos_sin, rope_cos_sin, vision_cos_sin,
                               vision_position_ids)

grids = st.lists(st.tuples(st.integers(1, 3), st.integers(1, 6).map(lambda x: 2 * x),
                           st.integers(1, 6).map(lambda x: 2 * x)), min_size=1, max_size=4)


@given(grid=grids)
def test_vision_position_ids_equal_transformers(grid):
    g = torch.tensor(grid)
    ours = vision_position_ids(g)
    assert ours.dtype == torch.long and ours.shape == (int(g.prod(-1).sum()), 2)
    assert torch.equal(ours, ref.hf_vision_position_ids(g, 2))


def test_vision_position_ids_follow_the_processor_row_order():
    """The (row, col) of row k of pixel_values: 2x2 merge groups adjacent."""
    ids = vision_position_ids([[1, 2, 4]]).tolist()
    assert ids == [[0, 0], [0, 1], [1, 0], [1, 1], [0, 2], [0, 3], [1, 2], [1, 3]]


@given(grid=grids, head_dim=st.sampled_from([16, 40, 80]))
def test_vision_rotary_equals_transformers(grid, head_dim):
    heads = 2
    pos = vision_position_ids(torch.tensor(grid))
    n = pos.shape[0]
    hcos, hsin = ref.hf_vision_cos_sin(pos, head_dim)
    cos, sin = vision_cos_sin(pos, head_dim)
    assert (cos - hcos).abs().max() <= 1e-6 and (sin - hsin).abs().max() <= 1e-6
    q, k = torch.randn(n, heads, head_dim), torch.randn(n, heads, head_dim)
    ours = apply_rotary_vision(q, k, cos, sin)
    theirs = ref.hf_apply_rotary_vision(q, k, hcos, hsin)
    for a, b in zip(ours, theirs):
        assert (a - b).abs().max() <= 1e-6


def test_vision_rotary_first_half_rows_second_half_columns():
    pos = torch.tensor([[3, 0], [0, 5]])
    cos, _ = vision_cos_sin(pos, 80)
    # angles 0..19 rotate by the row, 20..39 by the column (frequency 0 of each half is 1 rad/step)
    assert torch.all(cos[0, 20:40] == 1) and cos[0, 0] == torch.cos(torch.tensor(3.0))
    assert torch.all(cos[1, :20] == 1) and cos[1, 20] == torch.cos(torch.tensor(5.0))
    assert torch.equal(cos[:, :40], cos[:, 40:])  # the angle vector is duplicated (rotate_half layout)


@given(b=st.integers(1, 3), length=st.integers(1, 40), seed=st.integers(0, 1000))
def test_mrope_cos_sin_and_application_equal_transformers(b, length, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 5000, (3, b, length), generator=g)
    cos, sin = mrope_cos_sin(ids, 128, 1e6, (16, 24, 24))
    hcos, hsin = ref.hf_mrope_cos_sin(ids, 128, 1e6, (16, 24, 24))
    assert (cos - hcos).abs().max() <= 1e-6 and (sin - hsin).abs().max() <= 1e-6
    q, k = torch.randn(b, 12, length, 128, generator=g), torch.randn(b, 2, length, 128, generator=g)
    for a, c in zip(apply_mrope(q, k, cos, sin), ref.hf_apply_mrope(q, k, hcos, hsin)):
        assert (a - c).abs().max() <= 1e-5


@given(b=st.integers(1, 3), length=st.integers(1, 64))
def test_mrope_on_text_is_exactly_1d_rope(b, length):
    ids = torch.arange(length).view(1, 1, -1).expand(3, b, -1) + torch.arange(b).view(1, b, 1)
    cos, sin = mrope_cos_sin(ids, 128, 1e6, (16, 24, 24))
    cos1, sin1 = rope_cos_sin(ids[0], 128, 1e6)
    assert torch.equal(cos, cos1) and torch.equal(sin, sin1)
