# %% [markdown]
# # 09 · The VLM family side by side — connectors, tiling, masks, the token budget and the training stages
#
# **Papers:** Qwen-VL (Bai et al., 2023) §2.1 *position-aware adapter*; BLIP-2 (Li et al., 2023) §3.1–3.2 and
# Figure 2; InstructBLIP (Dai et al., 2023) §2.2; LLaVA (Liu et al., 2023) §4 and LLaVA-1.5 (Liu et al., 2024) §3.2;
# MiniGPT-4 (Zhu et al., 2023) §3 and MiniGPT-v2 (Chen et al., 2023) §3.1; InternVL 1.5 (Chen et al., 2024) §3.1–3.2
# (InternVL2 keeps the design); Qwen2-VL §2.1 for the comparison.
# **Code:** `qwenvl_study/family/` — `qwen_vl.py`, `blip2.py`, `llava.py`, `minigpt.py`, `internvl.py`, `budget.py`.
# **Reference:** transformers' `Blip2QFormerModel`, `LlavaMultiModalProjector`, `InternVLMultiModalProjector`,
# `InternVLModel.pixel_shuffle`, `get_optimal_tiled_canvas` / `crop_image_to_patches` (got_ocr2, InternVL's image
# processor); the published Qwen-VL `visual.py` (recomputed with `nn.MultiheadAttention`), OpenGVLab/InternVL's
# `dynamic_preprocess`, LAVIS's Q-Former masks.
#
# Every model in the survey is **vision encoder → connector → LLM**. They differ in *how* the connector turns
# patch features into LLM tokens — learned queries (Qwen-VL, BLIP-2), one token per patch (LLaVA), concatenating
# neighbours (MiniGPT-v2, InternVL2, Qwen2-VL) — and therefore in **how many visual tokens** the LLM pays for.
# Each connector here is built small and from scratch, at the papers' shapes, with random weights; two of them —
# Qwen-VL's resampler and InternVL's pixel shuffle — are written out in this notebook. The survey in the course
# notes also covers *how* each model is trained: which parts learn in which stage (section 8).

# %%
from qwenvl_study.course.env import preamble

preamble();

# %%
import numpy as np
import torch
from dataclasses import replace
from PIL import Image

import qwenvl_study as qs
from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.course import figures as viz
from qwenvl_study.family import blip2, budget, internvl, llava, minigpt, qwen_vl
from qwenvl_study.course.samples import sample_path

# %% [markdown]
# ## 1. Seven connectors, one picture
#
# Each row follows one image through a connector at the paper's sizes; the last box is what the LLM receives
# (visual tokens × LLM width). The shapes come from the configs (`connector_chains`);
# `tests/test_family_connectors.py` runs every real-size connector on the **meta device** (shapes without
# memory) and checks that each module ends where its row of the diagram ends.

# %%
viz.draw_connectors();

# %%
# NBVAL_CHECK_OUTPUT
for name, chain in budget.connector_chains().items():
    print(f"{name:22} {chain[0][1]} → ... → {chain[-1][1]}  ({len(chain) - 1} steps)")

# %% [markdown]
# ## 2. Qwen-VL: 256 learned queries, one cross-attention layer
#
# Qwen-VL's adapter is a single cross-attention layer: 256 learnable queries (a 16×16 grid) attend to the
# 1024 ViT-bigG patch features (32×32, width 1664), projected to 4096. **2D absolute sin-cos positions** are
# added to the queries *and* to the keys (not the values). Two details of the published `visual.py`:
# the key positions are the 16×16 query table **bicubically interpolated** to 32×32 (`get_abs_pos`), and the
# first half of each position vector encodes the column, the second half the row (`np.meshgrid(w, h)`).
#
# The parity check recomputes the published forward — sequence-first `nn.MultiheadAttention`, numpy float32
# tables — for our module's weights (a small config: 8×8 patches, 4×4 queries).

# Built here in two steps: the fixed 2D sin-cos table, then the resampler — one multi-head cross-attention with
# `nn.MultiheadAttention`'s parameter names (`in_proj_weight` stacks W_q, W_k, W_v), written out.

# %%
# build: sincos_2d
import math

import torch


def sincos_1d(dim, pos):
    """[M] positions -> [M, dim]: (sin(pos * w_k), cos(pos * w_k)), w_k = 10000^(-k / (dim/2))."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))  # [dim/2]
    angles = pos.to(torch.float64).reshape(-1, 1) * omega[None, :]  # [M, dim/2]
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # [M, dim]


def sincos_2d(dim, grid):
    """[grid*grid, dim] in raster order: the first half encodes the column (x), the second the row (y)."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")  # [G, G] each
    return torch.cat([sincos_1d(dim // 2, cols.reshape(-1)), sincos_1d(dim // 2, rows.reshape(-1))], dim=1).float()


# %%
# build: resampler
import torch.nn.functional as F
from torch import nn


class Resampler(nn.Module):
    """Qwen-VL's adapter (§2.1): Q learned queries cross-attend once to the ViT's patch features."""

    def __init__(self, vit_width, dim, num_queries, num_heads, eps=1e-6):
        super().__init__()
        self.heads, self.side = num_heads, math.isqrt(num_queries)  # queries form a side x side grid
        self.register_buffer("pos_embed", sincos_2d(dim, self.side))  # [Q, D], fixed
        self.query = nn.Parameter(torch.zeros(num_queries, dim))  # [Q, D], learned
        self.kv_proj = nn.Linear(vit_width, dim, bias=False) if vit_width != dim else nn.Identity()
        self.ln_q, self.ln_kv = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.attn = nn.Module()  # nn.MultiheadAttention's parameters: W_q, W_k, W_v stacked, then out_proj
        self.attn.in_proj_weight = nn.Parameter(torch.zeros(3 * dim, dim))
        self.attn.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.attn.out_proj = nn.Linear(dim, dim)

    def forward(self, x):  # x: [B, N, vit_width], the N = g*g patch features of one image each
        b, n, _ = x.shape
        g, h = math.isqrt(n), self.heads
        key_pos = self.pos_embed  # the query table, bicubically resized to the g x g patch grid (get_abs_pos)
        if g != self.side:
            key_pos = self.pos_embed.reshape(1, self.side, self.side, -1).permute(0, 3, 1, 2)  # [1, D, s, s]
            key_pos = F.interpolate(key_pos, size=(g, g), mode="bicubic", align_corners=False)  # [1, D, g, g]
            key_pos = key_pos.permute(0, 2, 3, 1).reshape(n, -1)  # [N, D]
        x = self.ln_kv(self.kv_proj(x))  # [B, N, W] -> [B, N, D]
        queries = (self.ln_q(self.query) + self.pos_embed).expand(b, -1, -1)  # [B, Q, D], + query positions
        w_q, w_k, w_v = self.attn.in_proj_weight.chunk(3)  # 3 x [D, D]
        b_q, b_k, b_v = self.attn.in_proj_bias.chunk(3)
        split = lambda t: t.reshape(b, t.shape[1], h, -1).transpose(1, 2)  # [B, L, D] -> [B, h, L, D/h]
        q = split(F.linear(queries, w_q, b_q))  # [B, h, Q, D/h]
        k = split(F.linear(x + key_pos, w_k, b_k))  # keys carry positions ...
        v = split(F.linear(x, w_v, b_v))  # ... values do not: [B, h, N, D/h]
        weights = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(dim=-1)  # [B, h, Q, N]
        out = (weights @ v).transpose(1, 2).reshape(b, -1, h * q.shape[-1])  # [B, Q, D]
        return self.attn.out_proj(out)  # [B, Q, D]: Q tokens, whatever N


# %% [markdown]
# The checklist: the package's `QwenVLResampler` holds its own random weights; the build loads its state dict
# (strictly: the same names) and must give the same output; the package is checked against the published forward
# (`nn.MultiheadAttention`, numpy tables). A small config: 8×8 patches, 4×4 queries.

# %%
# NBVAL_CHECK_OUTPUT
small = qwen_vl.QwenVLConfig(image_size=56, patch_size=7, vit_width=24, num_queries=16, output_dim=32, head_dim=8)
resampler = qwen_vl.QwenVLResampler(small)
built = Resampler(small.vit_width, small.output_dim, small.num_queries, small.num_heads)
print(built.load_state_dict(resampler.state_dict(), strict=True))
patches = torch.randn(2, 64, 24)
resampler_check = checks.qwen_vl_resampler(patches, resampler=resampler)  # the package vs the published forward
with torch.no_grad():
    build_error = (built(patches) - resampler(patches)).abs().max().item()
print("output", tuple(resampler_check.ours.shape), "— 16 queries out of 64 patches, whatever the input length")
print("build vs package <= 1e-5:", build_error <= 1e-5, "| package vs published <= 1e-5:",
      resampler_check.max_abs_error <= 1e-5)
print("sin-cos table: build == package:", torch.equal(sincos_2d(32, 4), resampler.pos_embed),
      "| package vs published (<= 1e-6):", resampler_check.details["pos_embed"] <= 1e-6)
print("real size: heads", qwen_vl.QWEN_VL.num_heads, "| query grid", qwen_vl.QWEN_VL.query_grid, "x",
      qwen_vl.QWEN_VL.query_grid, "| patches", qwen_vl.QWEN_VL.grid ** 2)

# %%
print(f"measured: max |build - package| = {build_error:.1e}, max |package - published| = "
      f"{resampler_check.max_abs_error:.1e}")

# %% [markdown]
# **How big is ViT-bigG?** Notebook 01's comparison table (and the Qwen-VL paper's Table 1) says 1.9B for
# Qwen-VL's vision encoder; the course notes say OpenCLIP's ViT-bigG is 2.54B. Both are right, about different
# things. Counted on the meta device with transformers' `CLIPModel` at the ViT-bigG-14 sizes (image tower: width
# 1664, 48 blocks, MLP 8192; text tower: width 1280, 32 blocks, vocabulary 49,408):

# %%
# NBVAL_CHECK_OUTPUT
from transformers import CLIPConfig, CLIPModel

bigg = CLIPConfig(vision_config=dict(hidden_size=1664, intermediate_size=8192, num_hidden_layers=48, num_attention_heads=16,
                                     patch_size=14, image_size=224),
                  text_config=dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                                   vocab_size=49408, max_position_embeddings=77), projection_dim=1280)
with torch.device("meta"):
    clip_bigg, qwen_vl_adapter = CLIPModel(bigg), qwen_vl.QwenVLConnector()
count = lambda module: sum(p.numel() for p in module.parameters())
image_tower, text_tower = count(clip_bigg.vision_model), count(clip_bigg.text_model)
print(f"OpenCLIP ViT-bigG-14, whole model (image + text towers, projections): {count(clip_bigg):,}")
print(f"  image tower {image_tower:,} | text tower {text_tower:,} | projections "
      f"{count(clip_bigg.visual_projection) + count(clip_bigg.text_projection):,}")
print(f"Qwen-VL keeps the image tower ({image_tower / 1e9:.2f}B) and adds its adapter: resampler "
      f"{count(qwen_vl_adapter.attn_pool):,} + ln_post and proj = {count(qwen_vl_adapter):,}")

# %% [markdown]
# So **2.54B is the whole OpenCLIP ViT-bigG-14 CLIP model** — image tower 1.84B plus the 0.69B text tower — and
# **1.9B is what Qwen-VL uses of it**: the 1.84B image tower (at 448 px; rounded up in the paper, which lists the
# adapter separately as 0.08B — our resampler at full size is 75.0M). The text tower is trained by CLIP's loss
# (lesson 10) and then thrown away: a VLM keeps only the image side.

# %% [markdown]
# The price of a fixed query count: every image — a 224² icon or a 4K screenshot — is resized to 448×448 and
# becomes exactly 256 tokens. Qwen2-VL drops the resampler for native resolution and a 2×2 merger (section 6).
#
# ## 3. BLIP-2's Q-Former and its three masks
#
# The Q-Former is a BERT-base (12 blocks, 768 wide) whose input starts with **32 learned queries**. Its
# self-attention is shared by the queries and (optionally) text; the queries — and only they — also
# **cross-attend to the frozen image features** in every other block (0, 2, 4, …). Out come 32 × 768.
# Pre-training optimises three objectives at once, each with its own self-attention mask (Figure 2 of the
# paper; LAVIS builds them as below):
#
# - **ITC** (contrastive): queries and text must not see each other (LAVIS runs them in separate passes);
# - **ITM** (matching): bi-directional — every token sees every token; a binary classifier on each query's
#   output says "matched or not", and the negatives are **hard negatives**: wrong texts of the batch sampled in
#   proportion to their ITC similarity, so the confusable ones are picked most often (the mining of ALBEF / BLIP);
# - **ITG** (generation): queries see queries; a text token sees all queries and the text up to itself. The
#   first text token is a **[DEC]** token instead of [CLS], signalling the decoding task.
#
# The image features are the frozen ViT's **penultimate** layer (BLIP-2 drops the last layer: it worked slightly
# better). Stage 2 then puts the trained Q-Former in front of a frozen LLM (section 8).
#
# InstructBLIP feeds the **instruction** into the Q-Former: instruction tokens join the queries'
# self-attention (bi-directional), so the 32 queries extract what the instruction asks for — *instruction-aware*
# visual features, learned during instruction tuning (the LLM also reads the instruction).

# %%
viz.draw_qformer_masks(4, 4);

# %%
# NBVAL_CHECK_OUTPUT
for kind in blip2.MASK_KINDS:
    print(f"{kind:8}", blip2.qformer_mask(kind, 2, 2).int().tolist())

# %% [markdown]
# Read the rows: with 2 queries and 2 text tokens, ITG's row for T1 is `[1, 1, 1, 0]` — both queries and
# itself, not the future T2. The tests pin these matrices and check properties for all sizes.
#
# Our Q-Former mirrors transformers' `Blip2QFormerModel` module by module, so its state dict loads
# strictly into ours; the same inputs under each of our masks (passed to transformers as a 4D mask) give the
# same outputs. At the paper's size: 257 × 1024 image features in, 32 × 768 out (section 1).

# %%
# NBVAL_CHECK_OUTPUT
tiny = blip2.QFormerConfig(num_query_tokens=4, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                           intermediate_size=64, encoder_hidden_size=24)
hf_qformer = ref.hf_qformer(tiny)
our_qformer = blip2.QFormerModel(tiny)
print(our_qformer.load_state_dict(hf_qformer.state_dict(), strict=True))
embeds, image = torch.randn(2, 4 + 3, 32), torch.randn(2, 5, 24)
errors = {}
with torch.no_grad():
    for kind in blip2.MASK_KINDS:
        mask = blip2.qformer_mask(kind, 4, 3)
        errors[kind] = checks.qformer(embeds, image, mask, 4, pair=(our_qformer, hf_qformer)).max_abs_error
        print(f"{kind:8} max |ours - Blip2QFormerModel| <= 1e-5: {errors[kind] <= 1e-5}")

# %%
print({k: f"{v:.1e}" for k, v in errors.items()})

# %% [markdown]
# ## 4. LLaVA, LLaVA-1.5 and MiniGPT: projectors
#
# LLaVA keeps **every patch**: CLIP ViT-L/14 features (CLS dropped) go through one linear layer (LLaVA) or a
# 2-layer GELU MLP (LLaVA-1.5, at 336 px → 24×24 = **576** tokens). MiniGPT-4 puts one linear layer on top of
# BLIP-2's Q-Former (32 tokens). MiniGPT-v2 drops the Q-Former and **concatenates 4 adjacent tokens** of the
# ViT-g output (1024 → 256 tokens of 4 × 1408 = 5632) before its linear layer — "adjacent" meaning 4
# *consecutive* tokens in raster order (`view(bs, pn // 4, hs * 4)` in the reference code), a 1×4 strip, not a
# 2×2 square.

# %%
# NBVAL_CHECK_OUTPUT
cfg = replace(llava.LLAVA_1_5_7B, vision_hidden_size=16, text_hidden_size=24)
hf_proj = ref.hf_llava_projector(cfg)
our_proj = llava.LlavaMultiModalProjector(cfg)
print(our_proj.load_state_dict(hf_proj.state_dict(), strict=True))
feats = torch.randn(2, 9, 16)
print("LLaVA-1.5 MLP: max |ours - LlavaMultiModalProjector| <= 1e-5:",
      checks.llava_projector(feats, pair=(our_proj, hf_proj)).max_abs_error <= 1e-5)
print("LLaVA-1.5 tokens at 336 px:", llava.LLAVA_1_5_7B.num_patches, "| LLaVA at 224 px:", llava.LLAVA_7B.num_patches)
idx = torch.arange(8).reshape(1, 8, 1).float()
print("MiniGPT-v2 groups of patch indices:", minigpt.concat_adjacent_tokens(idx).reshape(-1, 4).long().tolist())

# %% [markdown]
# Three ways to put 4 patches into one token — run on patch indices of a 4×8 grid (the colour is the output
# token, `·n` the slot of the patch in the concatenated channels). Qwen2-VL's merger and InternVL's pixel shuffle
# both take a **2×2 square**, and in the same channel order; MiniGPT-v2 takes a **1×4 strip** of a row.

# %%
viz.draw_token_grouping(4, 8);

# %% [markdown]
# ## 5. InternVL2: dynamic high resolution
#
# InternVL2 cuts an image into **448×448 tiles** (each tile: InternViT → 1024 patches → pixel shuffle → **256**
# tokens) and adds a 448×448 **thumbnail** of the whole image when there is more than one tile. The published
# `dynamic_preprocess`:
#
# 1. candidates: every grid (cols, rows) with `min_num ≤ cols·rows ≤ max_num` (1..12 by default), **sorted by area**;
# 2. pick the grid whose `cols/rows` is closest to the image's `width/height`; on an exact tie, a later (bigger)
#    grid wins when `width·height > 0.5 · 448² · cols·rows` — a large image takes more tiles, a small one fewer;
# 3. resize to (cols·448, rows·448), cut the tiles row by row, append the thumbnail if there is more than one.
#
# A worked tie: 16:9 is equally far (0.222) from 2/1 and 4/2. For 1280×720, 921,600 > 0.5·448²·8 = 802,816, so
# (4, 2) wins: 8 tiles + thumbnail. For 640×360 (230,400 pixels) the smaller (2, 1) stays.

# %%
# NBVAL_CHECK_OUTPUT
for w, h in [(1280, 720), (640, 360), (1920, 1080), (2000, 200), (224, 224), (640, 480)]:
    grid = qs.internvl_tile_grid(w, h)
    n = internvl.internvl_num_tiles(w, h)
    print(f"{w}x{h}: tiles {grid} — transformers {ref.hf_tile_grid(w, h)} — {n} ViT input{'s' if n > 1 else ''} "
          f"→ {internvl.internvl_image_tokens(w, h):,} tokens")

# %% [markdown]
# transformers implements the same rule (`get_optimal_tiled_canvas`) — with one difference in the *order* of
# candidates of equal area: the published code sorts a Python `set`, transformers a list built column by
# column. A tie between two equal-area grids is then broken differently. With the default `min_num=1` such a
# tie never wins (a sweep below finds no difference); with `min_num ≥ 4` it can. We follow the published
# algorithm; the tests pin both answers.

# %%
# NBVAL_CHECK_OUTPUT
sides = range(40, 4000, 211)
mismatch = sum(not checks.tile_grid(w, h, max_num=m).ok for w in sides for h in sides for m in range(1, 13))
print(f"min_num=1, {len(sides) ** 2 * 12} (size, max_num) cases: {mismatch} differences from transformers")
print("equal-area candidates, min_num=max_num=4:", internvl.candidate_grids(4, 4), "(published order)")
print("5x2 image with exactly 4 tiles: published", qs.internvl_tile_grid(5, 2, min_num=4, max_num=4),
      "| transformers", ref.hf_tile_grid(5, 2, min_num=4, max_num=4))

# %% [markdown]
# The tiles drawn over the sample image (640×480 → 4:3 → a 4×3 grid: a small image is **up-sampled** to 12
# tiles), a wide panorama and a tall page (tile numbers on white badges):

# %%
sample = Image.open(sample_path()).convert("RGB")
wide = Image.new("RGB", (1920, 480))
for k in range(3):
    wide.paste(sample, (640 * k, 0))
tall = Image.new("RGB", (640, 1440))
for k in range(3):
    tall.paste(sample, (0, 480 * k))
for img in (sample, wide, tall):
    viz.draw_internvl_tiles(img)

# %% [markdown]
# The tiles are pixel-exact with transformers' PIL `crop_image_to_patches` (both bicubic); then, per tile,
# **pixel shuffle** with scale 0.5 turns 32×32 patch tokens of width C into 16×16 tokens of width 4C:
# `out[i, j] = x[2i, 2j] | x[2i, 2j+1] | x[2i+1, 2j] | x[2i+1, 2j+1]`. Built with one reshape and one permute:

# %%
# build: pixel_shuffle
def pixel_shuffle(x, k=2):
    """InternVL's pixel shuffle (scale 1/k), channels last: [B, H, W, C] -> [B, H/k, W/k, k*k*C].

    Output token (i, j) is its k x k block concatenated in raster order: slot a*k + b holds x[k*i + a, k*j + b]."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // k, k, w // k, k, c)  # [B, H/k, a, W/k, b, C]: split each side into (block, offset)
    x = x.permute(0, 1, 3, 2, 4, 5)  # -> [B, H/k, W/k, a, b, C]: the k x k offsets next to the channels
    return x.reshape(b, h // k, w // k, k * k * c)  # -> [B, H/k, W/k, k*k*C]


# %% [markdown]
# **What pixel shuffle does to resolution.** The course notes say pixel shuffle "reconstructs the features
# spatially and *raises* their resolution". It does the opposite to the token grid: 32×32 tokens become 16×16
# tokens — half the spatial resolution per side, a quarter of the tokens — and each token gets 4× the channels.
# Nothing is lost (every value is still there, moved, as the inverse shows), but the LLM now sees one token per
# 28×28 pixels instead of per 14×14. The name comes from super-resolution (Shi et al., 2016), where
# `nn.PixelShuffle` goes the other way — channels into space, [C·4, H, W] → [C, 2H, 2W], resolution up; InternVL
# uses the inverse direction (space-to-depth, `nn.PixelUnshuffle`, up to the order of the channels). The shapes:

# %%
# NBVAL_CHECK_OUTPUT
tile = torch.randn(1, 32, 32, 1024)  # one 448 tile after the ViT: 32 x 32 tokens of InternViT-300M's width
shuffled = pixel_shuffle(tile)
print(f"InternVL pixel shuffle: {tuple(tile.shape)} -> {tuple(shuffled.shape)}: tokens {32 * 32} -> {16 * 16}, "
      f"values {tile.numel():,} -> {shuffled.numel():,}, same values: {torch.equal(tile.flatten().sort().values, shuffled.flatten().sort().values)}")
chw = tile.permute(0, 3, 1, 2)  # channels first, as torch's layers want: [1, 1024, 32, 32]
print("torch nn.PixelUnshuffle(2) (space -> channels):", tuple(nn.PixelUnshuffle(2)(chw).shape),
      "| nn.PixelShuffle(2) (channels -> space, super-resolution):", tuple(nn.PixelShuffle(2)(chw).shape))
unshuffled = nn.PixelUnshuffle(2)(chw).permute(0, 2, 3, 1)  # [1, 16, 16, 4096], torch's channel order
print("each InternVL token holds the same 4096 values as torch's PixelUnshuffle token:",
      torch.equal(unshuffled.sort(dim=-1).values, shuffled.sort(dim=-1).values),
      "| in the same order:", torch.equal(unshuffled, shuffled))

# %% [markdown]
# The checklist for the build: equal to the package's `pixel_shuffle` and to transformers'
# `InternVLModel.pixel_shuffle`, bit for bit, and exactly inverted by `pixel_unshuffle`. The MLP projector
# (LayerNorm → Linear → GELU → Linear) matches `InternVLMultiModalProjector`.

# %%
# NBVAL_CHECK_OUTPUT
tiles = internvl.dynamic_preprocess(sample)
hf_tiles = ref.hf_crop_to_patches(sample)
print("sample tiles:", len(tiles), "— equal to transformers' crops:",
      len(tiles) == len(hf_tiles) and all(np.array_equal(np.asarray(a), b) for a, b in zip(tiles, hf_tiles)))
feat = torch.randn(2, 32, 32, 64)
shuffle_check = checks.pixel_shuffle(feat)  # the package vs transformers
print("pixel shuffle", tuple(feat.shape), "→", tuple(shuffle_check.ours.shape),
      "| build == package:", torch.equal(pixel_shuffle(feat), shuffle_check.ours),
      "| package == InternVLModel.pixel_shuffle:", shuffle_check.ok,
      "| inverse exact:", shuffle_check.details["inverse_exact"])
icfg = replace(internvl.INTERNVL2_8B, vit_hidden_size=8, llm_hidden_size=24)
hf_mlp, our_mlp = ref.hf_internvl_projector(icfg), internvl.InternVLMultiModalProjector(icfg)
our_mlp.load_state_dict(hf_mlp.state_dict(), strict=True)
z = torch.randn(2, 9, icfg.shuffled_dim)
with torch.no_grad():
    print("projector: max |ours - InternVLMultiModalProjector| <= 1e-5:", (our_mlp(z) - hf_mlp(z)).abs().max().item() <= 1e-5)

# %% [markdown]
# ## 6. The token budget
#
# The same inputs through each architecture: how many **visual tokens** reach the LLM (wrapper tokens such as
# `<|vision_start|>` left out for everyone). Assumptions, all in `budget.py`:
#
# - Qwen-VL, BLIP-2 and LLaVA-1.5 resize every image to a fixed square (448², 224², 336²) → 256 / 32 / 576, and
#   take **no video** (`—`; `token_budget(video_as_frames=True)` counts the 2 fps frames as separate images instead);
# - InternVL2: 256 × (tiles + thumbnail), max_num 12; video as in its model cards: 8 frames, one tile each;
# - Qwen2-VL: `count_image_tokens` (transformers' rule, published bounds 3136 … 12,845,056 pixels); the
#   1-minute video (1280×720, 30 fps) with qwen-vl-utils' budget: 2 fps → 120 frames, per-frame pixels capped
#   at 24576·28²/120·2 → 420×728 per frame, two frames per temporal patch → 60 × 15 × 26.
#
# Every cell is re-derived from the references in `tests/test_family_budget.py`.

# %%
# NBVAL_CHECK_OUTPUT
table = qs.token_budget()
print(qs.format_budget(table))

# %%
viz.plot_token_budget(table);

# %% [markdown]
# Reading the table:
#
# - the fixed-size connectors cost the same for an icon and a 4K screenshot — cheap, but a 3840×2160 page is
#   squeezed into 448² (Qwen-VL) or 336² (LLaVA-1.5) pixels;
# - **InternVL2** buys resolution with tiles: up to 13 × 256 = 3,328 tokens, whatever the image's true size
#   (the 640×480 sample is *up-sampled* to 12 tiles), and a strip gets 10 tiles + thumbnail;
# - **Qwen2-VL** pays per 28×28 pixel square: 64 tokens for 224², 2,691 for 1080p, 10,549 for 4K — tokens
#   follow the pixels, with no tiling seams and no fixed square.
#
# ## 7. Side by side with Qwen2-VL's 2×2 merger
#
# | model | how patches become LLM tokens | tokens for one 448² image |
# |---|---|---|
# | Qwen-VL | 256 learned queries, one cross-attention | 256 |
# | BLIP-2 | 32 learned queries, 12-block Q-Former | 32 |
# | LLaVA-1.5 | one token per patch, 2-layer MLP | 576 (at 336²) |
# | MiniGPT-v2 | concatenate 4 consecutive tokens (1×4), Linear | 256 |
# | InternVL2 | pixel shuffle 2×2 per 448 tile, MLP; tiles + thumbnail | 256 (one tile) |
# | Qwen2-VL | merge 2×2 neighbours at native resolution, MLP | 256 |
#
# InternVL2's pixel shuffle and Qwen2-VL's merger do the same thing to a 448² image — 2×2 squares, same channel
# order, 1024 → 256 — the difference is upstream: Qwen2-VL's ViT sees the image at its own resolution (2D-RoPE,
# no tiles), InternVL2's sees fixed 448² crops.

# %%
# NBVAL_CHECK_OUTPUT
print("Qwen2-VL, 448x448:", qs.count_image_tokens(448, 448, special_tokens=False), "tokens | InternVL2:",
      internvl.internvl_image_tokens(448, 448), "| Qwen-VL:", qwen_vl.QWEN_VL.num_queries, "| MiniGPT-v2:",
      minigpt.MINIGPT_V2.num_patches // minigpt.MINIGPT_V2.concat)

# %% [markdown]
# ## 8. How each family is trained: which parts learn in which stage
#
# Every model above is trained in **stages**, and the stages differ mostly in what is frozen. The table follows
# the course notes' survey and the papers (BLIP-2 §3.2–3.3, InstructBLIP, Qwen-VL §3, LLaVA §4.2, MiniGPT-4,
# MiniGPT-v2, Qwen2-VL §2.2; InternVL2 after the course notes). It is the lesson's data, written here; the figure
# only draws it.

# %%
TRAINING_STAGES = [
    ("BLIP-2", "1 · representation learning: ITC + ITM (hard negatives) + ITG ([DEC] token)",
     [("frozen", "ViT-L/14 or ViT-g/14, penultimate-layer features"), ("trained", "Q-Former (32 queries)"),
      ("absent", "no LLM yet")]),
    ("BLIP-2", "2 · generative learning: LM loss (OPT) or prefix-LM loss (FlanT5)",
     [("frozen", "ViT"), ("trained", "Q-Former + FC projection"), ("frozen", "OPT or FlanT5")]),
    ("InstructBLIP", "instruction tuning, from BLIP-2's two stages",
     [("frozen", "ViT-g/14"), ("trained", "Q-Former reads the instruction (instruction-aware) + FC"),
      ("frozen", "FlanT5 or Vicuna")]),
    ("Qwen-VL", "1 · pre-training, 224², 1.4B image-text pairs",
     [("trained", "ViT-bigG (OpenCLIP init)"), ("trained", "resampler (256 queries)"), ("frozen", "Qwen-7B")]),
    ("Qwen-VL", "2 · multi-task pre-training, 448²",
     [("trained", "ViT-bigG"), ("trained", "resampler"), ("trained", "Qwen-7B")]),
    ("Qwen-VL", "3 · instruction tuning (Qwen-VL-Chat), 448²",
     [("frozen", "ViT-bigG"), ("trained", "resampler"), ("trained", "Qwen-7B")]),
    ("LLaVA", "1 · feature alignment (595K image-caption pairs)",
     [("frozen", "CLIP ViT-L/14"), ("trained", "projection (Linear; MLP in LLaVA-1.5)"), ("frozen", "Vicuna")]),
    ("LLaVA", "2 · end-to-end instruction tuning",
     [("frozen", "CLIP ViT-L/14"), ("trained", "projection"), ("trained", "Vicuna")]),
    ("MiniGPT-4", "1 · pre-training (about 5M image-text pairs)",
     [("frozen", "EVA ViT-g/14"), ("partial", "BLIP-2 Q-Former frozen, Linear trained"), ("frozen", "Vicuna")]),
    ("MiniGPT-4", "2 · fine-tuning (3.5K curated descriptions)",
     [("frozen", "EVA ViT-g/14"), ("partial", "Q-Former frozen, Linear trained"), ("frozen", "Vicuna")]),
    ("MiniGPT-v2", "1 · pre-training (weakly labelled + fine-grained data)",
     [("frozen", "EVA ViT"), ("trained", "Linear over 4 concatenated tokens"), ("lora", "LLaMA-2-chat 7B (LoRA)")]),
    ("MiniGPT-v2", "2 · multi-task training (fine-grained data only)",
     [("frozen", "EVA ViT"), ("trained", "Linear"), ("lora", "LLaMA-2-chat (LoRA)")]),
    ("MiniGPT-v2", "3 · multi-modal instruction tuning",
     [("frozen", "EVA ViT"), ("trained", "Linear"), ("lora", "LLaMA-2-chat (LoRA)")]),
    ("InternVL2", "1 · MLP warm-up, resolution raised step by step",
     [("frozen", "InternViT"), ("trained", "MLP projector"), ("frozen", "LLM (InternLM2.5 in the 8B)")]),
    ("InternVL2", "2 · joint fine-tuning (instruction data)",
     [("trained", "InternViT"), ("trained", "MLP projector"), ("trained", "LLM")]),
    ("Qwen2-VL", "1 · ViT pre-training (about 600B tokens)",
     [("trained", "ViT, 665M-699M by size (DFN init)"), ("trained", "2x2 merger (part of visual.*)"), ("frozen", "Qwen2")]),
    ("Qwen2-VL", "2 · all parameters (about 800B more tokens)",
     [("trained", "ViT"), ("trained", "merger"), ("trained", "Qwen2")]),
    ("Qwen2-VL", "3 · instruction tuning (ChatML data)",
     [("frozen", "ViT"), ("frozen", "merger, with the ViT (*)"), ("trained", "Qwen2")]),
]
viz.draw_training_stages(TRAINING_STAGES, title="Which parts each training stage trains (rows: model · stage)");

# %% [markdown]
# Reading the table:
#
# - **The LLM is protected first.** Every family starts with the LLM frozen (or, for BLIP-2's first stage, not
#   attached at all): the new connector is trained to *speak the LLM's language* before the LLM may move. LLaVA's
#   stage 1 trains only the projection ("feature alignment"); MiniGPT-4 trains nothing else in either stage.
# - **BLIP-2 and InstructBLIP never unfreeze the ViT or the LLM**: all the learning is in the 188M-parameter
#   Q-Former (and its FC layer). InstructBLIP's change is what the Q-Former *reads* — the instruction — not what
#   it trains.
# - **The Qwen line trains the vision side hardest.** Qwen-VL stage 1 trains the ViT and the resampler at 224²,
#   stage 2 everything at 448², stage 3 freezes the ViT; Qwen2-VL repeats the pattern (§2.2: ViT first, then all,
#   then the LLM only) at native resolution. (*) The paper names only the ViT and the LLM for stage 3; the merger
#   sits in `visual.*` and is drawn with the ViT, as lesson 11's course model does.
# - **Resolution grows with the stages.** Qwen-VL moves from 224² to 448² in stage 2. InternVL2, in the course
#   notes, starts its first stage at low resolution and raises it; in InternVL's tiling the resolution an image
#   gets is its tile budget `max_num` (InternVL 1.5 trains with up to 12 tiles and tests up to 40, 4K):

# %%
# NBVAL_CHECK_OUTPUT
print("a 3840x2160 (4K) image under a growing tile budget:")
for m in (1, 2, 6, 12, 24, 40):
    cols, rows = qs.internvl_tile_grid(3840, 2160, max_num=m)
    print(f"  max_num {m:>2}: {cols}x{rows} tiles → the ViT sees it at {cols * 448}x{rows * 448} "
          f"→ {internvl.internvl_image_tokens(3840, 2160, max_num=m):,} tokens")

# %% [markdown]
# ## Exercises
#
# By hand first, then in code. Solutions (each asserting its answer, run in CI by `tests/test_solutions.py`):
# `notebooks/solutions/09_vlm_family.py`.
#
# ### Exercise 9.1 — pixel shuffle at InternViT-6B's width
# InternVL 1.5 / InternVL2-76B use InternViT-6B (width 3200). For one 448 tile the ViT outputs 1025 tokens
# (CLS + 32×32). Write the shapes after dropping CLS, after pixel shuffle with scale 0.5, and with scale 0.25.
# How many values does each shape hold? Check with the build `pixel_shuffle` on a tensor of the first shape.
#
# ### Exercise 9.2 — what LLaVA trains in stage 1
# LLaVA's stage 1 trains only the projection. Count its parameters by hand for LLaVA (one Linear, 1024 → 4096, with
# bias) and for LLaVA-1.5 (Linear 1024 → 4096, GELU, Linear 4096 → 4096, biases). What fraction of a 7B model is
# that? Check with `llava.LlavaLinearProjector` / `llava.LlavaMultiModalProjector` at their real configs.
#
# ### Exercise 9.3 — the resampler at 224² and at 448²
# In Qwen-VL's stage 1 (224²) the ViT gives (224/14)² patches; in stage 2 (448²) (448/14)². How many tokens does
# the resampler output in each, and by what factor does it compress? How many query-key scores does one head
# compute in each? Check with the build `Resampler` (a small config with 16 queries: 4×4 and 8×8 patch grids).
#
# ### Exercise 9.4 — ViT-bigG by hand
# A transformer block of width w with an MLP of width m has about 4w² (attention) + 2wm (MLP) weights. Estimate the
# image tower (w = 1664, m = 8192, 48 blocks) and the text tower (w = 1280, m = 5120, 32 blocks, plus a 49,408 ×
# 1280 token embedding). Compare with the measured 1,842,777,344 and 693,021,440, and with 2.54B.
