# %% [markdown]
# # 01 · From pixels to 66 tokens — Naive Dynamic Resolution
#
# **Paper:** Qwen2-VL (Wang et al., 2024), §2.1 *Naive Dynamic Resolution*.
# **Code:** `qwenvl_study/resolution.py`, `qwenvl_study/patching.py`, `qwenvl_study/config.py`.
# **Reference:** transformers' `Qwen2VLImageProcessorPil` (`image_processing_pil_qwen2_vl.py`) and its
# `smart_resize`, qwen-vl-utils 0.0.8's `smart_resize`, transformers' model on the meta device.
#
# Qwen-VL squeezed every image to 448×448 and 256 tokens. Qwen2-VL keeps the image close to its
# native size: a 224×224 image costs **66** tokens, a 1080p screenshot **2693**. This lesson follows
# one image from pixels to the number of tokens the LLM sees.
#
# The chain: **resize** (sides → multiples of 28, pixel count clamped) → **rescale + normalise**
# (CLIP mean/std) → **two identical frames** → **cut 2×14×14 tubes** (1176 numbers each) →
# ViT → **merge 2×2 patches** into one token → wrap in `<|vision_start|> … <|vision_end|>`.
#
# **How to read it.** Each mechanism is written here, in the open, in a cell whose first line is
# `# build: NAME` — plain Python, numpy and torch, nothing from this repo's package. Right after it,
# one *checklist* cell prints the build's values next to the package (`qwenvl_study`) and the reference
# libraries. `tests/test_builds_01.py` holds every build equal to the package on many inputs.
# Exercises with solutions (`notebooks/solutions/01_dynamic_resolution.py`) are at the end.

# %%
from qwenvl_study.course.env import preamble

preamble();

# %%
import numpy as np
import torch
from PIL import Image

import qwenvl_study as qs
from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.course import figures as viz
from qwenvl_study.course.samples import sample_path

# %% [markdown]
# ## 1. The resize rule: `smart_resize`
#
# A ViT patch is 14×14 pixels and the merger later joins 2×2 patches into one LLM token, so an image
# must have sides that are multiples of **28**. `smart_resize` picks the size the processor resizes to:
#
# 1. round each side to the nearest multiple of 28 (Python's `round`: a half rounds to the even
#    neighbour, so 70 px → 2.5 → 2 → 56 px);
# 2. if the result has more than `max_pixels`, shrink both sides by β = √(H·W / max_pixels) and round
#    *down* to multiples of 28; if it has fewer than `min_pixels`, grow both sides by β = √(min_pixels / (H·W))
#    and round *up*. One factor for both sides: the aspect ratio survives as well as multiples of 28 allow;
# 3. the **aspect guard**: an image more than 200 times longer than it is wide (or the reverse) is refused —
#    rounding its short side up to 28 px would stretch it and inflate its pixel count far past the intended
#    budget, so the processor raises instead.
#
# The published Qwen2-VL-2B-Instruct preprocessor uses `min_pixels = 56·56 = 3136` (the area of 2×2 = 4
# tokens) and `max_pixels = 28·28·16384 = 12,845,056` (at most 16384 tokens). Those are the package defaults.

# %%
# build: smart_resize
import math

FACTOR = 28  # 14-pixel patch x 2x2 merge: one LLM token per 28x28 square
MIN_PIXELS = 56 * 56  # 3136 pixels: the area of 2x2 tokens
MAX_PIXELS = 28 * 28 * 16384  # 12,845,056 pixels: the area of 16384 tokens
MAX_RATIO = 200  # the aspect guard


def smart_resize(height, width, factor=FACTOR, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS):
    """The (height, width) an image is resized to: multiples of `factor`, pixel count in [min, max]."""
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.2f} of a {height}x{width} "
                         f"image exceeds {MAX_RATIO}")
    h_bar = round(height / factor) * factor  # 1. nearest multiple of 28 (halves to even)
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:  # 2a. too many pixels: shrink by beta, round down
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:  # 2b. too few pixels: grow by beta, round up
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar

# %% [markdown]
# From the resized size to the number of tokens: the resized image is cut into 14-px patches
# (`grid_thw = (1, H'/14, W'/14)`: one temporal slice, see §4), every 2×2 patches become one merged token,
# and the LLM sees the merged tokens plus `<|vision_start|>` and `<|vision_end|>`.

# %%
# build: count_image_tokens
PATCH_SIZE, MERGE_SIZE = 14, 2


def image_grid_thw(height, width, **bounds):
    """(t, h, w) patch grid: t = 1 (an image is one tube of two identical frames, §4)."""
    rh, rw = smart_resize(height, width, **bounds)
    return 1, rh // PATCH_SIZE, rw // PATCH_SIZE


def count_image_tokens(height, width, special_tokens=True, **bounds):
    """LLM tokens of one image: (h*w patches) / (2x2 per token), + 2 for vision_start / vision_end."""
    t, h, w = image_grid_thw(height, width, **bounds)
    merged = t * h * w // MERGE_SIZE**2  # [t*h*w patches] -> [t*h*w/4 tokens]
    return merged + (2 if special_tokens else 0)

# %%
# NBVAL_CHECK_OUTPUT
h, w = smart_resize(224, 224)
t, gh, gw = image_grid_thw(224, 224)
print(f"224x224 → resized {h}x{w} → grid t={t} h={gh} w={gw} → {t * gh * gw} patches")
print(f"→ {gh * gw // 4} merged tokens (2x2) + 2 special = {count_image_tokens(224, 224)} tokens")
h, w = smart_resize(300, 1000)
print(f"1000x300 → resized {w}x{h} → {count_image_tokens(300, 1000)} tokens   (exercise 1.1 does it by hand)")

# %% [markdown]
# **Checklist.** The build against the package (`qs.smart_resize`, `qs.count_image_tokens`), transformers'
# `smart_resize` and its image processor (`get_number_of_image_patches`, which must be 4× the merged tokens),
# and qwen-vl-utils 0.0.8's `smart_resize` (it differs only for very thin images: §7). Then a sweep over
# 3000 random sizes.

# %%
# NBVAL_CHECK_OUTPUT
processor = ref.hf_image_processor()
qvu = ref.qwen_vl_utils()
cases = {"224x224": (224, 224), "1000x300": (300, 1000), "1920x1080": (1080, 1920), "32x18": (18, 32),
         "19x19": (19, 19), "8K 7680x4320": (4320, 7680), "strip 2000x13": (13, 2000)}
print(f"{'image (WxH)':14} {'build':>10} {'tokens':>10}   package  transformers  processor  qwen-vl-utils")
for name, (H, W) in cases.items():
    rh, rw = smart_resize(H, W)
    tokens = count_image_tokens(H, W)
    package = (rh, rw) == qs.smart_resize(H, W) and tokens == qs.count_image_tokens(H, W)
    transformers_ = (rh, rw) == ref.hf_smart_resize(H, W)
    patches = processor.get_number_of_image_patches(H, W, {}) == 4 * (tokens - 2)
    qh, qw = qvu.smart_resize(H, W)
    other = "✔" if (qh, qw) == (rh, rw) else f"{qw}x{qh} (§7)"
    print(f"{name:14} {f'{rw}x{rh}':>10} {f'{tokens - 2} + 2':>10}   {'✔✘'[not package]:^7}  {'✔✘'[not transformers_]:^12}"
          f"  {'✔✘'[not patches]:^9}  {other}")

rng = np.random.default_rng(0)
sizes = [(int(a), int(b)) for a, b in rng.integers(1, 8001, size=(3000, 2)) if max(a, b) / min(a, b) <= 200]
same = all(smart_resize(H, W) == qs.smart_resize(H, W) == ref.hf_smart_resize(H, W) for H, W in sizes)
print(f"{len(sizes)} random sizes up to 8000 px (aspect <= 200): build == package == transformers for all: {same}")
try:
    smart_resize(10, 2010)
except ValueError as e:
    print("aspect guard:", e)

# %% [markdown]
# The same 224×224 claim, checked on the reference processor's actual output (package vs
# `Qwen2VLImageProcessorPil`, through `checks.preprocess_image`):

# %%
# NBVAL_CHECK_OUTPUT
img224 = Image.fromarray(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8))
check = checks.preprocess_image(img224)  # ours vs transformers' image processor
(pixel_values, grid_thw), (hf_pixel_values, hf_grid) = check.ours, check.reference
print("ours:      pixel_values", tuple(pixel_values.shape), "grid_thw", grid_thw.tolist())
print("reference: pixel_values", tuple(hf_pixel_values.shape), "grid_thw", hf_grid.tolist())
print("max |ours - reference| <= 1e-6:", check.max_abs_error <= 1e-6)

# %% [markdown]
# ## 2. Tokens for common sizes
#
# Every row is computed by the package's `count_image_tokens`; the last column asks the reference processor
# how many patches it would produce (`get_number_of_image_patches`) and checks it is 4× the merged tokens.

# %%
# NBVAL_CHECK_OUTPUT
sizes = {"224²": (224, 224), "448²": (448, 448), "1280x720": (720, 1280), "1920x1080": (1080, 1920),
         "4K 3840x2160": (2160, 3840), "8K 7680x4320": (4320, 7680), "panorama 8000x200": (200, 8000),
         "thumbnail 32x32": (32, 32)}
print(f"{'image (WxH)':20} {'resized WxH':>12} {'grid hxw':>9} {'patches':>8} {'tokens':>7}  ref")
for name, (H, W) in sizes.items():
    rh, rw = qs.smart_resize(H, W)
    _, gh, gw = qs.resolution.image_grid_thw(H, W)
    tokens = qs.count_image_tokens(H, W)
    ok = processor.get_number_of_image_patches(H, W, {}) == 4 * (tokens - 2)
    print(f"{name:20} {f'{rw}x{rh}':>12} {f'{gh}x{gw}':>9} {gh * gw:>8} {tokens:>7}  {'✔' if ok else '✘'}")

# %% [markdown]
# Two clamps shape the curve below. Above 12.8 M pixels an image is scaled *down* to ≤ 16384 tokens (the
# 8K image). In between, tokens grow linearly with the pixel count — 4× the pixels, 4× the tokens.
# Below 3136 pixels an image is scaled *up* to about 3136 pixels — **at least** 4 tokens, but not always 4:
# β makes the area exactly 4 tokens' worth, (H·β/28)·(W·β/28) = 4, and then *each* side is rounded up,
# so the count is ⌈H·β/28⌉·⌈W·β/28⌉. A square gives 2·2 = 4; a 32×18 image (16:9) gives ⌈1.5⌉·⌈2.67⌉ = 2·3 = **6**;
# a 4:1 strip has factors near 1 and 4: 1·4 = 4 when both are exact, 1·5 = 5, 2·4 = 8 or 2·5 = 10 when one or
# both land just above a whole number — the saw-tooth of the 4:1 curve (whole-pixel sides are rarely exactly
# 4:1). Even a square can land on 9: for 19×19, 19·(56/19)/28 is 2.0000000000000004 in floating point, and the
# ceiling makes it 3 (transformers computes the same, so the processor does too).

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'image (WxH)':12} {'H·β/28':>9} {'W·β/28':>9} {'grid':>5} {'merged tokens':>14}")
for W, H in [(32, 32), (32, 18), (20, 20), (19, 19), (60, 15), (61, 15), (64, 17), (76, 19)]:
    beta = math.sqrt(MIN_PIXELS / (H * W))
    rh, rw = smart_resize(H, W)
    print(f"{f'{W}x{H}':12} {H * beta / 28:>9.4f} {W * beta / 28:>9.4f} {f'{rh // 28}x{rw // 28}':>5} "
          f"{count_image_tokens(H, W, special_tokens=False):>14}")

# %%
viz.plot_tokens_vs_resolution();

# %% [markdown]
# *Figure:* merged tokens (log scale) against the width, for three aspect ratios; the dashed lines are the two
# clamps (labelled on the line), the dotted lines the widths of a 224² image, a 448² image and 1080p. Below
# ~60 px wide every curve sits on or just above 4; the 16:9 curve stays at 6 and the 4:1 curve jumps between
# 4 and 10 (the table above).

# %% [markdown]
# ## 3. The patch grid and the 2×2 merge groups
#
# The sample image (drawn by the package itself, 640×480) becomes 644×476: 34×46 patches of 14 px.
# Each tinted 2×2 group of patches will become **one** LLM token after the PatchMerger.

# %%
viz.draw_patch_grid(sample_path());

# %% [markdown]
# The rows of `pixel_values` are **not** in raster order: the processor emits the 4 patches of a
# merge group consecutively, so that the merger can simply reshape 4 rows into one 5120-wide row.
# The numbers below are row indices in `pixel_values` (computed by `vision_position_ids`, the same
# order the ViT's 2D-RoPE uses, lesson 02).

# %%
viz.draw_patch_order(4, 6);

# %%
# NBVAL_CHECK_OUTPUT
# check the drawn order on real rows: paint each patch with its (row, col) and read the rows back
frames = torch.zeros(2, 1, 4 * 14, 6 * 14)
for r in range(4):
    for c in range(6):
        frames[:, :, r * 14:(r + 1) * 14, c * 14:(c + 1) * 14] = 10 * r + c
rows, grid = qs.patchify(frames)
print("grid:", grid)
print("(row, col) of the first 8 rows:", [divmod(int(v), 10) for v in rows[:8, 0]])

# %% [markdown]
# ## 4. From pixels to `pixel_values`: the processor's settings, two frames, tubes
#
# The ViT's first layer is a 3D convolution over **tubes** of 2 frames × 14 × 14 — so that videos and
# images share one network. An image is simply duplicated in time: both halves of every tube are equal.

# %%
viz.draw_two_frames(sample_path());

# %% [markdown]
# Before the tubes are cut, the processor resizes and normalises. Its settings — the ones the course
# lesson prints from `AutoProcessor` — read from the reference processor itself:
#
# - `resample` **BICUBIC**: the resize to the `smart_resize` size uses PIL's bicubic filter;
# - `rescale_factor` **1/255**: 8-bit values become [0, 1];
# - `image_mean` / `image_std`: the **OpenAI CLIP** statistics, per channel (R, G, B): x → (x − mean) / std.
#   A white pixel becomes (1 − 0.481) / 0.269 ≈ 1.93 in the red channel, a black one ≈ −1.79.

# %%
# NBVAL_CHECK_OUTPUT
print("resample:", processor.resample.name, "| rescale_factor:", processor.rescale_factor, "= 1/255:",
      processor.rescale_factor == 1 / 255)
print("image_mean:", processor.image_mean)
print("image_std: ", processor.image_std)
print("patch_size", processor.patch_size, "| merge_size", processor.merge_size, "| temporal_patch_size",
      processor.temporal_patch_size, "| convert to RGB:", processor.do_convert_rgb)

# %%
# build: pixel_values
import numpy as np
import torch
from PIL import Image

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
TEMPORAL_PATCH = 2


def pixel_values(image):
    """An RGB PIL image -> (rows [h*w, 1176], grid (1, h, w)), rows in 2x2-merge-group order."""
    H, W = smart_resize(image.height, image.width)
    x = np.asarray(image.resize((W, H), resample=Image.Resampling.BICUBIC))  # [H, W, 3] uint8
    x = (x.astype(np.float64) * (1 / 255)).astype(np.float32)  # rescale to [0, 1]
    x = (x - CLIP_MEAN) / CLIP_STD  # normalise per channel
    x = torch.from_numpy(x).permute(2, 0, 1)  # [H, W, 3] -> [3, H, W]
    frames = x[None].expand(TEMPORAL_PATCH, -1, -1, -1)  # [2, 3, H, W]: two identical frames
    p, m, h, w = PATCH_SIZE, MERGE_SIZE, H // PATCH_SIZE, W // PATCH_SIZE
    x = frames.reshape(TEMPORAL_PATCH, 3, h // m, m, p, w // m, m, p)  # split rows and columns into groups
    x = x.permute(2, 5, 3, 6, 1, 0, 4, 7)  # [h/m, w/m, m, m, 3, 2, p, p]: groups, then patches in a group
    return x.reshape(h * w, 3 * TEMPORAL_PATCH * p * p), (1, h, w)  # [h*w, 1176]

# %% [markdown]
# **Checklist** on the sample image: the build against the package (`qs.preprocess_image`) and the
# reference processor, and the two frames of every tube.

# %%
# NBVAL_CHECK_OUTPUT
sample = Image.open(sample_path()).convert("RGB")
pv_build, grid_build = pixel_values(sample)
check = checks.preprocess_image(sample_path())  # package vs transformers' image processor
(pv, grid_thw), (hf_pv, hf_grid) = check.ours, check.reference
tubes = pv_build.view(-1, 3, 2, 14, 14)  # [N, C, T, P, P]
print("sample.png → build: pixel_values", tuple(pv_build.shape), "grid", grid_build)
print("frame 0 == frame 1 in every tube:", torch.equal(tubes[:, :, 0], tubes[:, :, 1]))
print("build == package (<= 1e-6):", (pv_build - pv).abs().max().item() <= 1e-6,
      "| build == reference processor (<= 1e-6):", (pv_build - hf_pv).abs().max().item() <= 1e-6,
      "| same grid:", list(grid_build) == hf_grid[0].tolist())
print("package == reference processor (<= 1e-6):", check.max_abs_error <= 1e-6, "| same grid:", check.details["grid_equal"])

# %%
print(f"measured max |build - reference| {(pv_build - hf_pv).abs().max().item():.2e}, "
      f"|package - reference| {(pv - hf_pv).abs().max().item():.2e}; values in [{pv.min():.3f}, {pv.max():.3f}]")

# %% [markdown]
# ## 5. The patch embedding: a Conv3d that is really a Linear
#
# `Conv3d(3, 1280, kernel_size=(2, 14, 14), stride=(2, 14, 14), bias=False)`: the kernel covers the
# whole tube and the stride never overlaps, so each output is one dot product of the kernel with the
# tube's 1176 numbers — a `Linear(1176, 1280)` whose weight is the kernel flattened in (C, T, P, P) order,
# the order the rows already have.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
embed = qs.PatchEmbed(embed_dim=1280)
linear = embed.as_linear()
x = pv[:64]
print("conv weight", tuple(embed.proj.weight.shape), "→ linear weight", tuple(linear.weight.shape))
print("Conv3d(x) == Linear(x) within 1e-5:", (embed(x) - linear(x)).abs().max().item() <= 1e-5)

# %% [markdown]
# ## 6. Native resolution, packed: NaViT and `cu_seqlens`
#
# The paper cites **NaViT** (Dehghani et al., "Patch n' Pack: NaViT, a Vision Transformer for any Aspect
# Ratio and Resolution") for the idea: a ViT only needs a *sequence* of patches, so instead of resizing
# every image to one square, NaViT keeps each image's own resolution and aspect ratio and **packs** the
# patches of several images into one sequence, with an attention mask so that patches attend only within
# their own image. NaViT trains with learned factorised (x, y) position embeddings and random token
# dropping. Qwen2-VL keeps the packing and the per-image attention but differs where it matters here:
# positions are **2D-RoPE** (lesson 02), not a learned table; no tokens are dropped; sides are rounded to
# multiples of 28 and the pixel count clamped (§1); and the packed sequence is described by
# **`cu_seqlens`** — cumulative lengths, one attention block per image (and per 2-frame slice of a video) —
# which variable-length attention kernels consume directly instead of a dense mask (lesson 04).

# %%
# NBVAL_CHECK_OUTPUT
packed = torch.tensor([image_grid_thw(224, 224), image_grid_thw(300, 1000)])  # two images, one sequence
check = checks.cu_seqlens(packed)  # package vs transformers' get_vision_cu_seqlens
print("grids (t, h, w):", packed.tolist(), "→ patches per image:", (packed.prod(-1)).tolist())
print("cu_seqlens:", check.ours.tolist(), "| equal to transformers':", check.ok)

# %% [markdown]
# ## 7. Reference drift: very thin images
#
# transformers' `smart_resize` rounds each side first; a side under 14 px rounds to **0**, then the
# min-pixels branch scales *both* sides up. qwen-vl-utils (which the course lesson's demo runs *before* the
# processor) first clamps each rounded side to ≥ 28. For a 2000×13 strip they disagree by ~3×.
#
# The package follows transformers by default (`rule="transformers"`, what the processor does when
# given a raw image) and offers `rule="qwen-vl-utils"` — the media pipeline of lesson 07 uses the latter,
# as the course lesson's demo does. Both are pinned in `tests/test_resolution.py` against the real libraries.

# %%
# NBVAL_CHECK_OUTPUT
for rule in ("transformers", "qwen-vl-utils"):
    rh, rw = qs.smart_resize(13, 2000, rule=rule)
    print(f"{rule:14} 2000x13 → {rw}x{rh}: {qs.count_image_tokens(13, 2000, rule=rule)} tokens")
print("transformers agrees:", checks.smart_resize(13, 2000).ok)
print("qwen-vl-utils agrees:", checks.qwen_vl_utils_resize(13, 2000).ok)

# %% [markdown]
# ## 8. How big is the model?
#
# The ViT is the same in every size — 32 blocks of width 1280, 16 heads — but its last layer is not: the
# merger's final `Linear(5120, d)` outputs the LLM's width d (1536 / 3584 / 8192), so the vision tower counts
# **665.3M** parameters in 2B, **675.8M** in 7B and **699.4M** in 72B. The paper's "675M ViT" is the 7B's
# tower. Counted by hand from the config (`count_parameters`) and checked against transformers' own model
# built on the *meta* device (shapes only, no memory):

# %%
# NBVAL_CHECK_OUTPUT
for name, cfg in [("2B", qs.QWEN2_VL_2B), ("7B", qs.QWEN2_VL_7B), ("72B", qs.QWEN2_VL_72B)]:
    check = checks.parameter_count(cfg)  # arithmetic on the config vs transformers' model on meta
    ours, theirs = check.ours, check.reference
    print(f"Qwen2-VL-{name:3}: vision {ours.vision:>13,}  language {ours.language:>14,}  total {ours.total:>14,}"
          f"  {'✔' if check.ok else '✘'} transformers")
print("2B in bf16:", f"{2 * qs.count_parameters(qs.QWEN2_VL_2B).total:,}", "bytes (the published checkpoint's total_size)")
d2, d7 = qs.QWEN2_VL_2B.text.hidden_size, qs.QWEN2_VL_7B.text.hidden_size
print(f"7B tower - 2B tower = {qs.count_parameters(qs.QWEN2_VL_7B).vision - qs.count_parameters(qs.QWEN2_VL_2B).vision:,}"
      f" = 5121 x ({d7} - {d2}): only the merger's last Linear (weight + bias) differs")

# %% [markdown]
# The module tree of Qwen2-VL-2B as transformers 5 prints it (`print(model)` of its model on the meta
# device, built from our config). The course lesson's print came from transformers 4.45 with
# `attn_implementation="flash_attention_2"`, so its attention classes read `VisionFlashAttention2` and
# `Qwen2VLFlashAttention2`, with `visual` and the LLM (`model`) side by side at the top; transformers 5 has
# one attention class per model (`VisionAttention`, `Qwen2VLAttention`) and nests both under `model`
# (`model.visual`, `model.language_model`). The layers and their shapes — the part that matters — are the same.

# %%
print(ref.hf_meta_model(qs.QWEN2_VL_2B))

# %% [markdown]
# ## 9. Qwen-VL → Qwen2-VL

# %%
from qwenvl_study.config import QWEN_VL_VS_QWEN2_VL, format_table

print(format_table(QWEN_VL_VS_QWEN2_VL))

# %% [markdown]
# ## 10. A token calculator (Qwen2-VL, Qwen2.5-VL, Qwen3-VL)
#
# The same rules as the website's calculator (`site/calculator/tokens.js`, tested against these very
# Python functions): `smart_resize` with 28-pixel tokens (Qwen2-VL, Qwen2.5-VL; 3136 … 12,845,056
# pixels) or 32-pixel tokens (Qwen3-VL: 16-px patches; 65,536 … 16,777,216 pixels), and the video
# budgets of qwen-vl-utils 0.0.8 / 0.0.10 (`plan_video`) and transformers' `Qwen3VLVideoProcessor`.
# In a running kernel the sliders below recompute everything; on the website (no kernel) the table
# printed first is the answer for a few common sizes.

# %%
MODELS = {  # name: (patch px, min_pixels, max_pixels, video preset or None for Qwen3-VL's processor)
    "Qwen2-VL": (14, 3136, 12845056, "0.0.8"),
    "Qwen2.5-VL": (14, 3136, 12845056, "0.0.10"),
    "Qwen3-VL": (16, 65536, 16777216, None),
}


def calculate(width, height, model="Qwen2-VL", seconds=60.0, fps=2.0, video_fps=30.0):
    """Resized size, grid, tokens and M-RoPE extent of an image, and the tokens of a video of that frame size."""
    patch, lo, hi, preset = MODELS[model]
    factor = 2 * patch  # 2x2 patches per merged token
    rh, rw = qs.smart_resize(height, width, factor=factor, min_pixels=lo, max_pixels=hi)
    mh, mw = rh // factor, rw // factor
    total = round(seconds * video_fps)
    if preset is not None:
        plan = qs.plan_video(total, video_fps, height, width, {"fps": fps}, defaults=preset)
        nframes, vh, vw = plan.nframes, plan.resized_height, plan.resized_width
    else:
        nframes, vh, vw = ref.hf_qwen3_vl_video_plan(total, video_fps, height, width, fps=fps)
    video_tokens = -(-nframes // 2) * (vh // factor) * (vw // factor)
    return {"resized": f"{rw}x{rh}", "grid": f"1x{rh // patch}x{rw // patch}", "tokens": mh * mw,
            "rope": f"t 1, h {mh}, w {mw} -> +{max(mh, mw)}", "video": f"{nframes} frames of {vw}x{vh}: {video_tokens} tokens"}


sizes = [(224, 224), (640, 480), (1280, 720), (1920, 1080), (3840, 2160), (2000, 13)]
print(f"{'W x H':>11} | {'model':<10} | {'resized':>9} | {'tokens':>6} | {'M-RoPE extent':<22} | 1-min video at 2 fps")
for w, h in sizes:
    for model in MODELS:
        r = calculate(w, h, model)
        print(f"{w:>5}x{h:<5} | {model:<10} | {r['resized']:>9} | {r['tokens']:>6} | {r['rope']:<22} | {r['video']}")
assert calculate(224, 224)["tokens"] == 64 == qs.count_image_tokens(224, 224) - 2

# %%
try:
    import ipywidgets as widgets
except ImportError:  # no ipywidgets: the table above is the calculator
    widgets = None
    print("ipywidgets is not installed: use calculate(width, height, model) or the website's calculator page")

if widgets is not None:
    def show(width, height, model, seconds, fps):
        for key, value in calculate(width, height, model, seconds, fps).items():
            print(f"{key:>8}: {value}")

    ui = widgets.interactive(
        show,
        width=widgets.IntSlider(value=1920, min=16, max=8000, step=1, description="width"),
        height=widgets.IntSlider(value=1080, min=16, max=8000, step=1, description="height"),
        model=widgets.Dropdown(options=list(MODELS), value="Qwen2-VL"),
        seconds=widgets.FloatSlider(value=60.0, min=1.0, max=1200.0, step=1.0, description="video s"),
        fps=widgets.FloatSlider(value=2.0, min=0.5, max=4.0, step=0.5, description="sample fps"),
    )
    display(ui)

# %% [markdown]
# ## Exercises
#
# Solutions, each asserting its answer (run in CI by `tests/test_solutions.py`):
# `notebooks/solutions/01_dynamic_resolution.py`.
#
# ### Exercise 1.1 — tokens for a 1000×300 image
#
# By hand: round each side to a multiple of 28; check the pixel count against the two clamps; divide each
# side by 28; multiply; add the two special tokens. Then in code: `count_image_tokens(300, 1000)` with the
# build above, and the same with the package and the reference processor.
#
# ### Exercise 1.2 — which squares get exactly the minimum of 4 tokens?
#
# By hand: predict the largest square image (side s px) that still gets 4 merged tokens (hint: the
# round-half-to-even rule at s = 70). Then in code: list every side s ≤ 100 whose square gets more than 4 —
# are there any you did not predict, and why (§2)?
#
# ### Exercise 1.3 — predict the saw-tooth of a 4:1 image
#
# Below the clamp the merged count is ⌈H·β/28⌉·⌈W·β/28⌉ with (H·β/28)·(W·β/28) = 4 (§2). By hand: for a
# 4:1 image the two factors are about 1 and 4 — which counts can a nearly-4:1 image W×H (W ≈ 4H, W·H < 3136)
# get, and which does an exactly-4:1 one get? Then in code: tabulate the counts for W = 16 … 110, H = round(W/4),
# and compare with the green curve of the figure.

# %% [markdown]
# **Takeaways.** One LLM token per 28×28 pixels; 224² → 66 tokens; the count is clamped to [4, 16384]
# (+2) — *at least* 4 below the clamp (6 for 32×18), not exactly 4; pixels are resized bicubic, rescaled by
# 1/255 and CLIP-normalised; images are two identical frames cut into 1176-number tubes; several images are
# packed into one sequence (NaViT's idea) with one attention block each; the patch embedding is a linear map.
# Next: lesson 02 — where each patch *is* (2D-RoPE).
