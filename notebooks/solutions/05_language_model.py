"""Solutions to the exercises of notebook 05 "The language model and generation"; each asserts its answer.

Run by tests/test_solutions.py (``python notebooks/solutions/05_language_model.py`` works too).
"""

import torch

import qwenvl_study as qs
from qwenvl_study.attention import causal_mask
from qwenvl_study.language import KVCache, Qwen2DecoderLayer, Qwen2Model
from qwenvl_study.model import filter_logits
from qwenvl_study.rope import mrope_cos_sin

torch.manual_seed(0)

# 1. KV cache per token, bf16 (2 bytes): k and v x 28 layers x 2 kv heads x 128 = 2 * 28 * 2 * 128 * 2 = 28,672 B;
#    a 32,768-token context: 939,524,096 B = 896 MiB. With 12 kv heads (MHA) 6x that: 172,032 B per token,
#    5,637,144,576 B = 5.25 GiB. Projections: MHA k_proj + v_proj = 2 * (1536*1536 + 1536) = 4,721,664 per layer,
#    GQA 2 * (1536*256 + 256) = 786,944: 3,934,720 fewer per layer, 110,172,160 over 28 layers.
t = qs.QWEN2_VL_2B.text
per_token = 2 * t.num_hidden_layers * t.num_key_value_heads * t.head_dim * 2
mha_token = 2 * t.num_hidden_layers * t.num_attention_heads * t.head_dim * 2
assert (per_token, per_token * 32768, mha_token) == (28_672, 939_524_096, 172_032)
assert mha_token * 32768 == 5_637_144_576 == 5.25 * 2**30
with torch.device("meta"):
    layer = Qwen2DecoderLayer(t, 0)
kv_params = sum(p.numel() for m in (layer.self_attn.k_proj, layer.self_attn.v_proj) for p in m.parameters())
mha_params = 2 * (1536 * 1536 + 1536)
assert kv_params == 786_944 and (mha_params - kv_params) * 28 == 110_172_160
tiny = qs.tiny_config().text  # 2 layers, 2 kv heads of 16, fp32 (4 bytes)
model = Qwen2Model(tiny).eval()
L = 11
cache = KVCache(tiny.num_hidden_layers)
with torch.no_grad():
    model(model.embed_tokens(torch.randint(0, 1000, (1, L))), torch.arange(L).expand(3, 1, L), torch.ones(1, L), cache)
measured = sum(b[:, :, :cache.length].numel() * b.element_size() for b in cache.keys + cache.values)
assert measured == 2 * tiny.num_hidden_layers * tiny.num_key_value_heads * tiny.head_dim * 4 * L == 11 * 512
print(f"1. 2B KV cache {per_token:,} B/token (MHA {mha_token:,}); 32k tokens {per_token * 32768 / 2**20:.0f} MiB "
      f"vs {mha_token * 32768 / 2**30:.2f} GiB; k/v projections {(mha_params - kv_params) * 28:,} fewer; "
      f"tiny cache {measured:,} B for {L} tokens")

# 2. L = 2 new queries are positions 3 and 4 of S = 5: query i may see keys j <= i + (S - L) = i + 3, so query 0
#    (position 3) sees keys 0..3 (4 keys) and query 1 (position 4) keys 0..4 (5 keys): 9 allowed pairs of 10.
mask = causal_mask(2, 5)
assert mask.tolist() == [[True, True, True, True, False], [True, True, True, True, True]] and int(mask.sum()) == 9
block = Qwen2DecoderLayer(tiny, 0).eval()
x = torch.randn(1, 6, tiny.hidden_size)
cos, sin = mrope_cos_sin(torch.arange(6).expand(3, 1, 6), tiny.head_dim, tiny.rope_theta, tiny.mrope_section)
changed = x.clone()
changed[0, -1] = torch.randn(tiny.hidden_size)  # a different last token
with torch.no_grad():
    a = block(x, cos, sin, None, backend="eager", causal=True)
    b = block(changed, cos, sin, None, backend="eager", causal=True)
assert torch.equal(a[:, :-1], b[:, :-1]) and not torch.equal(a[:, -1], b[:, -1])
print("2. query 0 sees keys 0-3, query 1 keys 0-4: 9 pairs; a changed last token leaves positions 0-4 bit-identical")

# 3. softmax(8 l) = softmax(l / (1/8)): scaling the logits by 8 at T = 1 is T = 1/8 (exactly, in floating point too:
#    dividing by 1/8 = multiplying by 8). Flat logits give every id a probability near 1/151,936, so the 90% nucleus
#    of top-p alone holds most of the vocabulary; dividing by a smaller T stretches the differences, the likely ids
#    gain mass and the nucleus shrinks. top-k 20 caps it either way (and top-p then keeps most of those 20).
logits = torch.randn(151936, generator=torch.Generator().manual_seed(0)) * 0.1
assert torch.equal(filter_logits(logits * 8, temperature=1.0), filter_logits(logits, temperature=1 / 8))
survivors = lambda T, k: int(torch.isfinite(filter_logits(logits, temperature=T, top_k=k, top_p=0.9)).sum())  # noqa: E731
top_p = {T: survivors(T, 0) for T in (0.7, 0.7 / 8)}
top_k_p = {T: survivors(T, 20) for T in (0.7, 0.7 / 8)}
assert top_p[0.7] > 100_000 > top_p[0.7 / 8] > 20 and all(10 < n <= 20 for n in top_k_p.values())
print(f"3. logits x 8 at T = 1 == T = 1/8 (bit-equal); top-p 0.9 alone keeps {top_p[0.7]:,} ids at T = 0.7, "
      f"{top_p[0.7 / 8]:,} at T = 0.7/8; with top-k 20 first: {top_k_p[0.7]} and {top_k_p[0.7 / 8]}")
