"""The Qwen2 decoder with M-RoPE vs transformers' Qwen2VLTextModel; the KV cache; the mask."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenvl_study.course import reference as ref
from qwenvl_study.config import tiny_config
from qwenvl_study.language import KVCache, Qwen2Model, RMSNorm, decoder_mask

CFG = tiny_config()


@pytest.fixture(scope="module")
def pair():
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLTextModel

    torch.manual_seed(0)
    with ref.quiet():
        hf = Qwen2VLTextModel._from_config(ref.hf_config(CFG, "eager").text_config).eval()
    ours = Qwen2Model(CFG.text).eval()
    ours.load_state_dict(hf.state_dict(), strict=True)  # same names as the reference
    return ours, hf


@settings(max_examples=20)
@given(b=st.integers(1, 3), length=st.integers(1, 24), pad=st.integers(0, 5), seed=st.integers(0, 10_000),
       backend=st.sampled_from(["eager", "sdpa"]))
def test_decoder_equals_transformers(pair, b, length, pad, seed, backend):
    ours, hf = pair
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, CFG.text.vocab_size, (b, length), generator=g)
    mask = torch.ones(b, length, dtype=torch.long)
    mask[0, : min(pad, length - 1)] = 0  # left padding on row 0
    pos = torch.randint(0, 300, (3, b, length), generator=g)  # arbitrary M-RoPE ids (t, h, w differ)
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
        ours.attn_backend = backend  # stored on the tower, as in the vision tower
        mine, _ = ours(ours.embed_tokens(ids), pos, mask)
    real = mask.bool()
    assert (mine - theirs)[real].abs().max().item() <= 1e-5
    assert torch.isfinite(mine).all()  # left-padded queries attend nothing: zeros, no NaN


def test_hidden_states_match_transformers_layer_by_layer(pair):
    ours, hf = pair
    ids = torch.randint(0, 1000, (2, 12))
    pos = torch.arange(12).view(1, 1, -1).expand(3, 2, -1)
    with torch.no_grad():
        theirs = hf(input_ids=ids, position_ids=pos, output_hidden_states=True).hidden_states
        _, mine = ours(ours.embed_tokens(ids), pos, torch.ones_like(ids), output_hidden_states=True)
    assert len(mine) == len(theirs) == CFG.text.num_hidden_layers + 1
    for a, b in zip(mine, theirs):
        assert (a - b).abs().max().item() <= 1e-5


def test_kv_cache_decoding_equals_the_full_forward(pair):
    ours, _ = pair
    ids = torch.randint(0, 1000, (2, 10))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0).view(1, 2, -1).expand(3, -1, -1)
    emb = ours.embed_tokens(ids)
    with torch.no_grad():
        full, _ = ours(emb, pos, mask)
        cache = KVCache(len(ours.layers))
        steps = [ours(emb[:, :6], pos[:, :, :6], mask[:, :6], cache)[0]]
        for i in range(6, 10):
            steps.append(ours(emb[:, i:i + 1], pos[:, :, i:i + 1], mask[:, : i + 1], cache)[0])
    assert cache.length == 10
    stepped = torch.cat(steps, dim=1)
    assert (stepped - full)[mask.bool()].abs().max().item() <= 1e-5


def test_rmsnorm_equals_transformers():
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLRMSNorm

    ours, theirs = RMSNorm(64, 1e-6), Qwen2VLRMSNorm(64, 1e-6)
    with torch.no_grad():
        ours.weight.normal_()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5, 64) * 10
    assert (ours(x) - theirs(x)).abs().max().item() <= 1e-6


def test_decoder_mask_with_padding_and_cache():
    mask = decoder_mask(torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]), query_length=2)  # [B, 1, 2, 4]
    assert mask.shape == (2, 1, 2, 4)
    assert mask[0, 0].tolist() == [[False, True, True, False], [False, True, True, True]]
    assert mask[1, 0].tolist() == [[True, True, True, False], [True, True, True, True]]
    padded = decoder_mask(torch.tensor([[0, 0, 1]]), query_length=3)[0, 0]
    assert padded.tolist() == [[False, False, False], [False, False, False], [False, False, True]]


# --- the decode fast path: column-major wide matrices, same values, same tokens ----------------
@settings(max_examples=4)
@given(seed=st.integers(0, 10_000), length=st.integers(1, 12), tied=st.booleans())
def test_decode_layout_keeps_values_logits_and_greedy_tokens(seed, length, tied):
    import copy
    import dataclasses

    from qwenvl_study.model import Qwen2VL

    torch.manual_seed(seed)
    config = dataclasses.replace(tiny_config(vocab_size=2048), tie_word_embeddings=tied)  # small head: fast
    plain = Qwen2VL(config).eval()
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_(0, 0.5)  # large weights: logits far apart, greedy choices not knife-edge
    fast = copy.deepcopy(plain)
    assert fast.prepare_decode() == 2 * config.text.num_hidden_layers + 1  # gate, up per layer + the head
    assert fast.prepare_decode() == 0  # prepared once
    head, gate = fast.lm_head_weight, fast.model.layers[0].mlp.gate_proj.weight
    assert head.stride() == (1, head.shape[0]) and gate.stride() == (1, gate.shape[0])
    assert fast.model.layers[0].mlp.down_proj.weight.is_contiguous()  # out < in: stays row-major
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), fast.state_dict().values()))
    ids = torch.randint(0, 2048, (1, length))
    with torch.no_grad():
        assert (plain(ids) - fast(ids)).abs().max() <= 1e-5
    steps, expected = 6, ids  # greedy by hand on the row-major copy: argmax of the whole-sequence logits
    for _ in range(steps):
        with torch.no_grad():
            expected = torch.cat([expected, plain(expected)[:, -1].argmax(-1, keepdim=True)], dim=1)
    got = fast.generate(ids, max_new_tokens=steps, eos_token_id=[])
    assert torch.equal(got, expected[:, length:])


def test_decode_layout_leaves_bf16_and_narrow_matrices_alone():
    from qwenvl_study.language import to_column_major, use_decode_layout

    layer = torch.nn.Linear(8, 32).to(torch.bfloat16)
    assert use_decode_layout(layer) == 0 and layer.weight.is_contiguous()
    narrow = torch.nn.Linear(32, 8)
    assert not to_column_major(narrow.weight) and narrow.weight.is_contiguous()
