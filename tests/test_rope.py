"""Vision 2D-RoPE and M-RoPE application vs transformers (ids builder tests: test_mrope_ids.py)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.rope import (apply_mrope, apply_rotary_vision, mrope_cos_sin, rope_cos_sin, vision_cos_sin,
                               vision_position_ids)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add synchronisation (conftest)

grids = st.lists(st.tuples(st.integers(1, 3), st.integers(1, 6).map(lambda x: 2 * x),
                           st.integers(1, 6).map(lambda x: 2 * x)), min_size=1, max_size=4)


@given(grid=grids)
def test_vision_position_ids_equal_transformers(grid):
    g = torch.tensor(grid)
    check = checks.vision_position_ids(g, 2)
    ours = check.ours
    assert ours.dtype == torch.long and ours.shape == (int(g.prod(-1).sum()), 2)
    assert check.ok


def test_vision_position_ids_follow_the_processor_row_order():
    """The (row, col) of row k of pixel_values: 2x2 merge groups adjacent."""
    ids = vision_position_ids([[1, 2, 4]]).tolist()
    assert ids == [[0, 0], [0, 1], [1, 0], [1, 1], [0, 2], [0, 3], [1, 2], [1, 3]]


@given(grid=grids, head_dim=st.sampled_from([16, 40, 80]))
def test_vision_rotary_equals_transformers(grid, head_dim):
    heads = 2
    pos = vision_position_ids(torch.tensor(grid))
    n = pos.shape[0]
    q, k = torch.randn(n, heads, head_dim), torch.randn(n, heads, head_dim)
    errors = checks.vision_rotary(pos, q, k).details
    assert errors["cos"] <= 1e-6 and errors["sin"] <= 1e-6
    assert errors["q"] <= 1e-6 and errors["k"] <= 1e-6


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


def test_bad_input_is_a_clear_value_error():
    pos = vision_position_ids([[1, 2, 2]])
    cos, sin = vision_cos_sin(pos, 16)
    q = torch.randn(4, 2, 16)
    cases = [
        (lambda: vision_position_ids([[1, 3, 4]]), r"grid \(t=1, h=3, w=4\).*multiples of spatial_merge_size=2"),
        (lambda: vision_position_ids([[1, -2, 4]]), r"grid \(t=1, h=-2, w=4\): t, h, w must be >= 1"),
        (lambda: vision_position_ids([[0, 2, 4]]), r"grid \(t=0, h=2, w=4\)"),
        (lambda: vision_position_ids([[1, 2]]), r"grid_thw must have shape \[num_items, 3\]"),
        (lambda: vision_position_ids(torch.tensor([[1.5, 2, 2]])), "grid_thw must hold integers"),
        (lambda: vision_cos_sin(pos, 6), "head_dim must be a positive multiple of 4, got 6"),
        (lambda: vision_cos_sin(torch.zeros(4, 3, dtype=torch.long), 16), r"must be \[N, 2\] \(row, column\)"),
        (lambda: rope_cos_sin(torch.arange(4), 7, 1e4), "head_dim must be a positive multiple of 2, got 7"),
        (lambda: mrope_cos_sin(torch.zeros(3, 1, 4, dtype=torch.long), 16, 1e4, (1, 2, 3)), "must be 3 parts"),
        (lambda: mrope_cos_sin(torch.zeros(2, 1, 4, dtype=torch.long), 16, 1e4, (2, 3, 3)),
         r"must be \[3, B, L\].*got shape \(2, 1, 4\)"),
        (lambda: apply_rotary_vision(q, q, cos[:3], sin[:3]), r"apply_rotary_vision \(q\): q/k of shape \(4, 2, 16\)"),
        (lambda: apply_mrope(torch.zeros(1, 2, 4, 16), torch.zeros(1, 1, 4, 16), torch.zeros(1, 5, 16),
                             torch.zeros(1, 5, 16)), r"apply_rotary \(q\).*\[B, heads, L, hd\]"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
