# %% [markdown]
# # 07 · Video and GIF — frames in pairs, a token budget per video
#
# **Paper:** Qwen2-VL (Wang et al., 2024), §2.1 *Unified Image and Video Understanding*: videos are
# sampled at **2 frames per second**, consecutive frames are fused by a 3D convolution of depth 2
# (an image is two identical frames), and "we dynamically adjust the resolution of each video frame,
# limiting the total number of tokens per video to **16384**". The course notes add the GIF and video demos:
# a GIF passed as an `image` item, an mp4 as a `video` item with `fps` and `max_pixels`, both through
# `qwen_vl_utils.process_vision_info`.
# **Code:** built in this notebook (cells starting `# build:`), then the package: `qwenvl_study/media.py`
# (`process_vision_info`, `smart_nframes`, `plan_video`, PyAV decoding), `qwenvl_study/patching.py`
# (`preprocess_video`, `patchify`), `qwenvl_study/rope.py` (`mrope_position_ids`); figures in
# `qwenvl_study/course/figures/lesson07_video.py`.
# **Reference:** qwen-vl-utils 0.0.8 `vision_process.py` — the course lesson's `process_vision_info`, called for
# real (its torchvision video reader swapped for PyAV in `reference.qvu_fetch_video`); transformers'
# `video_processing_qwen2_vl.py` (`Qwen2VLVideoProcessor.patchify`), the PIL image processor and
# `Qwen2VLModel.get_rope_index`. Each build is also held equal to the package by `tests/test_builds_07.py`.
#
# qwen-vl-utils imports torchvision, which does not work here, so the course has its own video path. This lesson
# builds its decisions — which frames, how large, how many tokens, which positions — and shows they are the
# ones qwen-vl-utils and transformers make. How the qwen-vl-utils releases differ is in the **Going deeper**
# appendix at the end.

# %%
from qwenvl_study.course.env import preamble

preamble();

# %%
import numpy as np
import torch

import qwenvl_study as qs
from qwenvl_study import media
from qwenvl_study.course import figures as viz
from qwenvl_study.course import reference as ref
from qwenvl_study.course.samples import GIF_FRAME_MS, sample_path
from qwenvl_study.rope import VIDEO_TOKEN_ID, segments_to_batch

MP4, GIF = str(sample_path("sample.mp4")), str(sample_path("sample.gif"))

# %% [markdown]
# ## 1. The message format, unchanged
#
# A video item is `{"type": "video", "video": path | URL | list of frames, ...}` with optional `fps` or
# `nframes`, `min_frames`, `max_frames`, `total_pixels`, `min_pixels`, `max_pixels`, `video_start`,
# `video_end`. `process_vision_info` returns `(images, videos)` exactly as qwen-vl-utils does: a decoded
# video is a **float32 tensor `[T, C, H, W]` of 0…255 values** with T even; a list of frames stays a list of
# PIL images. The bundled `sample.mp4` is 4 s of 320×240 at 25 fps: a ball crossing, a frame counter.

# %%
# NBVAL_CHECK_OUTPUT
messages = [{"role": "user", "content": [
    {"type": "video", "video": MP4},
    {"type": "text", "text": "Where does the ball go?"},
]}]
images, videos, plans = qs.process_vision_info(messages, return_video_plans=True)
video, plan = videos[0], plans[0]
print("images:", images)
print("video:", tuple(video.shape), video.dtype, f"values {video.min():.0f}..{video.max():.0f}")
print(f"{plan.total_frames} frames at {plan.video_fps:g} fps = {plan.duration:.2f} s → {plan.nframes} sampled, "
      f"indices {list(plan.indices)}")
print(f"each frame {plan.width}x{plan.height} → {plan.resized_width}x{plan.resized_height}; grid (t, h, w) = "
      f"{plan.grid_thw} → {plan.tokens} merged tokens")
theirs = ref.qvu_fetch_video({"video": MP4})
print("equal to qwen-vl-utils' fetch_video (same float tensor):", torch.equal(video, theirs))

# %% [markdown]
# ## 2. How many frames, and which
#
# `nframes = duration × fps` (fps = 2), clamped to `[min_frames, max_frames]` = `[4, min(768, total)]`, then
# made **even** — two frames per temporal patch. Long videos hit `FPS_MAX_FRAMES = 768` (6 min 24 s at 2 fps)
# and are sampled more sparsely from then on. `nframes` can be given instead of `fps`, never both. The sampled
# frames are `linspace(0, total − 1, nframes).round()`: evenly spread, the first and the last always in.

# %%
# build: smart_nframes
import math

import torch

FPS, FPS_MIN_FRAMES, FPS_MAX_FRAMES = 2.0, 4, 768  # the published defaults (qwen-vl-utils' constants)
FRAME_FACTOR = 2  # frames per temporal patch: the Conv3d has depth 2


def smart_nframes(total_frames, video_fps, fps=FPS, nframes=None):
    """How many frames to sample: duration x fps, clamped to [4, min(768, total)], rounded to even."""
    if nframes is None:
        min_frames = math.ceil(FPS_MIN_FRAMES / FRAME_FACTOR) * FRAME_FACTOR  # 4
        max_frames = math.floor(min(FPS_MAX_FRAMES, total_frames) / FRAME_FACTOR) * FRAME_FACTOR
        nframes = min(max(total_frames / video_fps * fps, min_frames), max_frames)
    nframes = round(nframes / FRAME_FACTOR) * FRAME_FACTOR  # to even (Python's round: halves to even)
    if not FRAME_FACTOR <= nframes <= total_frames:
        raise ValueError(f"nframes must lie in [{FRAME_FACTOR}, {total_frames}], got {nframes}")
    return nframes


def frame_indices(total_frames, nframes):
    """Which frames: nframes evenly spread from the first to the last (float32 linspace, rounded)."""
    return torch.linspace(0, total_frames - 1, nframes).round().long().tolist()

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'duration':>9} {'frames@30fps':>12} {'sampled':>8}  seconds per temporal patch")
for seconds in [1, 2.2, 5.5, 30, 120, 384, 600, 1200]:
    total = int(seconds * 30)
    n = smart_nframes(total, 30.0)
    print(f"{seconds:>8}s {total:>12} {n:>8}  {seconds / (n // 2):.2f}")
print("sample.mp4 (100 frames at 25 fps):", smart_nframes(100, 25.0), "frames, indices", frame_indices(100, 8))

# %% [markdown]
# Consecutive sampled frames pair up: each pair becomes one temporal slice `t` of the grid. Decoding is
# **streaming**: a first pass reads only packet timestamps (nothing decoded) to count the frames; the second
# decodes in order, keeps only the sampled frames (resized on arrival) and stops after the last one.

# %%
viz.draw_frame_timeline(video, plan);

# %%
# NBVAL_CHECK_OUTPUT
info = media.probe_video(MP4)  # pass 1: timestamps only
print(f"pass 1: {info.total_frames} frames, {info.video_fps:g} fps, {info.width}x{info.height}, codec {info.codec}")
decoded = []
_, part = media.fetch_video({"video": MP4, "video_end": 1.0}, progress=decoded.append)  # the first second only
print(f"first second: {part.total_frames} frames in range, sampled {list(part.indices)}; "
      f"decoded {decoded[-1]} frames, converted {part.nframes} of them to images")

# %% [markdown]
# ## 3. How large, and how many tokens: a pixel budget per video, a grid of tubes
#
# A whole video gets a pixel budget, `VIDEO_TOTAL_PIXELS = 24576·28·28`, shared by its `nframes / 2` pairs of
# frames: each frame may have `max_pixels = total_pixels / nframes × 2`, kept within per-frame bounds
# (`1.05 · 128·28·28 … 768·28·28` pixels: 128 to 768 merged tokens per pair of frames). Each frame is then resized by `smart_resize` (lesson
# 01; its sides at least 28 px). Then the frames are cut into **tubes**: the
# same 14×14 square in both frames of a pair, 2 × 3 × 14 × 14 = 1176 numbers, one row of `pixel_values_videos`.
# The grid is **(t, h, w) = (nframes / 2, H' / 14, W' / 14)** tubes, and the PatchMerger fuses 2×2 tubes into one
# LLM token: **t · h · w / 4 tokens**.

# %%
# build: video_grid
import math

FACTOR = 28  # one merged token covers 28x28 pixels (2x2 patches of 14)
VIDEO_TOTAL_PIXELS = 24576 * 28 * 28  # the pixel budget of a whole video
VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS = 128 * 28 * 28, 768 * 28 * 28  # per frame


def frame_budget(nframes, total_pixels=VIDEO_TOTAL_PIXELS):
    """max_pixels of one frame: its pair's share of the budget, within the per-frame bounds."""
    share = total_pixels / nframes * FRAME_FACTOR  # nframes / 2 pairs share the budget
    return max(min(VIDEO_MAX_PIXELS, share), int(VIDEO_MIN_PIXELS * 1.05))


def smart_resize(height, width, min_pixels, max_pixels):
    """Sides to the nearest multiples of 28, then both scaled to fit [min_pixels, max_pixels] (lesson 01)."""
    h, w = round(height / FACTOR) * FACTOR, round(width / FACTOR) * FACTOR  # a 0 side lands in "too small"
    if h * w > max_pixels:  # too large: shrink both sides by beta, floor to 28
        beta = math.sqrt(height * width / max_pixels)
        h = max(FACTOR, math.floor(height / beta / FACTOR) * FACTOR)
        w = max(FACTOR, math.floor(width / beta / FACTOR) * FACTOR)
    elif h * w < min_pixels:  # too small: grow both sides, ceil to 28
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / FACTOR) * FACTOR, math.ceil(width * beta / FACTOR) * FACTOR
    return h, w


def video_grid(total_frames, video_fps, height, width, **options):
    """A video of total_frames HxW frames -> (nframes, (H', W'), grid (t, h, w) in patches, merged tokens)."""
    n = smart_nframes(total_frames, video_fps, **options)
    rh, rw = smart_resize(height, width, VIDEO_MIN_PIXELS, frame_budget(n))
    t, h, w = n // FRAME_FACTOR, rh // 14, rw // 14  # tubes of 2 frames x 14 x 14 pixels
    return n, (rh, rw), (t, h, w), t * h * w // 4  # 2x2 tubes -> one LLM token

# %% [markdown]
# The sample video: 8 frames share a budget of 24576·784 pixels, 4.8 M per frame — far over the per-frame
# maximum, so `max_pixels` is that maximum; but 320×240 rounds to 308×252 = 77,616 pixels, *under* the
# per-frame minimum (100,352), so the frames are scaled **up** to 392×280:

# %%
# NBVAL_CHECK_OUTPUT
n, (rh, rw), (t, h, w), tokens = video_grid(100, 25.0, 240, 320)
print(f"per-frame budget: min(768*784, 24576*784 / {n} * 2) = {frame_budget(n):,.0f} pixels "
      f"(the minimum is {VIDEO_MIN_PIXELS:,})")
print(f"320x240 → {rw}x{rh}; grid (t, h, w) = ({n}/2, {rh}/14, {rw}/14) = ({t}, {h}, {w}) tubes "
      f"→ {t}·{h}·{w}/4 = {tokens} tokens")

# %%
viz.draw_video_tubes(video, plan);

# %% [markdown]
# transformers' video processor needs torchvision, so it cannot run here. What can run is compared: per-frame
# normalisation by the PIL image processor (`rescale`, `normalize`) and transformers' own video `patchify` (the
# reshape/permute `(B, t, 2, C, h/2, 2, 14, w/2, 2, 14) → (0, 1, 4, 7, 5, 8, 3, 2, 6, 9)`) on those frames.
# Not compared: torchvision's resize (our frames are already at a size the processor keeps) and its fused
# rescale+normalise `(x − 255·mean) / (255·std)` (≤ 1 ulp-level differences, not run here).

# %%
# NBVAL_CHECK_OUTPUT
pv, grid = qs.preprocess_video(video)
ref_pv, ref_grid = ref.hf_video_inputs(video)
print("pixel_values_videos:", tuple(pv.shape), "video_grid_thw:", grid.tolist())
frames = qs.patching.normalize(video.permute(0, 2, 3, 1).numpy()).transpose(0, 3, 1, 2)
frames = torch.from_numpy(np.ascontiguousarray(frames))
ours_rows, _ = qs.patchify(frames)
print(f"grid equal: {torch.equal(grid, ref_grid)} | max |ours - transformers parts| = "
      f"{(pv - ref_pv).abs().max().item():.1e} | patchify row order == transformers' video patchify: "
      f"{torch.equal(ours_rows, ref.hf_video_patchify(frames)[0])}")

# %% [markdown]
# ## 4. Positions: a video on M-RoPE's temporal axis
#
# In the LLM a video is one segment of M-RoPE ids (lesson 03): starting at id `s`, the token of temporal patch
# i, merged row j, merged column k gets `(s + i, s + j, s + k)`, and the next segment starts at
# `s + max(t, h', w')`. So **the ids grow with t, not with the number of tokens**: each temporal patch (2
# sampled frames) adds one id on the temporal axis, however many tokens its frames have.

# %%
# build: video_position_ids
import torch


def video_position_ids(grid, start):
    """M-RoPE ids of one video's t*h'*w' tokens, [3, N], starting at id `start`; and the next segment's id."""
    t, h, w = grid[0], grid[1] // 2, grid[2] // 2  # temporal patches, merged rows, merged columns
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    ids = start + torch.stack([tt, hh, ww]).reshape(3, t * h * w)  # [3, t, h', w'] -> [3, t*h'*w']
    return ids, start + max(t, h, w)  # t grows by one per temporal patch (2 frames)

# %%
# NBVAL_CHECK_OUTPUT
ids, next_id = video_position_ids((t, h, w), start=2)  # after one text token and <|vision_start|>
per_slice = h // 2 * w // 2
print(f"sample.mp4: {t} temporal patches of {h // 2}x{w // 2} = {per_slice} tokens each")
print("t id of each temporal patch:", ids[0, ::per_slice].tolist(), "| h ids", int(ids[1].min()), "…",
      int(ids[1].max()), "| w ids", int(ids[2].min()), "…", int(ids[2].max()))
print(f"{ids.shape[1]} tokens use ids 2 … {int(ids.max())}; the next segment starts at {next_id} = 2 + max({t}, "
      f"{h // 2}, {w // 2})")

# %% [markdown]
# **Checklist** — the video path built above against the package (`media.plan_video`, `rope.mrope_position_ids`),
# qwen-vl-utils 0.0.8 (its own `smart_nframes` and `fetch_video` planning: which frames, what size) and
# transformers' `get_rope_index` (the video's ids), on five videos from 4 seconds to 20 minutes:

# %%
# NBVAL_CHECK_OUTPUT
qvu = ref.qwen_vl_utils()
clips = {"sample.mp4 (4 s, 320x240)": (100, 25.0, 240, 320), "sample.gif as a video (2 s)": (20, 10.0, 112, 168),
         "30 s, 1280x720, 24 fps": (720, 24.0, 720, 1280), "2 min, 1920x1080, 30 fps": (3600, 30.0, 1080, 1920),
         "20 min, 1920x1080, 30 fps": (36000, 30.0, 1080, 1920)}
print(f"{'video':<27}{'frames':>7}{'size':>9}{'grid':>11}{'tokens':>8}{'ids':>5}  build = package  "
      f"= qwen-vl-utils  ids = transformers")
sequences = {}  # name -> (grid, package ids, transformers ids) of <|vision_start|> video <|vision_end|> text
for name, (total, fps, height, width) in clips.items():
    n, (rh, rw), grid, tokens = video_grid(total, fps, height, width)
    indices = frame_indices(total, n)
    ids, next_id = video_position_ids(grid, start=1)  # after <|vision_start|>
    p = qs.plan_video(total, fps, height, width)
    case = segments_to_batch([[("video", grid), ("text", 1)]])
    package_ids, _ = qs.mrope_position_ids(**case)
    hf_ids, _ = ref.hf_rope_index(**case)
    sequences[name] = grid, package_ids[:, 0], hf_ids[:, 0]
    pads = case["input_ids"][0] == VIDEO_TOKEN_ID
    same_package = ((n, indices, (rh, rw), grid, tokens) == (p.nframes, list(p.indices), (p.resized_height,
                    p.resized_width), p.grid_thw, p.tokens) and torch.equal(ids, package_ids[:, 0, pads])
                    and next_id == int(package_ids[0, 0, -2]))  # <|vision_end|> gets the next id
    qvu_indices, qvu_size = ref.qvu_plan_video(total, fps, height, width)
    same_qvu = n == qvu.smart_nframes({}, total, fps) and indices == qvu_indices and (rh, rw) == qvu_size
    print(f"{name:<27}{n:>7}{f'{rw}x{rh}':>9}{'x'.join(map(str, grid)):>11}{tokens:>8,}{next_id - 1:>5}  "
          f"{str(same_package):<17}{str(same_qvu):<16}{torch.equal(ids, hf_ids[:, 0, pads])}")

# %% [markdown]
# ("ids": how many position ids the video spans, max(t, h', w').) transformers 5.x gives the video's own tokens
# the same ids; where it differs — the id *after* a video longer than wide — is in Going deeper B.3.
#
# ## 5. A 20-minute video and a 128K context, in tokens and in positions
#
# The paper (and the course notes' reading of it) claims understanding of videos over 20 minutes. What does
# such a video cost at the published defaults (2 fps, at most 768 frames, a budget of 24576·28² pixels per
# video)? Two different numbers matter: **tokens** — every one is attended to and stored in the KV cache — and
# **positions** — the ids M-RoPE gives them, which must stay in the range the model was trained on.

# %%
# NBVAL_CHECK_OUTPUT
seconds, fps, height, width = 20 * 60, 30.0, 1080, 1920
n, (rh, rw), (t, h, w), tokens = video_grid(seconds * 30, fps, height, width)
print(f"frames: {seconds} s x 2 fps = {seconds * 2:,} > FPS_MAX_FRAMES → {n} frames → t = {t} temporal patches "
      f"(one per {seconds / t:.3f} s)")
print(f"pixels per frame: {VIDEO_TOTAL_PIXELS:,} / {n} x 2 = {VIDEO_TOTAL_PIXELS / n * 2:,.0f} < the floor "
      f"1.05 x {VIDEO_MIN_PIXELS:,} → max_pixels {frame_budget(n):,}")
print(f"each frame {width}x{height} → {rw}x{rh} = {w}x{h} patches → {w // 2}x{h // 2} = {h * w // 4} tokens "
      f"per temporal patch")
print(f"tokens: {t} x {h * w // 4} = {tokens:,} (+2 for <|vision_start|>, <|vision_end|> = {tokens + 2:,})")
span = max(t, h // 2, w // 2)
print(f"positions: M-RoPE t ids run over {t} values; the video spans max({t}, {h // 2}, {w // 2}) = {span} ids "
      f"(+2 = {span + 2}); 1D RoPE would use {tokens + 2:,}")
text = qs.QWEN2_VL_2B.text
for context, what in ((text.max_position_embeddings, "Qwen2-VL-2B's max_position_embeddings"), (131072, "128K")):
    print(f"  in {context:,} ({what}): tokens {100 * (tokens + 2) / context:.0f}%, M-RoPE ids "
          f"{100 * (span + 2) / context:.1f}%")
kv = (tokens + 2) * text.num_hidden_layers * 2 * text.num_key_value_heads * text.head_dim * 2
print(f"KV cache of the video in the 2B (bf16: {text.num_hidden_layers} layers x k, v x "
      f"{text.num_key_value_heads} heads x {text.head_dim} x 2 bytes per token): {kv / 2**30:.2f} GiB")

# %% [markdown]
# So a 20-minute video at the defaults is **46,082 tokens** — more than the 32,768 of the 2B's configured context
# (`max_position_embeddings`; the tokenizer's `model_max_length` in the course notes' printout is the same), about
# a third of a 128K one — but only **386 position ids**: 384 temporal patches, one per 3.1 s. The cost of a long
# video is in tokens (attention, KV cache); its positions stay close to those of a short clip, the paper's
# argument for M-RoPE's extrapolation. Up to about 36 s it is the other way round: the frame's width (w' = 36 merged columns at 1008 px), not t, sets the id span.

# %%
viz.plot_video_context();

# %% [markdown]
# ## 6. GIF: an image by default, a video on request
#
# As an `image` item (how the course lesson's GIF demo passes it) a GIF is its **first frame** — what PIL
# opens, what qwen-vl-utils and the processor see. As a `video` item it is decoded like an mp4 (FFmpeg reads
# GIFs); its frame rate comes from the GIF's frame durations (100 ms → 10 fps), then the same 2-fps sampling
# applies.

# %%
viz.draw_gif_modes(GIF);

# %%
# NBVAL_CHECK_OUTPUT
as_image = qs.fetch_image({"image": GIF})
as_video, gif_plan = qs.fetch_video({"type": "video", "video": GIF})
print(f"as an image: {as_image.size[0]}x{as_image.size[1]}, {qs.count_image_tokens(*as_image.size[::-1]) - 2} tokens; "
      f"equal to qwen-vl-utils: {np.array_equal(np.asarray(as_image), np.asarray(qvu.fetch_image({'image': GIF})))}")
print(f"as a video: {gif_plan.total_frames} frames of {GIF_FRAME_MS} ms → {gif_plan.video_fps:g} fps → "
      f"{gif_plan.nframes} sampled {list(gif_plan.indices)}, {tuple(as_video.shape)}, {gif_plan.tokens} tokens")

# %% [markdown]
# ## 7. Bad input fails early and says why
#
# Every item is checked before anything is returned: a clear `ValueError` names the item and the limit.

# %%
# NBVAL_CHECK_OUTPUT
for ele in [{"type": "video", "video": MP4, "fps": 1, "nframes": 4},
            {"type": "video", "video": MP4, "video_start": 3.0, "video_end": 1.0},
            {"type": "video", "video": MP4, "nframes": 400},
            {"type": "image", "image": "http://127.0.0.1:9/x.png"}]:
    try:
        qs.process_vision_info([{"role": "user", "content": [ele]}], timeout=2.0)
    except ValueError as err:
        head, cut, _ = str(err).replace(MP4, "sample.mp4").partition(" cannot be reached")
        print(head + cut)  # the OS's reason (refused, timed out, ...) differs between machines: cut off

# %% [markdown]
# ## Summary
#
# - A video is sampled at 2 fps into an **even** number of frames (4…768), picked evenly with `linspace`
#   (`smart_nframes`, `frame_indices`, built in §2).
# - Every frame's size follows a **per-video pixel budget** shared by the frame pairs, within per-frame bounds;
#   pairs of frames become 2×14×14 tubes, 2×2 tubes one token: t·h·w/4 tokens (`video_grid`, §3).
# - On M-RoPE's temporal axis a video spans max(t, h', w') ids: a 20-minute video is 46,082 tokens but 386 ids
#   (`video_position_ids`, §4–5).
# - Our `process_vision_info` returns exactly what qwen-vl-utils returns (same frames, same sizes, same float
#   tensor), decodes with PyAV without torchvision, and keeps only the sampled frames in memory.
# - A GIF is an image (first frame) unless asked for as a video.
#
# ## Exercises
#
# Work each by hand first, then check in code with the builds above. Solutions, each asserting its answer:
# `notebooks/solutions/07_video_and_gif.py` (run by `tests/test_solutions.py`).
#
# ### Exercise 7.1 — Tokens for a 10-second clip at 2 fps, by hand
#
# A 10 s clip of 640×360 at 30 fps, default settings. How many frames are sampled? What is the per-frame
# `max_pixels`, and which bound binds? The resized frame, the grid (t, h, w), the merged tokens (and with the two
# wrapper tokens)? How many M-RoPE ids does it span, and which axis sets that?
#
# ### Exercise 7.2 — The course lesson's video settings
#
# The course notes' video demo passes `"fps": 1.0, "max_pixels": 360 * 420` with its mp4. For a 30 s
# 1920×1080 clip at 30 fps: frames, frame size, tokens — and the same clip at the defaults. (In qwen-vl-utils
# 0.0.8 an item's `max_pixels` *replaces* the per-frame budget.) How many times fewer tokens do the demo's
# settings cost?
#
# ### Exercise 7.3 — GIF frame durations
#
# A GIF stores each frame's duration in hundredths of a second. Save 200 frames with `duration=33` (ms) with
# PIL: what duration is stored, what frame rate does the decoder report, how long is the GIF, how many frames
# are sampled — and how many would a true 33 ms (6.6 s) give? How many tokens is the same GIF as an `image`
# item, and as a `video` item, for 112×84 frames?
#
# ### Exercise 7.4 — Why a still image is 2 identical frames
#
# The patch embedding is a Conv3d with kernel (2, 14, 14): it needs two frames. (a) Show that an image and the
# 2-frame video of that image twice give the same rows of 1176 and the same grid. (b) Show that the Conv3d over
# two identical frames equals a Conv2d whose kernel is the Conv3d's kernel summed over its two time slices —
# so one set of weights serves images and videos.
#
# ## Going deeper: qwen-vl-utils releases, the paper's cap, and transformers 5.x
#
# ### B.1 The video budget by release
#
# The constants above are qwen-vl-utils 0.0.8's (the Qwen2-VL-era release, the package's default preset, pinned
# by the dev extra). A video costs at most **`total_pixels / 784`** tokens — *as long as the per-frame floor does
# not bind*. The constants changed between releases, and neither release is the paper's number:
#
# | preset | `VIDEO_TOTAL_PIXELS` | token budget | `smart_nframes` | where it comes from |
# |---|---|---|---|---|
# | **`0.0.8`** (default) | 24576·28·28 | 24576 | round to even | the Qwen2-VL-era release, the course lesson's time; the dev extra pins it |
# | `0.0.10` | int(128000·28·28·0.9) | 115200 | floor to even, ≤ total frames | sized for a 128K context (Qwen2.5-VL era) |
# | `paper` | 16384·28·28 | **16384** | round to even | the paper's number: floor lowered to 4 tokens, cap checked |
#
# Neither qwen-vl-utils release realises the paper's 16384 by itself: 0.0.8's budget is 24576, and beyond
# ~365 frames its per-frame floor (1.05 × 128 tokens per pair) breaks even that (the 20-minute video: 46,080).
# The default follows 0.0.8 (what the model card's code produced); `defaults="paper"` follows the paper.

# %%
viz.plot_video_tokens_vs_duration();

# %%
# NBVAL_CHECK_OUTPUT
print("1920x1080 at 30 fps, tokens / sampled frames per preset")
print(f"{'duration':>8}" + "".join(f"{name:>16}" for name in qs.MEDIA_PRESETS))
for seconds in [10, 60, 180, 600, 1200]:
    row = [qs.plan_video(30 * seconds, 30.0, 1080, 1920, defaults=name) for name in qs.MEDIA_PRESETS]
    print(f"{seconds:>7}s" + "".join(f"{p.tokens:>9} / {p.nframes:<4}" for p in row))
idx, size = ref.qvu_plan_video(30 * 600, 30.0, 1080, 1920)
p = qs.plan_video(30 * 600, 30.0, 1080, 1920)
print("10 min, preset 0.0.8 == qwen-vl-utils 0.0.8 (frames and size):", list(p.indices) == idx and
      (p.resized_height, p.resized_width) == size, "| which limit binds:", p.limit)

# %% [markdown]
# ### B.2 Other differences between the releases
#
# The two releases also differ in the frame count itself (0.0.8 rounds 5.5 pairs up, 0.0.10 floors), in how an
# item's `max_pixels` acts (0.0.8 replaces the budget, 0.0.10 can only lower it) and in transparency (0.0.8
# drops alpha, 0.0.10 composites over white):

# %%
# NBVAL_CHECK_OUTPUT
for name in ("0.0.8", "0.0.10"):
    p = qs.plan_video(55, 10.0, 240, 320, defaults=name)  # 5.5 s at 10 fps
    q = qs.plan_video(100, 25.0, 1080, 1920, {"max_pixels": 2_000_000}, defaults=name)  # 4 s of 1080p
    print(f"preset {name:>6}: 5.5 s clip → {p.nframes:>2} frames, {p.tokens} tokens | 4 s of 1080p with "
          f"max_pixels=2M → {q.resized_width}x{q.resized_height}, {q.tokens} tokens")

# %% [markdown]
# ### B.3 The text after a long video in transformers 5.x
#
# transformers 5.x's `get_rope_index` starts the segment after a video at `s + max(h', w')`, ignoring t (lesson
# 03, Going deeper A.1). Every video longer than wide in temporal patches — t > max(h', w'), which the 20-minute
# video is (384 > 15) — then overlaps the text after it; the paper's rule, built above and followed by the
# package, does not:

# %%
# NBVAL_CHECK_OUTPUT
grid, ours, theirs = sequences["20 min, 1920x1080, 30 fps"]  # from the checklist: <vs> video <ve> text
print(f"20-min video, grid {grid}: the text after it gets id {int(ours[0, -1])} (paper rule) vs "
      f"{int(theirs[0, -1])} (transformers 5.x), inside the video's t ids 1 … {grid[0]}")
