"""Notebook 03's inline builds (cells ``# build: ...``) equal the package, so the lesson and the core cannot drift.

- ``mrope_ids`` (one sequence) and ``mrope_batch`` (a left-padded batch) vs ``rope.mrope_position_ids``: ids and
  deltas bit-equal, hypothesis over text runs, images and videos (including videos longer than wide, t > max(h', w'),
  where transformers 5.x drifts and the paper's rule — the build's and the package's — does not);
- ``mrope_cos_sin`` / ``apply_mrope`` vs ``rope.mrope_cos_sin`` / ``rope.apply_mrope``: <= 1e-6 (measured 0.0),
  hypothesis over head_dim, ``mrope_section`` splits, theta and ids.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from nbbuild import notebook_build

from qwenvl_study import rope
from qwenvl_study.rope import mrope_position_ids, segments_to_batch

pytestmark = pytest.mark.usefixtures("one_thread")

NB = "03_mrope"
even = st.integers(1, 5).map(lambda x: 2 * x)  # h, w in patches: 2..10 (h', w' = 1..5)
segment = st.one_of(
    st.tuples(st.just("text"), st.integers(1, 5)),
    st.tuples(st.just("image"), st.tuples(st.just(1), even, even)),
    st.tuples(st.just("video"), st.tuples(st.integers(1, 8), even, even)),  # t up to 8 > max(h', w') often
)


def _grids(segments, kind):
    return [grid for k, grid in segments if k == kind]


@given(segments=st.lists(segment, max_size=6))
def test_mrope_ids_equal_the_package(segments):
    mrope_ids = notebook_build(NB, "mrope_ids")["mrope_ids"]
    case = segments_to_batch([segments])
    ids, delta = mrope_ids(case["input_ids"][0], _grids(segments, "image"), _grids(segments, "video"))
    package, package_delta = mrope_position_ids(**case)
    assert torch.equal(ids, package[:, 0])
    assert delta == int(package_delta)


@given(rows=st.lists(st.lists(segment, max_size=4), min_size=1, max_size=3), extra=st.integers(0, 3))
def test_mrope_batch_equals_the_package_on_left_padded_batches(rows, extra):
    mrope_batch = notebook_build(NB, "mrope_batch")["mrope_batch"]
    longest = segments_to_batch(rows)["input_ids"].shape[1]
    case = segments_to_batch(rows, pad_side="left", length=longest + extra)
    ids, deltas = mrope_batch(**case)
    package, package_deltas = mrope_position_ids(**case)
    assert torch.equal(ids, package)  # padded places too (1 on all three rows)
    assert torch.equal(deltas, package_deltas)


@st.composite
def rotations(draw):
    head_dim = draw(st.sampled_from([8, 16, 32, 64, 128]))
    pairs = head_dim // 2
    a = draw(st.integers(0, pairs))
    b = draw(st.integers(0, pairs - a))
    section = (a, b, pairs - a - b)
    theta = draw(st.sampled_from([1e4, 1e6]))
    B, L = draw(st.integers(1, 2)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**16))
    return head_dim, theta, section, B, L, seed


@given(case=rotations())
def test_mrope_rotation_equals_the_package(case):
    ns = notebook_build(NB, "mrope_rotation")
    head_dim, theta, section, B, L, seed = case
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 5000, (3, B, L), generator=g)  # three different rows: every section matters
    q = torch.randn(B, 4, L, head_dim, generator=g)
    k = torch.randn(B, 2, L, head_dim, generator=g)
    cos, sin = ns["mrope_cos_sin"](ids, head_dim, theta, section)
    pcos, psin = rope.mrope_cos_sin(ids, head_dim, theta, section)
    assert (cos - pcos).abs().max() <= 1e-6 and (sin - psin).abs().max() <= 1e-6
    (bq, bk), (pq, pk) = ns["apply_mrope"](q, k, cos, sin), rope.apply_mrope(q, k, pcos, psin)
    assert (bq - pq).abs().max() <= 1e-6 and (bk - pk).abs().max() <= 1e-6
