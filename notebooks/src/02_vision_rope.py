# %% [markdown]
# # 02 · Where is each patch? — Vision 2D-RoPE
#
# **Paper:** Qwen2-VL (Wang et al., 2024), §2.1 *Naive Dynamic Resolution*: "we remove the original
# absolute position embeddings and introduce 2D-RoPE to capture the two-dimensional positional
# information of images". RoPE itself: Su et al., *RoFormer* (2021).
# **Code:** `qwenvl_study/rope.py` — `rope_cos_sin`, `apply_rotary`, `vision_position_ids`,
# `vision_rotary_angles`, `vision_cos_sin`, `apply_rotary_vision`; figures in
# `qwenvl_study/course/figures/lesson02_vision_rope.py`.
# **Reference:** transformers' `vision_utils.get_vision_position_ids`, `Qwen2VLVisionRotaryEmbedding` and
# `apply_rotary_pos_emb_vision`, and for 1D RoPE the LLM's `Qwen2VLRotaryEmbedding` with text ids
# (`models/qwen2_vl/modeling_qwen2_vl.py`), built in `qwenvl_study/course/reference.py`.
#
# A ViT with a fixed-size learned position table cannot take images of any size. Qwen2-VL's ViT has
# no position table at all: each attention head *rotates* its queries and keys by angles that depend on
# the patch's **row** (half of the rotary frequencies) and **column** (the other half). This lesson
# first builds 1D RoPE — one rotating pair, then a whole head — and its relative property, then the
# 2D version the ViT uses: the (row, column) ids in the processor's order, the angles, the rotation.
#
# **How to read it.** Each mechanism is written here in a cell whose first line is `# build: NAME` — plain
# Python and torch, nothing from this repo's package. A *checklist* cell then prints the build next to the
# package (`qwenvl_study.rope`) and transformers; `tests/test_builds_02.py` holds every build equal to the
# package on many inputs. Exercises (solutions: `notebooks/solutions/02_vision_rope.py`) are at the end.

# %%
from qwenvl_study.course.env import preamble

preamble();

# %%
import numpy as np
import torch

import qwenvl_study as qs
from qwenvl_study import rope  # the package's versions: rope.vision_cos_sin, ...
from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.course import figures as viz

# %% [markdown]
# ## 1. 1D RoPE: a rotating pair
#
# Attention compares a query q and a key k by their dot product. RoPE puts the *position* into that
# comparison by **turning** q and k: take a pair of numbers (a, b) as a 2D vector and rotate it by the angle
# m·ω, where m is the token's position and ω a fixed angular speed. Rotations preserve dot products and
# compose by adding angles, so
#
# R(m·ω) q · R(n·ω) k = q · R((n − m)·ω) k:
#
# the score depends only on the **offset** n − m, not on where the pair of tokens sits.

# %%
# build: rotate_pair
import math


def rotate_pair(v, angle):
    """Turn the 2-vector v = (a, b) by `angle` radians (counter-clockwise)."""
    a, b = v
    return (a * math.cos(angle) - b * math.sin(angle), a * math.sin(angle) + b * math.cos(angle))


def dot(u, v):
    return u[0] * v[0] + u[1] * v[1]

# %%
# NBVAL_CHECK_OUTPUT
q, k, omega = (1.0, 0.5), (0.3, -0.8), 0.3  # one pair of a query, one of a key, 0.3 rad per position
print(" m   n  n-m   R(m·ω)q · R(n·ω)k   q · R((n-m)·ω)k")
for m, n in [(0, 3), (4, 7), (10, 13), (2, 2), (9, 9), (7, 2), (12, 7)]:
    score = dot(rotate_pair(q, m * omega), rotate_pair(k, n * omega))
    print(f"{m:2} {n:3} {n - m:4} {score:17.4f} {dot(q, rotate_pair(k, (n - m) * omega)):17.4f}")

# %% [markdown]
# A head of dimension d holds d/2 such pairs, each turning at its own speed ω_i = θ^(−2i/d) (θ = 10000 in
# the ViT; i = 0 is the fastest, one radian per position): fast pairs tell neighbours apart, slow pairs
# far-apart tokens. transformers' layout ("rotate half") pairs dimension i with dimension i + d/2, so the
# rotation of the whole vector is `x·cos + rotate_half(x)·sin` with the d/2 angles written twice.

# %%
# build: rope_1d
import torch


def inverse_frequencies(dim, theta):
    """theta^(-2i/dim) for i = 0 .. dim/2 - 1: the angular speed of each rotating pair."""
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))  # [dim/2]


def rotate_half(x):
    """[x1, x2] -> [-x2, x1] over the last dimension: pair i is (x[i], x[i + d/2])."""
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def rope_cos_sin(positions, head_dim, theta=10000.0):
    """positions [L] -> cos, sin [L, head_dim]: position * speed of every pair, written twice."""
    angles = positions[:, None].float() * inverse_frequencies(head_dim, theta)  # [L] -> [L, d/2]
    emb = torch.cat([angles, angles], dim=-1)  # [L, d/2] -> [L, d]: both members of a pair turn alike
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    """Rotate x [..., L, d] pair by pair: (a, b) -> (a·cos - b·sin, b·cos + a·sin)."""
    return x * cos + rotate_half(x) * sin

# %% [markdown]
# **Checklist (1D).** The build against the package (`rope.rope_cos_sin`, `rope.apply_rotary`) and against
# transformers' LLM rotary embedding: Qwen2-VL's `Qwen2VLRotaryEmbedding` (head_dim 128, θ = 10⁶,
# `mrope_section` [16, 24, 24]) given the *same* id on its three rows — which is what text gets, and why
# M-RoPE on text is 1D RoPE (lesson 03). Then the relative property over a whole head.

# %%
# NBVAL_CHECK_OUTPUT
L, head_dim, theta = 48, 128, 1e6
pos = torch.arange(L)
cos, sin = rope_cos_sin(pos, head_dim, theta)
g = torch.Generator().manual_seed(0)
x = torch.randn(1, 2, L, head_dim, generator=g)  # [B, heads, L, d]
pkg_cos, pkg_sin = rope.rope_cos_sin(pos, head_dim, theta)
pkg_q, _ = rope.apply_rotary(x, x, pkg_cos[None], pkg_sin[None])
hf_cos, hf_sin = ref.hf_mrope_cos_sin(pos.expand(3, 1, L), head_dim, theta, (16, 24, 24))  # text: 3 equal rows
hf_q, _ = ref.hf_apply_mrope(x, x, hf_cos, hf_sin)
ours_q = apply_rope(x, cos, sin)
print(f"cos/sin: build == package: {torch.equal(cos, pkg_cos) and torch.equal(sin, pkg_sin)}"
      f" | build vs transformers max |diff| <= 1e-6: {max((cos - hf_cos[0]).abs().max(), (sin - hf_sin[0]).abs().max()) <= 1e-6}")
print(f"rotated x: build vs package <= 1e-6: {(ours_q - pkg_q).abs().max() <= 1e-6}"
      f" | build vs transformers <= 1e-6: {(ours_q - hf_q).abs().max() <= 1e-6}")

qv, kv = torch.randn(2, head_dim, generator=g)  # one query and one key vector, placed at every position
scores = apply_rope(qv.expand(L, -1), cos, sin) @ apply_rope(kv.expand(L, -1), cos, sin).T  # [L, L]: (m, n)
offset = pos[None, :] - pos[:, None]  # n - m
spread = max((scores[offset == o].max() - scores[offset == o].min()).item() for o in range(-L + 1, L))
print(f"{L}x{L} (m, n) scores, {2 * L - 1} offsets: same offset ⇒ same score "
      f"(spread <= 1e-4 · max|score|): {spread <= 1e-4 * scores.abs().max().item()}")

# %%
print(f"measured: rotated x build vs transformers {(ours_q - hf_q).abs().max():.1e}; largest spread within one "
      f"offset {spread:.1e} (float32 rounding), scores up to {scores.abs().max():.1f}")

# %% [markdown]
# ## 2. The 2D ids: (row, column) of every patch, in the order the ViT sees them
#
# An image has two coordinates. Qwen2-VL gives each patch its **(row, column)** and — §3 — splits the pairs
# of each head between them. The ids must follow the order of `pixel_values`, and lesson 01 showed that the
# processor lists the patches **2×2 merge group by merge group** (so that the merger can take 4 consecutive
# rows), not in raster order: merge groups in raster order, and inside a group its 4 patches in raster order.
# Several images/videos are concatenated; a video repeats its grid once per temporal slice (2 frames).

# %%
# build: vision_position_ids
import torch


def vision_position_ids(grid_thw, merge=2):
    """(row, col) of every row of pixel_values: LongTensor [N, 2] for grids (t, h, w) in patches."""
    ids = []
    for t, h, w in torch.as_tensor(grid_thw).reshape(-1, 3).tolist():
        one_slice = [(gr * merge + r, gc * merge + c)
                     for gr in range(h // merge) for gc in range(w // merge)  # merge groups, raster order
                     for r in range(merge) for c in range(merge)]  # the patches of one group, raster order
        ids += one_slice * t  # every temporal slice of a video has the same grid
    return torch.tensor(ids, dtype=torch.long).reshape(-1, 2)  # [t*h*w summed over grids, 2]

# %%
# NBVAL_CHECK_OUTPUT
ids = vision_position_ids([[1, 4, 6]])
print("grid (t=1, h=4, w=6) → ids", tuple(ids.shape))
print("first 8 rows of pixel_values are patches (row, col):", ids[:8].tolist())
mixed = torch.tensor([[1, 4, 6], [2, 6, 4], [1, 2, 2], [3, 8, 10]])  # images and videos together
build_ids = vision_position_ids(mixed)
check = checks.vision_position_ids(mixed)  # package vs transformers' get_vision_position_ids
print("mixed grids", mixed.tolist(), "→", tuple(build_ids.shape), "ids")
print("build == package:", torch.equal(build_ids, check.ours), "| build == transformers:",
      torch.equal(build_ids, check.reference), "| package == transformers:", check.ok)

# %% [markdown]
# The heatmaps give each patch its row and column id (white squares: the 2×2 merge groups); the right
# panel follows `pixel_values` row by row — the ids zig-zag inside each merge group.

# %%
viz.draw_vision_position_ids(6, 8);

# %% [markdown]
# ## 3. The angles: half of the pairs for rows, half for columns
#
# The 2B ViT has width 1280 and 16 heads: **head_dim 80**, i.e. 40 rotary pairs (rotate-half layout:
# dimension d pairs with d + 40). 2D-RoPE gives **20 pairs to the row and 20 to the column**, with the
# same frequency ladder on both axes: pair i turns by `row · θ^(-2i/40)` (i < 20) or `col · θ^(-2(i-20)/40)`,
# θ = 10000. Nothing else carries position inside the ViT. The rotation itself is §1's, computed in float32.

# %%
# build: vision_rotary
import torch


def vision_rotary_angles(pos, head_dim, theta=10000.0):
    """pos [N, 2] (row, col) -> angles [N, head_dim/2]: first half turn with the row, second half with the column."""
    inv = inverse_frequencies(head_dim // 2, theta)  # [hd/4]: one ladder, shared by both axes
    rows = pos[:, 0, None].float() * inv  # [N, 1] * [hd/4] -> [N, hd/4]
    cols = pos[:, 1, None].float() * inv  # [N, hd/4]
    return torch.cat([rows, cols], dim=-1)  # [N, hd/2]


def vision_cos_sin(pos, head_dim, theta=10000.0):
    """pos [N, 2] -> cos, sin [N, head_dim] (the hd/2 angles written twice: rotate-half layout)."""
    angles = vision_rotary_angles(pos, head_dim, theta)
    emb = torch.cat([angles, angles], dim=-1)  # [N, hd/2] -> [N, hd]
    return emb.cos(), emb.sin()


def apply_rotary_vision(q, k, cos, sin):
    """Rotate q, k [N, heads, hd] by cos, sin [N, hd] (the same for every head), in float32."""
    cos, sin = cos[:, None, :].float(), sin[:, None, :].float()  # [N, hd] -> [N, 1, hd]
    return apply_rope(q.float(), cos, sin).to(q.dtype), apply_rope(k.float(), cos, sin).to(k.dtype)

# %%
# NBVAL_CHECK_OUTPUT
vcfg = qs.QWEN2_VL_2B.vision
head_dim = vcfg.head_dim
print(f"2B ViT: embed_dim {vcfg.embed_dim} / {vcfg.num_heads} heads = head_dim {head_dim}; "
      f"{head_dim // 2} rotary pairs = {head_dim // 4} for rows + {head_dim // 4} for columns; theta {vcfg.rope_theta:g}")
pos = torch.tensor([[3, 0], [0, 5]])  # patch at row 3 / col 0, and at row 0 / col 5
angles = vision_rotary_angles(pos, head_dim)
print("row 3, col 0: row pairs turned:", bool((angles[0, :20] != 0).all()), "| column pairs still at 0:",
      bool((angles[0, 20:] == 0).all()))
print("row 0, col 5: row pairs still at 0:", bool((angles[1, :20] == 0).all()), "| column pairs turned:",
      bool((angles[1, 20:] != 0).all()))
print("same ladder on both axes (col 5 angles == row 5 angles, shifted):",
      torch.equal(angles[1, 20:], vision_rotary_angles(torch.tensor([[5, 0]]), head_dim)[0, :20]))

# %% [markdown]
# The frequency ladder, in radians per patch step (pair 0 turns one radian per patch, pair 19 about 1/6000):

# %%
inv = inverse_frequencies(head_dim // 2, vcfg.rope_theta)
print("radians per patch step, pairs 0..19:", np.array2string(inv.numpy(), precision=4, max_line_width=110))

# %% [markdown]
# As a picture: `cos(angle)` for every patch of an 8×8 grid (y, raster order) and every rotary pair (x).
# Left of the black line the colour changes only every 8 patches (a new row); right of it, within each
# row (a new column). Fast pairs (small index) resolve neighbours, slow pairs distinguish far-apart patches.

# %%
viz.plot_vision_rotary_angles(8, 8, head_dim=head_dim, theta=vcfg.rope_theta);

# %% [markdown]
# ## 4. Checklist: the 2D build against the package and transformers
#
# Same ids, same q/k, all 16 heads of the 2B ViT, an image and a 2-slice video packed together: the build's
# cos/sin and rotated q/k against the package (`rope.vision_cos_sin`, `rope.apply_rotary_vision`) and
# transformers' `Qwen2VLVisionRotaryEmbedding` + `apply_rotary_pos_emb_vision` (through `checks.vision_rotary`).

# %%
# NBVAL_CHECK_OUTPUT
grids = torch.tensor([[1, 14, 20], [2, 8, 8]])  # an image and a 2-temporal-patch video
pos = vision_position_ids(grids)
cos, sin = vision_cos_sin(pos, head_dim, vcfg.rope_theta)
g = torch.Generator().manual_seed(0)
q = torch.randn(len(pos), vcfg.num_heads, head_dim, generator=g)
k = torch.randn(len(pos), vcfg.num_heads, head_dim, generator=g)
q_rot, k_rot = apply_rotary_vision(q, k, cos, sin)
check = checks.vision_rotary(pos, q, k)  # package vs transformers: cos, sin, rotated q, k
(pkg_q, pkg_k), (hf_q, hf_k) = check.ours, check.reference
hf_cos, hf_sin = ref.hf_vision_cos_sin(pos, head_dim)
err_pkg = max((q_rot - pkg_q).abs().max(), (k_rot - pkg_k).abs().max()).item()
err_hf = max((q_rot - hf_q).abs().max(), (k_rot - hf_k).abs().max()).item()
err_cs = max((cos - hf_cos).abs().max(), (sin - hf_sin).abs().max()).item()
print("patches:", len(pos), "| q, k:", tuple(q.shape), "| ids: build == package == transformers:",
      torch.equal(pos, rope.vision_position_ids(grids)) and torch.equal(pos, ref.hf_vision_position_ids(grids)))
print("cos/sin: build == package:", torch.equal(cos, rope.vision_cos_sin(pos, head_dim)[0]),
      "| build vs transformers <= 1e-6:", err_cs <= 1e-6)
print("rotated q/k: build vs package <= 1e-6:", err_pkg <= 1e-6, "| build vs transformers <= 1e-6:", err_hf <= 1e-6,
      "| package vs transformers <= 1e-6:", check.ok)

# %%
print(f"measured: cos/sin build vs transformers {err_cs:.1e}; rotated q/k build vs package {err_pkg:.1e}, "
      f"vs transformers {err_hf:.1e}; package vs transformers {check.max_abs_error:.1e}")

# %% [markdown]
# ## 5. Why rotations: q·k depends only on the offset, in 2D too
#
# Each pair is §1's rotating pair, turned by the row or by the column. Rotating q by the angles of patch *a*
# and k by those of patch *b* multiplies their dot product by a rotation of angle (b − a) in each pair:
# `R(a)q · R(b)k = q · R(b − a)k`. So attention between two patches sees **where they are relative to each
# other** — (Δrow, Δcol) — never their absolute place: the reason one ViT handles 224×224 and 4K images
# alike. Check: one q and one k vector (one head), rotated at every patch of a 10×12 grid; the score for
# every (query patch, key patch) pair, grouped by the offset (Δrow, Δcol):

# %%
# NBVAL_CHECK_OUTPUT
H, W = 10, 12
r, c = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
grid_pos = torch.stack([r.flatten(), c.flatten()], dim=1)  # [120, 2] raster order
cos, sin = vision_cos_sin(grid_pos, head_dim)
q1, k1 = torch.randn(2, 1, 1, head_dim, generator=g)
qr, kr = apply_rotary_vision(q1.expand(H * W, 1, head_dim), k1.expand(H * W, 1, head_dim), cos, sin)
scores = qr[:, 0] @ kr[:, 0].T  # [120, 120]: query at patch i, key at patch j
offset = (grid_pos[None, :, 0] - grid_pos[:, None, 0] + H) * (2 * W) + (grid_pos[None, :, 1] - grid_pos[:, None, 1] + W)
hi = torch.full((4 * H * W,), -1e9).scatter_reduce(0, offset.flatten(), scores.flatten(), "amax")
lo = torch.full((4 * H * W,), 1e9).scatter_reduce(0, offset.flatten(), scores.flatten(), "amin")
seen = hi > -1e9
spread = (hi - lo)[seen].max().item()
print("query-key pairs:", scores.numel(), "| distinct offsets:", int(seen.sum()))
print("same offset ⇒ same score (max spread <= 1e-4 · max|score|):", spread <= 1e-4 * scores.abs().max().item())

# %%
print(f"measured spread within an offset: {spread:.1e} (float32 rounding), scores up to {scores.abs().max():.1f}")
viz.plot_relative_scores(scores.numpy(), H, W, anchors=((3, 3), (6, 8)));

# %% [markdown]
# *Figure:* left and middle, the score of a query at (3, 3) and at (6, 8) against every key, placed at the
# key's offset (Δrow, Δcol) from the query, on one colour scale; right, their absolute difference where both
# are defined — float32 rounding only.
#
# ## Exercises
#
# Solutions, each asserting its answer (run in CI by `tests/test_solutions.py`): `notebooks/solutions/02_vision_rope.py`.
#
# ### Exercise 2.1 — the ids of a 4×6-patch image, by hand
#
# Write down the (row, col) of all 24 rows of `pixel_values` for a 4×6-patch image (a 56×84-pixel image),
# in order. At which row does the patch at (row 2, col 3) appear? Then check your list with
# `vision_position_ids([[1, 4, 6]])`.
#
# ### Exercise 2.2 — swap the row and column halves
#
# Build a variant of `vision_rotary_angles` that gives the *first* 20 pairs to the column and the last 20 to
# the row. By hand: for a patch at (row 0, col 5), which pairs turn now? In code: compare its cos/sin with
# transformers' — parity breaks (how large is the error?) — and show that it equals transformers' on the
# *transposed* ids (col, row): the swapped model would see every image transposed.
#
# ### Exercise 2.3 — the relative property needs the rotation
#
# Replace the rotation by the older recipe — *add* a position vector to q and k (e.g. the sinusoidal vector
# made of the same cos/sin values) — and repeat §5's check: how large is the spread of scores within one
# offset now, against §5's float32 rounding?

# %% [markdown]
# ## Summary
#
# | what | built here | package | checked against |
# |---|---|---|---|
# | one rotating pair; q·k depends on n − m | `rotate_pair` | — | — (a property of rotations, §1) |
# | 1D RoPE over a head (rotate-half layout) | `rope_cos_sin`, `apply_rope` | `rope_cos_sin`, `apply_rotary` | `Qwen2VLRotaryEmbedding` with text ids (≤ 1e-6) |
# | (row, col) of every patch, merge groups adjacent | `vision_position_ids` | `vision_position_ids` | `get_vision_position_ids` (bit-equal; hypothesis over grids in `tests/test_rope.py`, `tests/test_builds_02.py`) |
# | angles: 20 pairs for rows, 20 for columns (head_dim 80), θ = 10000 | `vision_rotary_angles`, `vision_cos_sin` | same names | `Qwen2VLVisionRotaryEmbedding` (≤ 1e-6) |
# | rotation of q, k in float32 | `apply_rotary_vision` | `apply_rotary_vision` | `apply_rotary_pos_emb_vision` (≤ 1e-6) |
# | q·k depends only on (Δrow, Δcol) | §5 | — | — (a property of rotations) |
#
# The LLM side uses the same trick with a third axis, time: lesson 03 (M-RoPE).
