# %% [markdown]
# # 03 · One id, three axes — Multimodal RoPE (M-RoPE)
#
# **Paper:** Qwen2-VL (Wang et al., 2024), §2.1 *Multimodal Rotary Position Embedding (M-RoPE)* and Figure 3
# (the course notes quote that paragraph and walk through the text / image / video cases).
# **Code:** built in this notebook (cells starting `# build:`), then the package: `qwenvl_study/rope.py` —
# `mrope_position_ids`, `segments_to_batch`, `mrope_cos_sin`, `apply_mrope`, `rope_cos_sin`; figures in
# `qwenvl_study/course/figures/lesson03_mrope.py`.
# **Reference:** transformers `Qwen2VLModel.get_rope_index`, `Qwen2VLRotaryEmbedding` and `apply_rotary_pos_emb`
# (`models/qwen2_vl/modeling_qwen2_vl.py`), built in `qwenvl_study/course/reference.py`; each build is also held
# equal to the package by `tests/test_builds_03.py`.
#
# The LLM reads text, images and videos as one token sequence. A 1D position id per token would give
# a 1080p image 2691 consecutive ids and lose its 2D layout. M-RoPE splits the rotary frequencies of
# each head into three sections — **temporal, height, width** — and gives every token three ids:
#
# - text: the same id on t, h and w (so on text, M-RoPE *is* ordinary 1D RoPE);
# - an image: t constant, h and w = the token's row and column in the merged grid (h' = h/2, w' = w/2);
# - a video: like an image per temporal patch (2 frames), with t growing by one per patch;
# - **every segment starts at the previous segment's maximum id + 1**.
#
# We build the ids (§1), see how few positions long inputs use (§2), build the rotation (§3–4) and the
# generation offset `delta` (§5). Differences between transformers versions and between qwen-vl-utils
# releases are engineering detail: they are in the **Going deeper** appendix at the end.

# %%
from qwenvl_study.course.env import preamble

preamble();

# %%
import torch

import qwenvl_study as qs
from qwenvl_study import rope
from qwenvl_study.course import checks
from qwenvl_study.course import figures as viz
from qwenvl_study.course import reference as ref
from qwenvl_study.resolution import image_grid_thw
from qwenvl_study.rope import segments_to_batch

# %% [markdown]
# ## 1. Building the ids: Figure 3, text – image – video – text
#
# The processor writes an image as `<|vision_start|>`, then **one pad token per merged 2×2 patch group**
# (t·h'·w' of them, in raster order: temporal patch, row, column), then `<|vision_end|>`; a video the same with
# `<|video_pad|>`. The start and end markers are ordinary text tokens. So the ids can be written by walking the
# sequence once with a running id `start`:
#
# - a text token gets `start` on all three rows, and `start` grows by 1;
# - at a run of pad tokens, take the next grid (t, h, w) in patches; the token at (i, j, k) of the merged grid
#   gets `(start + i, start + j, start + k)`; then `start` jumps to that segment's maximum + 1, i.e.
#   `start + max(t, h', w')`.
#
# At the end, `delta = (max id + 1) − L`: how far the ids lag behind the token count (§5 uses it).

# %%
# build: mrope_ids
import torch

IMAGE_PAD, VIDEO_PAD = 151655, 151656  # <|image_pad|>, <|video_pad|>: one per merged 2x2 patch group
MERGE = 2  # the merger fuses 2x2 patches into one LLM token


def mrope_ids(input_ids, image_grids=(), video_grids=()):
    """One sequence, laid out as the processor does: input_ids [L] -> ids [3, L] (rows t, h, w), delta.

    image_grids / video_grids: the (t, h, w) grids in patches, in the order the images / videos appear.
    """
    grids = {IMAGE_PAD: iter(image_grids), VIDEO_PAD: iter(video_grids)}
    tokens = input_ids.tolist()
    pieces, start, i = [], 0, 0  # start: the id the next segment begins at
    while i < len(tokens):
        if tokens[i] not in grids:  # a text token (<|vision_start|>, <|vision_end|> too): one id on t, h, w
            pieces.append(torch.full((3, 1), start))  # [3, 1]
            start, i = start + 1, i + 1
            continue
        t, h, w = next(grids[tokens[i]])  # this segment's grid in patches
        h, w = h // MERGE, w // MERGE  # its merged grid h' x w': one token per cell
        tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
        pieces.append(start + torch.stack([tt, hh, ww]).reshape(3, t * h * w))  # [3, t, h', w'] -> [3, t*h'*w']
        start += max(t, h, w)  # the next segment starts at this one's maximum id + 1
        i += t * h * w
    ids = torch.cat(pieces, dim=1) if pieces else torch.zeros(3, 0, dtype=torch.long)  # [3, L]
    return ids, start - len(tokens)  # delta = (max id + 1) - L

# %% [markdown]
# The paper's Figure 3 layout: 3 text tokens, an image of 1×4×6 patches (2×3 merged tokens), 2 text tokens, a
# video of 3×4×6 (3 temporal patches of 2×3), 3 text tokens. `segments_to_batch` writes the token ids as the
# processor would.

# %%
# NBVAL_CHECK_OUTPUT
rows = [[("text", 3), ("image", (1, 4, 6)), ("text", 2), ("video", (3, 4, 6)), ("text", 3)]]
batch = segments_to_batch(rows)
ids, delta = mrope_ids(batch["input_ids"][0], image_grids=[(1, 4, 6)], video_grids=[(3, 4, 6)])
for name, row in zip("thw", ids.tolist()):
    print(name, row)
print("tokens:", ids.shape[1], "| max id + 1:", int(ids.max()) + 1, "| delta:", delta)

# %% [markdown]
# Reading it: text `0 1 2`, `<|vision_start|>` 3; the image's 6 tokens all have t = 4, rows h = 4..5,
# columns w = 4..6; its maximum is 6, so `<|vision_end|>` gets 7. Text 8, 9, `<|vision_start|>` 10; the
# video starts at 11: t = 11, 12, 13 for its three temporal patches, h = 11..12, w = 11..13; its maximum
# is 13, so `<|vision_end|>` gets 14 and the text 15–17.
#
# **Checklist** — the build against the package (`qwenvl_study.rope.mrope_position_ids`) and the package against
# transformers' `get_rope_index` (`checks.mrope_ids`), on Figure 3 and three more layouts:

# %%
# NBVAL_CHECK_OUTPUT
layouts = {
    "Figure 3": rows[0],
    "text, a 56x84 image, text": [("text", 2), ("image", (1, 4, 6)), ("text", 1)],
    "two images, then a question": [("text", 1), ("image", (1, 2, 2)), ("image", (1, 6, 4)), ("text", 4)],
    "a 4-slice 112x112 video": [("text", 1), ("video", (4, 8, 8)), ("text", 2)],
}
print(f"{'layout':<29}{'tokens':>7}{'next id':>8}   build = package   package = transformers")
for name, segments in layouts.items():
    case = segments_to_batch([segments])
    grids = {kind: [g for k, g in segments if k == kind] for kind in ("image", "video")}
    built, built_delta = mrope_ids(case["input_ids"][0], grids["image"], grids["video"])
    package, package_delta = qs.mrope_position_ids(**case)
    same = torch.equal(built, package[:, 0]) and built_delta == int(package_delta)
    print(f"{name:<29}{built.shape[1]:>7}{int(built.max()) + 1:>8}   {str(same):<18}{checks.mrope_ids(case).ok}")

# %%
viz.plot_mrope_ids(ids, batch["input_ids"][0], title="M-RoPE ids (t, h, w) of text – image – video – text");

# %% [markdown]
# ## 2. "M-RoPE reduces position ids": a 1080p image and a 2-minute video
#
# With 1D RoPE every token uses a new id; with M-RoPE a vision segment uses only max(t, h', w') ids.
# The 1080p image: `image_grid_thw` (lesson 01). The video, stated assumptions: a 2-minute 1920×1080 clip
# sampled at **2 fps** → 240 frames → **120 temporal patches**, its frames shrunk so the video stays within the
# paper's **16384 tokens** (`qs.plan_video(..., defaults="paper")`; lesson 07 builds that plan).

# %%
# NBVAL_CHECK_OUTPUT
_, gh, gw = image_grid_thw(1080, 1920)
plan = qs.plan_video(120 * 30, 30.0, 1080, 1920, defaults="paper")  # 2 min of 30 fps video
print("2-minute video at 2 fps →", plan.nframes, "frames")
items = {"1080p image (1920x1080)": ("image", (1, gh, gw)),
         "2-min video, 2 fps, 16384 tokens (paper's cap)": ("video", plan.grid_thw)}
budget_ids = {}
for name, (kind, grid) in items.items():
    input_ids = segments_to_batch([[(kind, grid)]])["input_ids"][0]  # <|vision_start|> pads <|vision_end|>
    item_ids, item_delta = mrope_ids(input_ids, **{f"{kind}_grids": [grid]})
    length, next_id = len(input_ids), int(item_ids.max()) + 1  # 1D RoPE: the next id = length
    t, h, w = grid
    budget_ids[name] = (length, next_id)
    print(f"{name}\n    grid {t}x{h}x{w} → {t * h * w // 4:,} tokens; next id after it: 1D {length:,}, "
          f"M-RoPE {next_id} = <vs> + max(t, h', w') {max(t, h // 2, w // 2)} + <ve>")

# %%
viz.plot_position_budget(budget_ids);

# %% [markdown]
# A 1080p image costs 69 + 2 ids instead of 2693; the 2-minute video 120 + 2 instead of 14,402. Long
# inputs keep their positions close to the range the model was trained on — the paper's argument for
# extrapolating to longer videos. Note the video: **t = 120 temporal patches, but only 8×15 merged
# patches per frame** — its temporal extent, not its size, sets its id span (Going deeper A.1 shows why
# that matters for transformers 5.x).
#
# ## 3. From ids to rotations: `mrope_section = [16, 24, 24]`
#
# RoPE rotates each pair of dimensions of q and k by an angle `id × θ^(−2j/head_dim)` for pair j. The 2B LLM
# has head_dim 1536/12 = 128, so 64 pairs (dimension d pairs with d + 64, the "rotate half" layout), θ = 10⁶.
# M-RoPE only changes **which id** a pair reads: pairs 0–15 rotate by the **t** id, 16–39 by **h**, 40–63 by
# **w** — time gets the fastest frequencies, space the slower ones. Build it: compute every pair's angle at all
# three ids, then keep pair j's angle from its own row.

# %%
# build: mrope_rotation
import torch


def mrope_cos_sin(ids, head_dim, theta, section):
    """ids [3, B, L] -> cos, sin [B, L, head_dim]: rotary pair j reads the t, h or w row by `section`."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))  # [hd/2]
    angles = ids[..., None].float() * inv_freq  # [3, B, L, hd/2]: every pair at every row's id
    t, h, w = angles.split(list(section), dim=-1)  # pairs [0, s_t), [s_t, s_t + s_h), the rest
    angles = torch.cat([t[0], h[1], w[2]], dim=-1)  # t-pairs from the t row, ...: [B, L, hd/2]
    emb = torch.cat([angles, angles], dim=-1)  # [B, L, hd/2] -> [B, L, hd]: dims d and d + hd/2 share an angle
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)  # [..., hd] -> 2 x [..., hd/2]
    return torch.cat([-x2, x1], dim=-1)  # (x1, x2) -> (-x2, x1): each pair (d, d + hd/2) turned by 90 degrees


def apply_mrope(q, k, cos, sin):
    """q [B, Hq, L, hd], k [B, Hkv, L, hd] rotated by cos, sin [B, L, hd] (the same for every head)."""
    cos, sin = cos[:, None], sin[:, None]  # [B, L, hd] -> [B, 1, L, hd]
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin

# %% [markdown]
# **Checklist** — the rotation of the Figure 3 sequence (12 query heads, 2 key/value heads of the 2B LLM, random
# q and k): the build against the package (`rope.mrope_cos_sin`, `rope.apply_mrope`) and against transformers'
# `Qwen2VLRotaryEmbedding` and `apply_rotary_pos_emb`, as the largest absolute difference.

# %%
# NBVAL_CHECK_OUTPUT
tcfg = qs.QWEN2_VL_2B.text
print(f"2B LLM: hidden {tcfg.hidden_size} / {tcfg.num_attention_heads} heads = head_dim {tcfg.head_dim}; "
      f"{tcfg.head_dim // 2} rotary pairs; mrope_section {list(tcfg.mrope_section)} (t, h, w); theta {tcfg.rope_theta:g}")
args = (tcfg.head_dim, tcfg.rope_theta, tcfg.mrope_section)
g = torch.Generator().manual_seed(0)
q = torch.randn(1, tcfg.num_attention_heads, ids.shape[-1], tcfg.head_dim, generator=g)
k = torch.randn(1, tcfg.num_key_value_heads, ids.shape[-1], tcfg.head_dim, generator=g)
ids3 = ids[:, None]  # the Figure 3 ids [3, L] -> [3, B=1, L]
built = (*mrope_cos_sin(ids3, *args), *apply_mrope(q, k, *mrope_cos_sin(ids3, *args)))
pcos, psin = rope.mrope_cos_sin(ids3, *args)
package = (pcos, psin, *rope.apply_mrope(q, k, pcos, psin))
hcos, hsin = ref.hf_mrope_cos_sin(ids3, *args)
reference = (hcos, hsin, *ref.hf_apply_mrope(q, k, hcos, hsin))
for what, part in (("cos, sin", slice(0, 2)), ("rotated q, k", slice(2, 4))):
    vs_package = max((x - y).abs().max().item() for x, y in zip(built[part], package[part]))
    vs_reference = max((x - y).abs().max().item() for x, y in zip(built[part], reference[part]))
    print(f"{what:>12}: build vs package {vs_package:.1e}, build vs transformers {vs_reference:.1e}")

# %%
viz.plot_mrope_sections(tcfg.mrope_section, tcfg.head_dim, tcfg.rope_theta);

# %% [markdown]
# ## 4. Text only ⇒ exactly 1D RoPE
#
# Text gets the same id on all three rows, so whatever section a pair belongs to, it rotates by the same id:
# the build's `mrope_cos_sin` equals plain 1D RoPE (`rope.rope_cos_sin`, one id per token) bit for bit.

# %%
# NBVAL_CHECK_OUTPUT
text_ids, _ = mrope_ids(torch.full((7,), rope.TEXT_FILLER_ID))  # 7 text tokens
print("ids of 7 text tokens:", text_ids.tolist())
cos, sin = mrope_cos_sin(text_ids[:, None], *args)
cos1, sin1 = rope.rope_cos_sin(text_ids[:1], tcfg.head_dim, tcfg.rope_theta)  # 1D RoPE: ids [1, 7]
print("M-RoPE cos/sin == 1D RoPE cos/sin (bit-equal):", torch.equal(cos, cos1) and torch.equal(sin, sin1))

# %% [markdown]
# ## 5. `delta` and a generation step
#
# During generation the new token's ids are not recomputed from the whole sequence: the model adds a
# per-sequence `delta` to the token's position in the cache. In a batch, prompts are **left-padded** to one
# length L; padded places get id 1 on all three rows (any value: attention masks them), and
#
# - `delta = max id + 1 − L`, with **L the padded row length**;
# - the next token's id on all three rows is `cache_position + delta`, `cache_position` being its index in the
#   padded row (L for the first generated token).

# %%
# build: mrope_batch
import torch


def mrope_batch(input_ids, attention_mask, image_grid_thw=None, video_grid_thw=None):
    """A left-padded batch [B, L]: ids [3, B, L] (padded places get 1) and deltas [B, 1] = max id + 1 - L."""
    B, L = input_ids.shape
    images = iter([] if image_grid_thw is None else image_grid_thw.tolist())  # shared by all rows:
    videos = iter([] if video_grid_thw is None else video_grid_thw.tolist())  # grids in batch order
    ids = torch.ones(3, B, L, dtype=torch.long)  # [3, B, L]
    deltas = torch.zeros(B, 1, dtype=torch.long)  # [B, 1]
    for b in range(B):
        real = attention_mask[b].bool()  # [L] the row's real tokens
        row_ids, _ = mrope_ids(input_ids[b, real], images, videos)  # [3, n_real]
        ids[:, b, real] = row_ids
        deltas[b] = (int(row_ids.max()) + 1 if row_ids.numel() else 0) - L  # L: the padded length
    return ids, deltas

# %% [markdown]
# A batch of two prompts — text, a 4×4-patch image, text; and 4 text tokens — then one generated token appended:
# the ids recomputed over the whole sequence must give the new token `L + delta`.

# %%
# NBVAL_CHECK_OUTPUT
prompt = segments_to_batch([[("text", 2), ("image", (1, 4, 4)), ("text", 1)], [("text", 4)]], pad_side="left")
pids, pdeltas = mrope_batch(**prompt)
L = prompt["input_ids"].shape[1]
print("mask:", prompt["attention_mask"].tolist())
print("t ids:", pids[0].tolist())
print("deltas:", pdeltas.tolist(), "| the next token's id, L + delta:", (L + pdeltas).flatten().tolist())
mask = torch.cat([prompt["attention_mask"], torch.ones(2, 1, dtype=torch.long)], dim=1)
full = dict(prompt, input_ids=torch.cat([prompt["input_ids"], torch.full((2, 1), 872)], dim=1), attention_mask=mask)
fids, _ = mrope_batch(**full)
print("recomputing the whole sequence gives the same id on t, h, w:",
      torch.equal(fids[:, :, -1:], (L + pdeltas).expand(3, 2, 1)))
package_ids, package_deltas = qs.mrope_position_ids(**prompt)
print("build = package (ids and deltas):", torch.equal(pids, package_ids) and torch.equal(pdeltas, package_deltas),
      "| package = transformers on the real tokens:", checks.mrope_ids(prompt).ok)

# %% [markdown]
# ## Summary
#
# | what | built here | package | checked against |
# |---|---|---|---|
# | M-RoPE ids (text, images, videos) | `mrope_ids` (a walk over the tokens, one grid per pad run) | `mrope_position_ids` (a loop over segments, numpy) | transformers `get_rope_index` wherever its rule agrees (hypothesis, `tests/test_mrope_ids.py`) |
# | "M-RoPE reduces position ids" | a segment uses max(t, h', w') ids | — | 1080p image 2,693 → 71, 2-min video 14,402 → 122 |
# | cos/sin and rotation, `mrope_section` [16, 24, 24] | `mrope_cos_sin`, `apply_mrope` | `rope.mrope_cos_sin`, `rope.apply_mrope` | `Qwen2VLRotaryEmbedding`, `apply_rotary_pos_emb` (max error 0.0) |
# | text only ⇒ 1D RoPE | bit-equal | `rope.rope_cos_sin` | — |
# | deltas for generation | `mrope_batch` (left padding, `delta = max + 1 − L`) | same | the next id equals the recomputed one |
#
# Each build is held equal to the package on many random layouts by `tests/test_builds_03.py` (hypothesis).
# Speed: `benchmarks/bench_rope.py` (`make bench`) times the package's 32-sequence mixed batch against transformers.
#
# ## Exercises
#
# Work each by hand first, then check in code with the builds above. Solutions, each asserting its answer:
# `notebooks/solutions/03_mrope.py` (run by `tests/test_solutions.py`).
#
# ### Exercise 3.1 — The ids of a prompt with one 56×84 image, by hand
#
# A user turn is 2 text tokens, `<|vision_start|>`, a 56×84 (H×W) image, `<|vision_end|>`, 1 text token.
# (a) `smart_resize` keeps 56×84 (both sides are multiples of 28, 4,704 pixels lie in the bounds): what is the
# grid (t, h, w) in patches, and how many pad tokens? (b) Write the t, h and w rows of all tokens.
# (c) What is `delta`, and which id does the first generated token get?
#
# ### Exercise 3.2 — Change `mrope_section` and predict what breaks
#
# Keep head_dim 128 and θ = 10⁶. (a) With `mrope_section = [64, 0, 0]` (every pair reads the t id), what happens
# to the cos/sin of text tokens? Of the 6 tokens of the 56×84 image? What can attention then no longer tell
# apart? (b) And `[8, 28, 28]`? (c) What does the package say to `[16, 24, 16]`, and why?
#
# ### Exercise 3.3 — Make the transformers 5.x drift appear
#
# A video of 112×112 frames (8×8 patches, h' = w' = 4) sits between two text tokens. For t = 1 … 8 temporal
# patches, compare the id of the text token after the video in the build (the paper's rule) and in transformers'
# `get_rope_index` (`ref.hf_rope_index`). From which t on do they differ, and how long is that video at 2 fps?
# Which of its tokens then share a t id with the text after it? (Going deeper A.1 explains the drift.)
#
# ## Going deeper: transformers versions and qwen-vl-utils releases
#
# The lesson above follows the paper (and the release-time transformers, 4.45–4.5x, written with the model).
# Two engineering details differ in the reference installed here, transformers 5.x; both behaviours are pinned in
# `tests/test_mrope_ids.py`, and parity with 5.x is tested wherever the rules agree.
#
# ### A.1 The drift: transformers 5.x after a long, low-resolution video
#
# transformers 5.x `get_rope_index` advances by **max(h', w')** after a vision segment — correct for an image
# (t = 1), but a video's temporal ids run up to start + t − 1. When **t > max(h', w')** the tokens after the
# video get ids *inside* the video's range: the video's last frames and the text that follows share positions.
# Under the 16384-token cap that is the normal case for long videos (the 2-minute video of §2: t = 120,
# max(h', w') = 15). The paper's rule ("the next modality starts at the previous maximum + 1") and the
# release-time transformers (`llm_pos_ids_list[-1].max() + 1`) do not drift; the build and the package follow them.

# %%
# NBVAL_CHECK_OUTPUT
video = plan.grid_thw
long = segments_to_batch([[("text", 10), ("video", video), ("text", 20)]])
ours_ids, _ = mrope_ids(long["input_ids"][0], video_grids=[video])
hf_ids, _ = ref.hf_rope_index(**long)
hf_ids = hf_ids[:, 0]
pads = long["input_ids"][0] == rope.VIDEO_TOKEN_ID
after = int(pads.nonzero().max()) + 1  # <|vision_end|>
video_max = int(ours_ids[:, pads].max())
print("video grid", tuple(video), "→ t =", video[0], "> max(h', w') =", max(video[1], video[2]) // 2)
print("video ids span", int(ours_ids[:, pads].min()), "…", video_max, "(same in both)",
      torch.equal(ours_ids[:, pads], hf_ids[:, pads]))
print("<|vision_end|> after it: ours", ours_ids[:, after].tolist(), "| transformers 5.x", hf_ids[:, after].tolist())
overlap = int((ours_ids[0, pads] >= int(hf_ids[0, after])).sum())
print("video tokens whose t id >= 5.x's next id:", overlap, "of", int(pads.sum()))
print("max id + 1: ours", int(ours_ids.max()) + 1, "| 5.x", int(hf_ids.max()) + 1)

# %%
viz.plot_rope_drift(ours_ids, hf_ids, long["input_ids"][0]);

# %% [markdown]
# ### A.2 Padding and `delta`: transformers 5.x's conventions
#
# transformers 5.x puts id **0** (not 1) at padded places and subtracts the *unpadded* length: it adds its delta
# to `attention_mask.cumsum(-1) − 1` instead of the cache position, so `delta_5x = delta_ours + (L − n_real)`.
# The next token gets the same id either way:

# %%
# NBVAL_CHECK_OUTPUT
_, hf_pdeltas = ref.hf_rope_index(**prompt)
next_5x = (mask.cumsum(-1) - 1)[:, -1:] + hf_pdeltas
print("deltas (ours):", pdeltas.tolist(), "| deltas (5.x):", hf_pdeltas.tolist())
print("next token's id, ours (L + delta):", (L + pdeltas).flatten().tolist(),
      "| 5.x (cumsum(mask) - 1 + delta_5x):", next_5x.flatten().tolist())

# %% [markdown]
# ### A.3 The video budget of qwen-vl-utils 0.0.8
#
# §2 shrank the video's frames to the paper's 16384 tokens. The qwen-vl-utils release of the Qwen2-VL era (0.0.8,
# the Qwen2-VL-era release and the package's default preset) budgets **24576** tokens per video instead
# (`VIDEO_TOTAL_PIXELS = 24576·28·28`; lesson 07's appendix compares the releases). Its frames are larger, its t
# is the same, so the id span does not change. Both plans are checked against qwen-vl-utils' own `fetch_video`
# planning given the same total budget.

# %%
# NBVAL_CHECK_OUTPUT
for preset in ("paper", "0.0.8"):
    p = qs.plan_video(120 * 30, 30.0, 1080, 1920, defaults=preset)
    total_pixels = qs.MEDIA_PRESETS[preset].video_total_pixels
    indices, size = ref.qvu_plan_video(120 * 30, 30.0, 1080, 1920, {"total_pixels": total_pixels})
    same = list(p.indices) == indices and (p.resized_height, p.resized_width) == size
    t, h, w = p.grid_thw
    print(f"preset {preset:>5} ({total_pixels // 28**2} tokens): grid {t}x{h}x{w} → {p.tokens:,} tokens, "
          f"M-RoPE span max(t, h', w') = {max(t, h // 2, w // 2)}; same plan as qwen-vl-utils: {same}")
