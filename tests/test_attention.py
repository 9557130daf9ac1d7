"""attention.py: every backend vs transformers' eager attention, packed vs per-segment, the switch."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.attention import (BACKENDS, attention, attention_weights, available_backends,
                                    block_diagonal_mask, causal_mask, cu_seqlens_from_grid, cu_seqlens_from_lengths,
                                    resolve_backend, score_bytes, segment_lengths)

grids = st.lists(st.tuples(st.integers(1, 3), st.integers(1, 4).map(lambda x: 2 * x),
                           st.integers(1, 4).map(lambda x: 2 * x)), min_size=1, max_size=4)
TOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest


@given(grid=grids)
def test_cu_seqlens_equal_transformers(grid):
    g = torch.tensor(grid)
    check = checks.cu_seqlens(g)
    ours = check.ours
    assert ours.dtype == torch.int32 and check.ok
    assert len(segment_lengths(ours)) == int(g[:, 0].sum())  # one segment per temporal slice


@given(lengths=st.lists(st.integers(1, 7), min_size=1, max_size=5))
def test_block_diagonal_mask_is_same_segment(lengths):
    mask = block_diagonal_mask(cu_seqlens_from_lengths(lengths))
    seg = [i for i, n in enumerate(lengths) for _ in range(n)]
    assert mask.tolist() == [[a == b for b in seg] for a in seg]


def test_causal_mask_is_aligned_to_the_end():
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    assert torch.equal(causal_mask(3), torch.ones(3, 3, dtype=torch.bool).tril())


@given(b=st.integers(1, 2), hkv=st.integers(1, 2), groups=st.sampled_from([1, 2, 3]), L=st.integers(1, 6),
       extra=st.integers(0, 4), hd=st.sampled_from([4, 8]), causal=st.booleans(),
       kind=st.sampled_from(["none", "bool", "float"]), seed=st.integers(0, 2**16))
@settings(max_examples=40)
def test_batched_backends_equal_transformers_eager(b, hkv, groups, L, extra, hd, causal, kind, seed):
    """GQA, causal (a KV cache: L new queries over S = L + extra keys), padding masks."""
    g = torch.Generator().manual_seed(seed)
    S, hq = L + extra, hkv * groups
    q = torch.randn(b, hq, L, hd, generator=g)
    k, v = torch.randn(b, hkv, S, hd, generator=g), torch.randn(b, hkv, S, hd, generator=g)
    allowed = torch.ones(b, 1, L, S, dtype=torch.bool)
    if kind != "none":
        allowed = torch.rand(b, 1, 1, S, generator=g) > 0.3  # padding: some keys dropped for every query
        allowed[..., 0] = True  # every row keeps a key, causal or not (a row with none: tested separately)
    mask = {"none": None, "bool": allowed,
            "float": torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))}[kind]
    full = allowed & causal_mask(L, S) if causal else allowed
    additive = torch.zeros(full.shape).masked_fill(~full, float("-inf"))
    expected = ref.hf_eager_attention(q, k, v, additive, hd**-0.5)
    for backend in ("eager", "sdpa"):
        ours = attention(q, k, v, backend=backend, mask=mask, causal=causal)
        assert ours.shape == (b, hq, L, hd)
        assert (ours - expected).abs().max() <= TOL, backend


def test_a_query_with_no_allowed_key_gets_zeros_in_every_backend():
    q, k, v = torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8)
    mask = torch.tensor([[True, True, False], [False, False, False], [True, True, True]])
    for backend in ("eager", "sdpa"):
        out = attention(q, k, v, backend=backend, mask=mask)
        assert torch.isfinite(out).all() and torch.all(out[:, :, 1] == 0), backend
    w = attention_weights(q, k, mask=mask)
    assert torch.allclose(w[0, :, [0, 2]].sum(-1), torch.ones(2, 2)) and torch.all(w[0, :, 1] == 0)


@given(lengths=st.lists(st.integers(1, 9), min_size=1, max_size=5), heads=st.sampled_from([(2, 2), (4, 2)]),
       causal=st.booleans(), same=st.booleans(), seed=st.integers(0, 2**16))
@settings(max_examples=40)
def test_packed_backends_equal_attention_per_segment(lengths, heads, causal, same, seed):
    """Packed [N, H, hd] + cu_seqlens == each segment on its own (transformers' eager, one call each)."""
    if same:
        lengths = [lengths[0]] * len(lengths)  # the equal-segments path (an image; a video's slices)
    g = torch.Generator().manual_seed(seed)
    hq, hkv = heads
    n, hd = sum(lengths), 8
    q, k, v = torch.randn(n, hq, hd, generator=g), torch.randn(n, hkv, hd, generator=g), torch.randn(n, hkv, hd, generator=g)
    cu = cu_seqlens_from_lengths(lengths)
    refs = []
    for a, z in zip(cu[:-1].tolist(), cu[1:].tolist()):
        seg = [t[a:z].transpose(0, 1)[None] for t in (q, k, v)]  # [1, H, l, hd]
        m = torch.zeros(z - a, z - a).masked_fill(~causal_mask(z - a), float("-inf")) if causal else None
        refs.append(ref.hf_eager_attention(*seg, m, hd**-0.5)[0].transpose(0, 1))  # [l, H, hd]
    expected = torch.cat(refs)
    for backend in ("eager", "sdpa"):
        out = attention(q, k, v, backend=backend, cu_seqlens=cu, causal=causal)
        assert out.shape == (n, hq, hd)
        assert (out - expected).abs().max() <= TOL, backend
    dense = attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None], backend="sdpa",
                      mask=block_diagonal_mask(cu), causal=causal)[0].transpose(0, 1)
    assert (dense - expected).abs().max() <= TOL  # one call with the N x N block-diagonal mask: same numbers


def test_backend_switch_and_clear_errors():
    assert resolve_backend("auto", "cpu") == "sdpa"
    assert available_backends("cpu")["eager"] is None and available_backends("cpu")["sdpa"] is None
    assert "CUDA" in available_backends("cpu")["varlen"]
    q = torch.randn(4, 2, 8)
    cu = cu_seqlens_from_lengths([4])
    with pytest.raises(ValueError, match="'varlen' is not available: varlen needs a CUDA device"):
        attention(q, q, q, backend="varlen", cu_seqlens=cu)
    with pytest.raises(ValueError, match="unknown attention backend 'flash'"):
        attention(q, q, q, backend="flash", cu_seqlens=cu)
    with pytest.raises(ValueError, match=r"q has shape \(4, 2, 8\); expected \[B, heads, L, hd\]"):
        attention(q, q, q)
    with pytest.raises(ValueError, match="not both"):
        attention(q, q, q, cu_seqlens=cu, mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not cover the 4 packed tokens"):
        attention(q, q, q, backend="sdpa", cu_seqlens=cu_seqlens_from_lengths([3]))
    with pytest.raises(ValueError, match="multiple of key/value heads"):
        attention(torch.randn(1, 3, 4, 8), torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8))
    with pytest.raises(ValueError, match="pass enable_gqa=True"):
        attention(torch.randn(1, 4, 4, 8), torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8), enable_gqa=False)
    with pytest.raises(ValueError, match="segment lengths must be >= 1"):
        cu_seqlens_from_lengths([2, 0])
    b = torch.randn(1, 2, 3, 8)
    with pytest.raises(ValueError, match=r"q \(1, 2, 3, 8\) and k \(1, 2, 3, 4\) need the same head_dim"):
        attention(b, torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))
    with pytest.raises(ValueError, match=r"mask of shape \(5, 5\) does not broadcast to \[B, Hq, L, S\] = \[1, 2, 3, 3\]"):
        attention(b, b, b, mask=torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="grid_thw must be integers of shape"):
        cu_seqlens_from_grid([[1, 2]])
    with pytest.raises(ValueError, match="strictly increasing"):
        block_diagonal_mask(torch.tensor([0, 3, 2]))
    with pytest.raises(ValueError, match="need 0 <= query_len <= key_len"):
        causal_mask(-1)
    with pytest.raises(ValueError, match="at least one segment"):
        score_bytes([], 2, dense=False)
    assert set(BACKENDS) == {"eager", "sdpa", "varlen"}


def test_score_bytes_counts_the_tensors_the_eager_math_builds():
    """score_bytes (the model behind notebook 04's memory figure) against the real tensors: the dense
    bool mask and the two fp32 [H, N, N] buffers (scores, probabilities) of one packed eager call;
    per segment, the same two buffers for the largest segment only."""
    lengths, heads, hd = [5, 9, 3], 2, 8
    cu = cu_seqlens_from_lengths(lengths)
    n = sum(lengths)
    mask = block_diagonal_mask(cu)  # [N, N] bool
    q = torch.randn(1, heads, n, hd)
    weights = attention_weights(q, q, mask=mask)  # [1, H, N, N] fp32 (the scores buffer has the same size)
    assert score_bytes(lengths, heads, dense=True) == mask.numel() * mask.element_size() + 2 * weights.nbytes
    big = max(lengths)
    largest = attention_weights(q[:, :, :big], q[:, :, :big])  # [1, H, big, big]
    assert score_bytes(lengths, heads, dense=False) == 2 * largest.nbytes


@pytest.mark.skipif(not torch.cuda.is_available(), reason="varlen attention needs a CUDA GPU (none here)")
def test_varlen_equals_sdpa_on_cuda():  # pragma: no cover - runs only where CUDA is present
    if available_backends("cuda", torch.bfloat16)["varlen"] is not None:
        pytest.skip(available_backends("cuda", torch.bfloat16)["varlen"])
    g = torch.Generator(device="cuda").manual_seed(0)
    lengths = [64, 100, 36]
    n = sum(lengths)
    q, k, v = (torch.randn(n, 4, 64, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(3))
    cu = cu_seqlens_from_lengths(lengths, device="cuda")
    for causal in (False, True):
        a = attention(q, k, v, backend="varlen", cu_seqlens=cu, causal=causal).float()
        b = attention(q, k, v, backend="sdpa", cu_seqlens=cu, causal=causal).float()
        assert (a - b).abs().max() <= 2e-2  # bf16
    qb, kb = torch.randn(2, 4, 3, 64, device="cuda", dtype=torch.bfloat16), torch.randn(2, 2, 7, 64, device="cuda", dtype=torch.bfloat16)
    a = attention(qb, kb, kb, backend="varlen", causal=True).float()
    b = attention(qb, kb, kb, backend="sdpa", causal=True).float()
    assert (a - b).abs().max() <= 2e-2
