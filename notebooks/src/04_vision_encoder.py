# %% [markdown]
# # 04 · Inside the vision encoder — a 665M ViT over packed, variable-length sequences
#
# **Paper:** Qwen2-VL (Wang et al., 2024), §2.1 *Model Architecture* (a ViT with 2D-RoPE, then an MLP
# that merges 2×2 neighbouring patches), *Naive Dynamic Resolution* (images of any size, packed into one
# sequence) and *Unified image and video understanding* (2-frame tubes).
# **Code:** `qwenvl_study/vision.py`, `qwenvl_study/attention.py` (reusing `patching.py` and `rope.py`).
# **Reference:** transformers' `Qwen2VisionTransformerPretrainedModel` (`modeling_qwen2_vl.py`) and
# `vision_utils.get_vision_cu_seqlens`.
#
# **665M, not 675M.** The paper (Table 1), and the course notes after it, give one "675M" ViT for every size. The
# 32 blocks are the same in 2B, 7B and 72B, but the merger's last Linear outputs the *LLM's* width (1536 / 3584 / 8192), so the towers
# have 665.3M / 675.8M / 699.4M parameters (§1 counts them): the paper's figure is the 7B's tower.
#
# Lessons 01–03 turned pixels into rows of 1176 numbers and gave every row a (row, column). This
# lesson runs those rows through the tower: Conv3d patch embedding → 32 pre-norm transformer blocks
# (fused qkv, 2D-RoPE on q and k, attention **only inside each image / temporal slice**, QuickGELU
# MLP) → the PatchMerger that turns each 2×2 group of patches into one LLM token of width 1536 (2B).
# §5 writes each of these pieces in the open (the build cells, `# build: ...`) and shows they equal the
# package and transformers holding the *same* weights.

# %%
from qwenvl_study.course.env import preamble

preamble();

# %%
import dataclasses

import numpy as np
import torch
from PIL import Image

import qwenvl_study as qs
from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.course import figures as viz
from qwenvl_study import attention, rope
from qwenvl_study.attention import available_backends, resolve_backend, segment_lengths
from qwenvl_study.patching import normalize, patchify
from qwenvl_study.course.samples import sample_path
from qwenvl_study.vision import VisionTransformer

# %% [markdown]
# ## 1. The module tree: transformers 5.x's print, ours, and the course lesson's
#
# The course lesson prints the loaded model (`print(model)`, the course notes' deployment section). Here
# is the `visual` part as **transformers 5.x** prints it today, built on the *meta* device (shapes only,
# no memory) at the 2B widths:

# %%
hf_visual = ref.hf_vision_model(qs.QWEN2_VL_2B.vision, meta=True)  # transformers' tower, shapes only
print(hf_visual)

# %% [markdown]
# Our tower has the same modules under the same names — so the checkpoint's `visual.*` tensors load with the
# prefix stripped — and differs only in its class names:

# %%
# NBVAL_CHECK_OUTPUT
with torch.device("meta"):
    vit = VisionTransformer(qs.QWEN2_VL_2B.vision)
ours_lines, hf_lines = str(vit).splitlines(), str(hf_visual).splitlines()
print(f"{len(ours_lines)} lines each; the lines that differ:")
for mine, theirs in zip(ours_lines, hf_lines):
    if mine != theirs:
        print(f"  ours: {mine.strip():46s} transformers 5.x: {theirs.strip()}")

# %% [markdown]
# **The course notes' print differs from 5.x's** because it came from transformers 4.45 (torch 2.3) loaded
# with `attn_implementation="flash_attention_2"`: the attention class was then chosen at load time and shows
# in the print (`VisionFlashAttention2` in every block, `Qwen2VLFlashAttention2` in the LLM); 5.x has one
# `VisionAttention` class and picks the kernel per call from `config._attn_implementation`, so the print no
# longer tells. The rotary module was `VisionRotaryEmbedding` (5.x: `Qwen2VLVisionRotaryEmbedding`); torch 2.3's
# LayerNorm repr had no `bias=True`; and the tower sat at the top (`(visual)`), where 5.x nests it as
# `(model): Qwen2VLModel → (visual)` — the checkpoint's tensor names stay `visual.*` either way. Lesson 05 shows
# the LLM side. The widths and the tree are the same in all three prints; the parameters:

# %%
# NBVAL_CHECK_OUTPUT
ours_shapes = {k: tuple(v.shape) for k, v in vit.state_dict().items()}
hf_shapes = {k: tuple(v.shape) for k, v in hf_visual.state_dict().items()}
n_params = sum(p.numel() for p in vit.parameters())
print(f"parameters: {n_params:,} (transformers: {sum(p.numel() for p in hf_visual.parameters()):,}; "
      f"count_parameters: {qs.count_parameters(qs.QWEN2_VL_2B).vision:,})")
print(f"state-dict tensors: {len(ours_shapes)}; same names and shapes as transformers' visual.*: {ours_shapes == hf_shapes}")
print("persistent buffers (nothing computed is stored):", len(list(vit.buffers())))
for config in (qs.QWEN2_VL_2B, qs.QWEN2_VL_7B, qs.QWEN2_VL_72B):
    print(f"{config.name:22s} ViT {qs.count_parameters(config).vision:>12,} (merger → LLM width {config.text.hidden_size})")

# %% [markdown]
# ## 2. One image, stage by stage
#
# The real widths (1280, 16 heads × 80, MLP 5120, merger 5120 → 1536) with 2 of the 32 blocks —
# every block has the same shapes, and the full 32-block parity runs in the tests (writing 2.7 GB
# of random fp32 weights does not fit this notebook's time budget). Random weights, std 0.02.

# %%
cfg = dataclasses.replace(qs.QWEN2_VL_2B.vision, depth=2)
model = VisionTransformer.random(cfg, attn_backend="eager")
image = Image.open(sample_path()).convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
pixel_values, grid = qs.preprocess_image(image)

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    x = model.patch_embed(pixel_values)  # Conv3d, kernel = stride = (2, 14, 14)
    pos = rope.vision_position_ids(grid)  # (row, col) of every patch
    cos, sin = model.rotary_pos_emb(grid)  # 2D-RoPE tables, computed once, shared by all blocks
    cu = attention.cu_seqlens_from_grid(grid)  # segment boundaries: one image = one segment
    blk = model.blocks[0]
    q, k, v = blk.attn.qkv(blk.norm1(x)).view(len(x), 3, 16, 80).unbind(1)
    h = x
    for block in model.blocks:
        h = block(h, cu, cos, sin)
    merged = model.merger(h)
stages = [("pixel_values (rows of 2x3x14x14 tubes)", pixel_values), ("grid_thw", grid),
          ("patch_embed", x), ("position ids (row, col)", pos), ("cos / sin", cos), ("cu_seqlens", cu),
          ("q, k, v per head (each)", q), ("after the blocks", h), ("merger → LLM tokens", merged)]
for name, t in stages:
    print(f"{name:40s} {tuple(t.shape)}")
print("merged tokens = patches / 4:", merged.shape[0] == pixel_values.shape[0] // 4)

# %% [markdown]
# Inside a block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))` (LayerNorm eps 1e-6). The
# attention projects once to 3·1280, splits into q, k, v of 16 heads × 80, rotates q and k by the
# patch's row (first half of each head's frequencies) and column (second half) — lesson 02 — and
# attends within the segment. The merger takes the LayerNorm'd rows **four at a time**: patchify
# put each 2×2 group on 4 consecutive rows (lesson 01), so `view(-1, 5120)` *is* the spatial merge.

# %% [markdown]
# ## 3. Images and videos share one path: 3D tubes of 2 frames
#
# The Conv3d's kernel spans 2 frames, so a video is cut into *temporal slices* of 2 frames, and an
# image is simply **two identical frames** (one slice). A 4-frame clip is 2 slices; each 14×14 square
# across its 2 frames is one tube = one row of 1176 numbers.

# %%
viz.draw_two_frames(sample_path());

# %%
frames = viz.toy_video(num_frames=4, height=112, width=112)  # [T, H, W, 3] uint8
viz.draw_temporal_slices(frames);

# %%
# NBVAL_CHECK_OUTPUT
video_values, video_grid = patchify(torch.from_numpy(normalize(frames)).permute(0, 3, 1, 2))  # [T, 3, H, W]
print("4 frames of 112x112 → grid (t, h, w) =", video_grid, "→ rows", tuple(video_values.shape))
tube = pixel_values.view(-1, 3, 2, 14 * 14)  # [N, C, T, P*P]
print("an image's tubes hold two identical frames:", torch.equal(tube[:, :, 0], tube[:, :, 1]))
vtube = video_values.view(-1, 3, 2, 14 * 14)
print("a moving video's tubes do not:", not torch.equal(vtube[:, :, 0], vtube[:, :, 1]))

# %% [markdown]
# **Why 1176, and why a Linear.** One tube holds 3 colour channels × 2 frames × 14 × 14 pixels = **1176**
# numbers, stored as one row (in that C, T, P, P order). The Conv3d's kernel *is* the whole tube and its stride
# too (kernel = stride = (2, 14, 14)): it never slides, so each output is one dot product of a row with each of
# the 1280 kernels — a `Linear(1176, 1280, bias=False)` whose weight is the kernel flattened in the same order.
# The first build cell writes it that way:

# %%
# build: patch_embed
import torch
from torch import nn


class PatchEmbed(nn.Module):
    """Conv3d(3, dim, kernel = stride = (2, 14, 14)) on one tube is one dot product: a Linear over 1176 values."""

    def __init__(self, dim, in_chans=3, frames=2, patch=14):
        super().__init__()
        self.proj = nn.Linear(in_chans * frames * patch * patch, dim, bias=False)  # 3 * 2 * 14 * 14 = 1176 inputs

    def forward(self, pixel_values):
        return self.proj(pixel_values)  # [N, 1176] -> [N, dim]

# %% [markdown]
# ## 4. Packing: several images and a video in one sequence
#
# From here on a narrower tower does the work (width 320: 4 heads of 80 as in the real one, 2 blocks,
# merger → 384), so every check runs in a blink; the tests run the same checks on the real 2B tower.
#
# Images of different sizes are concatenated row-wise and described by `grid_thw`. Attention must not
# cross from one image to another, so the sequence is cut into segments by `cu_seqlens` (cumulative
# lengths). As in the reference (`repeat_interleave(h*w, t)`), **each temporal slice of a video is
# its own segment**: inside the ViT, slice 0 of a video never sees slice 1 — time mixes only inside
# a 2-frame tube (the Conv3d) and later in the LLM (M-RoPE, lesson 03).

# %%
narrow = qs.VisionConfig(depth=2, embed_dim=320, num_heads=4, hidden_size=384)
model = VisionTransformer.random(narrow, attn_backend="eager")
small = Image.open(sample_path()).convert("RGB").resize((168, 112), Image.Resampling.BICUBIC)
small_values, small_grid = qs.preprocess_image(small)
packed_values = torch.cat([pixel_values, video_values, small_values])
packed_grid = torch.cat([grid, torch.tensor([video_grid]), small_grid])
viz.draw_block_mask(packed_grid);

# %%
# NBVAL_CHECK_OUTPUT
packed_cu = attention.cu_seqlens_from_grid(packed_grid)
print("grid_thw:", packed_grid.tolist())
print("cu_seqlens:", packed_cu.tolist(), "→ segment lengths", segment_lengths(packed_cu))
print("same as transformers' get_vision_cu_seqlens:", torch.equal(packed_cu, ref.hf_vision_cu_seqlens(packed_grid)))
with torch.no_grad():
    packed_out = model(packed_values, packed_grid)
    alone = [model(rows, g[None]) for rows, g in zip(packed_values.split(packed_grid.prod(-1).tolist()), packed_grid)]
    video_as_slices = model(video_values, torch.tensor([[1, 8, 8], [1, 8, 8]]))
print("packed == each encoded alone (max err <= 1e-5):", bool((packed_out - torch.cat(alone)).abs().max() <= 1e-5))
print("a 2-slice video == two 1-slice videos:", bool((alone[1] - video_as_slices).abs().max() <= 1e-5))

# %% [markdown]
# ## 5. Build the tower in the open
#
# Each piece of the tower, written from the explanation above in its readable form (the package's
# `vision.py` is the same maths with input checks, buffer reuse and faster attention kernels). Every build
# cell uses only torch and the build cells before it.
#
# **2D-RoPE (lesson 02, restated compactly).** Each patch gets its (row, column) in the processor's order —
# 2×2 groups in raster order, raster order inside a group, repeated for every temporal slice. Each head's 80
# dimensions form 40 rotating pairs (pair i with i + 40, the "rotate-half" layout): 20 turn by the row, 20 by
# the column, at frequencies θ^(−2j/40), θ = 10000. Only q and k turn, so q·k depends on (Δrow, Δcol).

# %%
# build: vision_rope
import torch


def vision_position_ids(grid_thw, merge=2):
    """(row, col) of every patch, in the processor's order: 2x2 groups in raster order, raster inside."""
    out = []
    for t, h, w in grid_thw.tolist():
        rows = torch.arange(h)[:, None].expand(h, w)  # [h, w]
        cols = torch.arange(w)[None, :].expand(h, w)  # [h, w]
        rc = torch.stack([rows, cols], -1).view(h // merge, merge, w // merge, merge, 2)
        out.append(rc.permute(0, 2, 1, 3, 4).reshape(h * w, 2).repeat(t, 1))  # [t*h*w, 2]
    return torch.cat(out)  # [N, 2]


def vision_cos_sin(pos, head_dim, theta=10000.0):
    """[N, 2] (row, col) -> cos, sin [N, head_dim]: head_dim/4 frequencies per axis."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim // 2, 2).float() / (head_dim // 2))  # [hd/4]
    angles = torch.cat([pos[:, :1] * inv, pos[:, 1:] * inv], -1)  # [N, hd/2]: rows, then columns
    emb = torch.cat([angles, angles], -1)  # [N, hd]: pair i and i + hd/2 share an angle
    return emb.cos(), emb.sin()


def rotate(x, cos, sin):
    """x [N, H, hd] turned pair by pair: x·cos + rotate_half(x)·sin, rotate_half([a, b]) = [-b, a]."""
    x1, x2 = x.chunk(2, -1)
    return x * cos[:, None] + torch.cat([-x2, x1], -1) * sin[:, None]  # [N, H, hd]

# %% [markdown]
# **Attention over packed images.** One fused Linear gives q, k and v (16 heads × 80 each in the 2B). The
# scores of all N patches against all N form one N×N matrix per head; the block-diagonal mask from
# `cu_seqlens` (§4) sets every pair across two segments to −∞ before the softmax, so each image — and each
# 2-frame slice of a video — attends only to itself. This is the eager form (the picture of §4); the
# package's `sdpa` and `varlen` backends compute the same thing per segment without the N×N matrix (§7).

# %%
# build: packed_attention
import math

import torch
from torch import nn


def cu_seqlens_from_grid(grid_thw):
    """[n, 3] -> [0, l0, l0 + l1, ...]: one segment per image and per 2-frame slice of a video."""
    lengths = torch.repeat_interleave(grid_thw[:, 1] * grid_thw[:, 2], grid_thw[:, 0])  # [segments]
    return torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])  # [segments + 1]


def block_diagonal_mask(cu_seqlens):
    """True where query and key are in the same segment: [N, N]."""
    segment = torch.repeat_interleave(torch.arange(len(cu_seqlens) - 1), cu_seqlens.diff())  # [N]
    return segment[:, None] == segment[None, :]  # [N, 1] == [1, N] -> [N, N]


class VisionAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)  # fused q, k, v
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, cu_seqlens, cos, sin):
        n = x.shape[0]
        q, k, v = self.qkv(x).view(n, 3, self.num_heads, -1).unbind(1)  # [N, 3d] -> 3 x [N, H, hd]
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)  # 2D-RoPE on q and k only
        scores = torch.einsum("nhd,mhd->hnm", q, k) / math.sqrt(q.shape[-1])  # [H, N, N]
        scores = scores.masked_fill(~block_diagonal_mask(cu_seqlens), float("-inf"))  # no image sees another
        out = torch.einsum("hnm,mhd->nhd", scores.softmax(-1), v)  # [H, N, N] x [N, H, hd] -> [N, H, hd]
        return self.proj(out.reshape(n, -1))  # [N, H*hd] -> [N, d]

# %% [markdown]
# **The block.** Pre-norm: LayerNorm, attention, add; LayerNorm, MLP, add. The MLP widens 4× with
# QuickGELU, x·σ(1.702·x) — the CLIP-style approximation of GELU the tower was trained with.

# %%
# build: vision_block
import torch
from torch import nn


class VisionMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        h = self.fc1(x)  # [N, d] -> [N, 4d]
        return self.fc2(h * torch.sigmoid(1.702 * h))  # QuickGELU, then [N, 4d] -> [N, d]


class VisionBlock(nn.Module):
    """Pre-norm: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim, num_heads, mlp_ratio=4):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = VisionAttention(dim, num_heads)
        self.mlp = VisionMlp(dim, mlp_ratio * dim)

    def forward(self, x, cu_seqlens, cos, sin):
        x = x + self.attn(self.norm1(x), cu_seqlens, cos, sin)  # [N, d]
        return x + self.mlp(self.norm2(x))  # [N, d]

# %% [markdown]
# **The 2×2 merger.** LayerNorm each row, then read four consecutive rows as one: patchify (lesson 01) put the
# four patches of each 2×2 group next to each other, so a `view` of `[N, 1280]` as `[N/4, 5120]` gathers each
# group's neighbours. A two-layer MLP (GELU) maps the 4·1280 = 5120 values to the LLM's width.

# %%
# build: patch_merger
import torch
from torch import nn


class PatchMerger(nn.Module):
    """LayerNorm, then each 2x2 group (4 consecutive rows) as one row of 4d, MLP -> the LLM width."""

    def __init__(self, llm_dim, dim, merge=2):
        super().__init__()
        self.ln_q = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(merge**2 * dim, merge**2 * dim), nn.GELU(),
                                 nn.Linear(merge**2 * dim, llm_dim))

    def forward(self, x):
        groups = self.ln_q(x).view(-1, 4 * x.shape[1])  # [N, d] -> [N/4, 4d]: rows 4k..4k+3 are one 2x2 group
        return self.mlp(groups)  # [N/4, 4d] -> [N/4, 4d] -> [N/4, llm_dim]

# %% [markdown]
# **The tower.** Patch embedding, the rotary tables and `cu_seqlens` once, the blocks, the merger. The module
# names are the checkpoint's (`patch_embed.proj`, `blocks.{i}.attn.qkv`, `merger.mlp.0`, …).

# %%
# build: vision_tower
from torch import nn


class VisionTower(nn.Module):
    """patch embedding -> blocks (2D-RoPE, attention inside each segment) -> 2x2 merger."""

    def __init__(self, dim=1280, depth=32, num_heads=16, llm_dim=1536):
        super().__init__()
        self.head_dim = dim // num_heads
        self.patch_embed = PatchEmbed(dim)
        self.blocks = nn.ModuleList(VisionBlock(dim, num_heads) for _ in range(depth))
        self.merger = PatchMerger(llm_dim, dim)

    def forward(self, pixel_values, grid_thw):
        x = self.patch_embed(pixel_values)  # [N, 1176] -> [N, d]
        cos, sin = vision_cos_sin(vision_position_ids(grid_thw), self.head_dim)  # [N, hd] each, shared by all blocks
        cu_seqlens = cu_seqlens_from_grid(grid_thw)  # [segments + 1]
        for block in self.blocks:
            x = block(x, cu_seqlens, cos, sin)  # [N, d]
        return self.merger(x)  # [N, d] -> [N/4, llm_dim]

# %% [markdown]
# **Checklist.** The build gets the narrow package tower's weights — the same tensors under the same names,
# the Conv3d kernel `[320, 3, 2, 14, 14]` reshaped to the Linear's `[320, 1176]` — and runs the packed batch
# of §4 (an image, a 2-slice video, a smaller image: 480 patches). Each piece is compared with the package
# (`qwenvl_study.vision`) and the whole tower with transformers holding the same tensors too
# (`checks.vision_tower`).

# %%
state = model.state_dict()  # the narrow package tower of §4 (random weights, std 0.02)
state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"].reshape(narrow.embed_dim, -1)  # [320, 3, 2, 14, 14] -> [320, 1176]
built = VisionTower(narrow.embed_dim, narrow.depth, narrow.num_heads, narrow.hidden_size).eval()
built.load_state_dict(state, strict=True)
theirs = ref.hf_vision_model(narrow, model.state_dict(), attn_implementation="eager")  # the same tensors again
parity = checks.vision_tower(packed_values, packed_grid, pair=(model, theirs))  # package vs transformers
pkg = parity.details["output"]  # the package's merged tokens and every hidden state
pos, cu_b = vision_position_ids(packed_grid), cu_seqlens_from_grid(packed_grid)  # the build's
cos_p, sin_p = model.rotary_pos_emb(packed_grid)  # the package's tables
with torch.no_grad():
    rows = {
        "patch embedding: Linear(1176 -> 320) vs the Conv3d": (built.patch_embed(packed_values), pkg.hidden_states[0]),
        "2D-RoPE cos and sin": (torch.cat(vision_cos_sin(pos, narrow.head_dim)), torch.cat([cos_p, sin_p])),
        "block 0: LayerNorm, qkv, 2D-RoPE, masked attention, MLP":
            (built.blocks[0](pkg.hidden_states[0], cu_b, cos_p, sin_p), pkg.hidden_states[1]),
        "merger: LayerNorm, 4 rows of 320 -> 1280, MLP -> 384": (built.merger(pkg.last_hidden_state), pkg.merged),
        "whole tower: 120 merged tokens of 384": (built(packed_values, packed_grid), pkg.merged),
    }
same_ids = (torch.equal(pos, rope.vision_position_ids(packed_grid))
            and torch.equal(cu_b, attention.cu_seqlens_from_grid(packed_grid).long())
            and torch.equal(block_diagonal_mask(cu_b), attention.block_diagonal_mask(attention.cu_seqlens_from_grid(packed_grid))))
vs_hf = (rows["whole tower: 120 merged tokens of 384"][0] - parity.reference).abs().max().item()
print(f"{'build piece':58s} max |build - package|")
for name, (a, b) in rows.items():
    print(f"{name:58s} {(a - b).abs().max().item():.1e}")
print(f"(row, col) ids, cu_seqlens {cu_b.tolist()} and the block-diagonal mask equal the package's: {same_ids}")
print(f"merged tokens vs transformers: build {vs_hf:.1e}, package {parity.max_abs_error:.1e} (tolerance 1e-5)")
assert same_ids and parity.ok and vs_hf <= 1e-5 and all((a - b).abs().max() <= 1e-5 for a, b in rows.values())

# %% [markdown]
# Every piece is within 1e-5, and what is left is float32 rounding: the same products added in another order
# (float addition is not associative — the build's `einsum` against the package's matmul, the Linear against
# the Conv3d). The patch embedding differs most, because each of its outputs is a sum of 1176 products.
# `tests/test_builds_04.py` holds this build equal to the package over random configurations and grids.
#
# ## 6. Parity with transformers, layer by layer (same weights)
#
# `ref.hf_vision_model` built transformers' tower on the meta device and *assigned* our tensors to it
# (no second copy of the weights). Both run the packed batch above: the merged tokens, the
# pre-merger states, and every block's hidden state are compared.

# %%
with torch.no_grad():
    out = model(packed_values, packed_grid, return_hidden_states=True)
    hf = ref.hf_vision_forward(theirs, packed_values, packed_grid, output_hidden_states=True)
errors = {"merged tokens": (out.merged - hf.pooler_output).abs().max().item(),
          "last hidden state": (out.last_hidden_state - hf.last_hidden_state).abs().max().item()}

# %%
# NBVAL_CHECK_OUTPUT
print("merged tokens:", tuple(out.merged.shape), "| hidden states:", len(out.hidden_states), "=", len(hf.hidden_states))
for name, err in errors.items():
    print(f"{name}: max |ours - transformers| <= 1e-5: {err <= 1e-5}")
print("every hidden state <= 1e-5:", all((a - b).abs().max() <= 1e-5 for a, b in zip(out.hidden_states, hf.hidden_states)))

# %%
for name, err in errors.items():  # measured values (machine-dependent)
    print(f"{name}: max |ours - transformers| = {err:.2e}")
viz.plot_layer_errors(out.hidden_states, hf.hidden_states);

# %% [markdown]
# ## 7. Attention backends behind one switch
#
# `eager` writes softmax(q·kᵀ/√d + mask)·v out, over one N×N score matrix with the block-diagonal
# mask (the picture above, and the build of §5); `sdpa` calls torch's fused kernel once per segment (or once
# for a batch of equal segments); `varlen` (CUDA, fp16/bf16) runs one flash kernel over the packed sequence
# with `cu_seqlens`, no mask at all. `auto` picks varlen where it can run, else sdpa. They agree:

# %%
model.attn_backend = "sdpa"
with torch.no_grad():
    sdpa_out = model(packed_values, packed_grid)
model.attn_backend = "eager"
agreement = (sdpa_out - out.merged).abs().max().item()

# %%
# NBVAL_CHECK_OUTPUT
print("eager vs sdpa, max err <= 1e-5:", agreement <= 1e-5)
print("auto on a CPU with float32 picks:", resolve_backend("auto", "cpu", torch.float32))

# %%
print(f"eager vs sdpa: max |diff| = {agreement:.2e}")
for backend, reason in available_backends("cuda" if torch.cuda.is_available() else "cpu", torch.bfloat16).items():
    print(f"{backend:7s}", "available" if reason is None else f"unavailable: {reason}")

# %% [markdown]
# Why not one call with the dense mask? Its cost grows with the *square of the packed length*:
# the mask alone is N² bytes, and the eager math holds two N×N score matrices per head. Per segment,
# memory stays at the largest image; a varlen kernel forms no score matrix at all.
# `benchmarks/bench_vision.py` measures both (and the speed of the whole tower vs transformers).

# %%
viz.plot_attention_memory([256, 320, 320, 192, 192, 400, 144, 384]);

# %% [markdown]
# ## Exercises
#
# Solutions, each asserting its answer (run by `tests/test_solutions.py`):
# `notebooks/solutions/04_vision_encoder.py`.
#
# ### Exercise 4.1 — Why 1176?
# By hand: how many numbers does one row of `pixel_values` hold, and why that many? How many weights does the
# 2B's patch embedding have? Then in code: patchify a 28×28 image, count the rows and their length, count
# `PatchEmbed`'s parameters, and show that the build's Linear with the Conv3d kernel reshaped gives the Conv3d's
# output.
#
# ### Exercise 4.2 — The 2B tower's parameters, and the paper's 675M
# By hand, from the widths (1280, MLP 5120, merger 5120 → 1536): the parameters of one block (two LayerNorms,
# qkv, proj, fc1, fc2, biases included), of the merger, and of the whole tower (patch embedding + 32 blocks +
# merger). Which single number changes for the 7B (LLM width 3584), and by how much? Check against
# `qs.count_parameters` and a meta-device `VisionTransformer`.
#
# ### Exercise 4.3 — Rows, tokens and attention pairs of a packed batch
# A 448×448 image and a 4-frame 224×224 video go through the ViT together. By hand: the grid of each, the rows
# entering the tower, the segments of `cu_seqlens`, the merged tokens leaving the merger, and how many of the
# N² (query, key) pairs the block-diagonal mask keeps. Then in code with `smart_resize`, `cu_seqlens_from_grid`,
# `block_diagonal_mask` and a small tower.

# %% [markdown]
# **Takeaways.** The 2B's 665M tower (the paper's 675M is the 7B's, whose merger outputs 3584) is 32 identical
# pre-norm blocks between a Conv3d — a Linear over 1176-value tubes — and a 2×2 merger; it sees any number of
# images and videos at once as one packed sequence, with attention confined to each image or 2-frame slice by
# `cu_seqlens`; an image is a one-slice video of two identical frames. The build above is the whole tower in
# about 100 lines; our module holds the checkpoint's 391 `visual.*` tensors by name and matches transformers to
# ≤ 1e-5 in fp32 (above, and on the full 32-block 2B tower in `tests/test_vision.py`). Next: lesson 05 — the
# language model that reads these tokens.
