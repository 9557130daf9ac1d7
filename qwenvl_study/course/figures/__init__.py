"""Figures the notebooks and the demo share (matplotlib; each function returns its Figure).

Every figure is computed from the package's own functions — a drawing never restates a number
by hand; every axis is labelled and every figure titled. One section per lesson, in this order:
01 dynamic resolution and patching; 07–08 media, chat, grounding; 09–10 the VLM family; 04 the
vision encoder; 02–03 positions (vision 2D-RoPE, M-RoPE). The paper sections and reference files
are those of the modules each figure draws from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ...patching import open_image, resize_image, to_rgb
from ...resolution import FACTOR, MAX_PIXELS, MERGE_SIZE, MIN_PIXELS, PATCH_SIZE, count_image_tokens

__all__ = [
    "savefig",
    "draw_patch_grid",
    "draw_patch_order",
    "plot_tokens_vs_resolution",
    "draw_two_frames",
    "explain_image",
    "explain_video",
    "draw_frame_timeline",
    "draw_video_tubes",
    "draw_temporal_slices",
    "moving_patch",
    "plot_video_tokens_vs_duration",
    "draw_gif_modes",
    "draw_chat_tokens",
    "plot_input_composition",
    "draw_grounding",
    "draw_connectors",
    "draw_qformer_masks",
    "draw_internvl_tiles",
    "draw_token_grouping",
    "plot_token_budget",
    "draw_infonce_example",
    "plot_clip_training",
    "draw_similarity_matrices",
    "plot_temperature_effect",
    "draw_block_mask",
    "toy_video",
    "plot_attention_memory",
    "plot_layer_errors",
    "draw_vision_position_ids",
    "plot_vision_rotary_angles",
    "plot_relative_scores",
    "plot_mrope_ids",
    "plot_position_budget",
    "plot_rope_drift",
    "plot_mrope_sections",
    "draw_embedding_merge",
    "draw_gqa",
    "plot_next_token_filters",
]

MERGE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _plt():
    import matplotlib.pyplot as plt  # imported lazily: `import qwenvl_study` stays light

    return plt


def savefig(fig, path: str | Path, dpi: int = 90) -> Path:
    """Save a figure (creating the folder) and close it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    _plt().close(fig)
    return path


# --------------------------------------------------------------------------------------------
# Lesson 01 — dynamic resolution and patching
# --------------------------------------------------------------------------------------------
def draw_patch_grid(image: Image.Image | str | Path, *, min_pixels: int = MIN_PIXELS,
                    max_pixels: int = MAX_PIXELS, ax=None):
    """The resized image with its 14x14 patch grid; each 2x2 merge group (one LLM token) tinted."""
    plt = _plt()
    rgb = to_rgb(open_image(image))
    resized = resize_image(rgb, min_pixels=min_pixels, max_pixels=max_pixels)
    h, w = resized.height, resized.width
    gh, gw = h // PATCH_SIZE, w // PATCH_SIZE
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 7 * h / w))
    fig = ax.figure
    ax.imshow(resized, extent=(0, w, h, 0))
    tint = np.zeros((gh // MERGE_SIZE, gw // MERGE_SIZE, 4))
    from matplotlib.colors import to_rgba

    for i in range(gh // MERGE_SIZE):
        for j in range(gw // MERGE_SIZE):
            tint[i, j] = to_rgba(MERGE_COLOURS[(i + 2 * j) % 4], 0.22)
    ax.imshow(tint, extent=(0, w, h, 0), interpolation="nearest")
    for x in range(0, w + 1, PATCH_SIZE):
        ax.axvline(x, color="white", lw=0.4 if x % FACTOR else 1.2, alpha=0.8)
    for y in range(0, h + 1, PATCH_SIZE):
        ax.axhline(y, color="white", lw=0.4 if y % FACTOR else 1.2, alpha=0.8)
    tokens = count_image_tokens(rgb.height, rgb.width, min_pixels=min_pixels, max_pixels=max_pixels,
                                special_tokens=False)
    ax.set_title(f"{rgb.width}x{rgb.height} → resized {w}x{h} → {gh}x{gw} = {gh * gw} patches of 14px\n"
                 f"→ {tokens} merged tokens (one per tinted 2x2 group) + 2 special = {tokens + 2}", fontsize=10)
    ax.set_xlabel("x (pixels, resized)")
    ax.set_ylabel("y (pixels, resized)")
    return fig


def draw_patch_order(grid_h: int = 4, grid_w: int = 6, ax=None):
    """Row index of every patch in ``pixel_values``: 2x2 merge groups are consecutive rows."""
    plt = _plt()
    from ...rope import vision_position_ids

    rc = vision_position_ids([[1, grid_h, grid_w]], spatial_merge_size=MERGE_SIZE).numpy()
    order = np.zeros((grid_h, grid_w), dtype=int)
    order[rc[:, 0], rc[:, 1]] = np.arange(len(rc))
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.0 * grid_w, 1.0 * grid_h))
    fig = ax.figure
    groups = (np.arange(grid_h)[:, None] // 2 + np.arange(grid_w)[None, :] // 2 * 2) % 4
    ax.imshow(groups, cmap="Pastel1", vmin=0, vmax=8)
    for (i, j), n in np.ndenumerate(order):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=11)
    ax.set_xticks(range(grid_w))
    ax.set_yticks(range(grid_h))
    ax.set_xlabel("patch column")
    ax.set_ylabel("patch row")
    ax.set_title("row of each patch in pixel_values\n(4 consecutive rows = one 2x2 merge group = one token)",
                 fontsize=10)
    return fig


def plot_tokens_vs_resolution(min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS,
                              aspects: Sequence[tuple[str, float]] = (("1:1", 1.0), ("16:9", 16 / 9), ("4:1", 4.0)),
                              ax=None):
    """Merged tokens vs image width for a few aspect ratios, with the min/max pixel clamps marked."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
    fig = ax.figure
    widths = np.unique(np.geomspace(16, 20000, 400).astype(int))
    for label, aspect in aspects:
        ws = [int(wd) for wd in widths if max(1, round(wd / aspect)) >= 1]
        toks = [count_image_tokens(max(1, round(wd / aspect)), wd, min_pixels=min_pixels, max_pixels=max_pixels,
                                   special_tokens=False) for wd in ws]
        ax.plot(ws, toks, label=f"aspect {label} (W:H)")
    lo, hi = min_pixels // FACTOR**2, max_pixels // FACTOR**2
    ax.axhline(lo, color="grey", ls="--", lw=1)
    ax.axhline(hi, color="grey", ls="--", lw=1)
    ax.text(widths[-1], lo * 0.72, f"min_pixels={min_pixels:,} → ≥ {lo} tokens", fontsize=8, color="grey", ha="right")
    ax.text(widths[0], hi * 1.2, f"max_pixels={max_pixels:,} → ≤ {hi:,} tokens", fontsize=8, color="grey")
    for side, name in ((224, "224²"), (448, "448²"), (1920, "1080p")):
        ax.axvline(side, color="k", lw=0.5, alpha=0.3)
        ax.text(side * 1.03, 1.5, name, fontsize=8, rotation=90, alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("image width (pixels)")
    ax.set_ylabel("merged visual tokens (without the 2 special)")
    ax.set_title("Naive dynamic resolution: tokens grow with pixel count, clamped at both ends")
    ax.legend(loc="center left")
    return fig


def draw_two_frames(image: Image.Image | str | Path, *, min_pixels: int = MIN_PIXELS,
                    max_pixels: int = MAX_PIXELS, patch: tuple[int, int] = (12, 6)):
    """An image is two identical frames; one 3D tube (2 frames x 14 x 14) is outlined in both."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    resized = np.asarray(resize_image(image, min_pixels=min_pixels, max_pixels=max_pixels))  # [H', W', 3]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), gridspec_kw={"width_ratios": [3, 3, 2]})
    r, c = patch
    for k, ax in enumerate(axes[:2]):
        ax.imshow(resized)
        ax.add_patch(Rectangle((c * PATCH_SIZE, r * PATCH_SIZE), PATCH_SIZE, PATCH_SIZE, fill=False, ec="red", lw=2))
        ax.set_title(f"frame {k} (a copy of the image)", fontsize=10)
        ax.axis("off")
    tube = resized[r * PATCH_SIZE:(r + 1) * PATCH_SIZE, c * PATCH_SIZE:(c + 1) * PATCH_SIZE]
    axes[2].imshow(np.concatenate([tube, np.full((PATCH_SIZE, 2, 3), 255, np.uint8), tube], axis=1))
    axes[2].set_title("one tube: 2 frames x 3 ch x 14 x 14\n= 1176 values = one row of pixel_values", fontsize=10)
    axes[2].axis("off")
    fig.suptitle("Images and videos share one path: temporal patch size 2", fontsize=11)
    return fig


# --------------------------------------------------------------------------------------------
# Lessons 07–08 — media, chat, grounding
# --------------------------------------------------------------------------------------------
PRESET_COLOURS = {"0.0.8": "#1f77b4", "0.0.10": "#ff7f0e", "paper": "#2ca02c"}


def explain_image(image: Image.Image | str | Path, *, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS,
                  rule: str = "transformers"):
    """resize → 14x14 patches → merged tokens, for one image (the ``explain`` command)."""
    plt = _plt()
    rgb = to_rgb(open_image(image))
    resized = resize_image(rgb, min_pixels=min_pixels, max_pixels=max_pixels, rule=rule)
    h, w = resized.height, resized.width
    gh, gw = h // PATCH_SIZE, w // PATCH_SIZE
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6 * max(0.5, min(1.5, h / w))))
    axes[0].imshow(rgb)
    axes[0].set_title(f"original {rgb.width}x{rgb.height}", fontsize=10)
    axes[1].imshow(resized, extent=(0, w, h, 0))
    for x in range(0, w + 1, PATCH_SIZE):
        axes[1].axvline(x, color="white", lw=0.3 if x % FACTOR else 0.9)
    for y in range(0, h + 1, PATCH_SIZE):
        axes[1].axhline(y, color="white", lw=0.3 if y % FACTOR else 0.9)
    axes[1].set_title(f"resized {w}x{h} (multiples of 28) → {gh}x{gw} = {gh * gw} patches of 14 px", fontsize=10)
    # one cell per merged token: the mean colour of its 28x28 square, numbered in sequence order
    tokens = np.asarray(resized, dtype=np.float32).reshape(h // FACTOR, FACTOR, w // FACTOR, FACTOR, 3).mean((1, 3))
    axes[2].imshow(tokens.astype(np.uint8), extent=(0, w // FACTOR, h // FACTOR, 0), interpolation="nearest")
    th, tw = h // FACTOR, w // FACTOR
    if th * tw <= 150:
        for i in range(th):
            for j in range(tw):
                axes[2].text(j + 0.5, i + 0.5, str(i * tw + j), ha="center", va="center", fontsize=6, color="white")
    axes[2].set_title(f"{th}x{tw} = {th * tw} merged tokens (2x2 patches each)\n+ <|vision_start|>, <|vision_end|> "
                      f"= {th * tw + 2} LLM positions", fontsize=10)
    for ax, (xl, yl) in zip(axes, [("x (px)", "y (px)"), ("x (px, resized)", "y (px, resized)"),
                                   ("token column", "token row")]):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    fig.suptitle("What Qwen2-VL makes of an image: resize → patches → merged tokens", fontsize=11)
    fig.tight_layout()
    return fig


def draw_frame_timeline(frames, plan, *, ax=None, max_thumbs: int = 16):
    """The video's frames on a time axis; the sampled ones shown, bracketed in pairs (temporal patches)."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(12, 2.8))
    fig = ax.figure
    duration = plan.duration
    all_t = [plan.start_time + i / plan.video_fps for i in range(plan.total_frames)]
    ax.vlines(all_t, 0, 0.12, color="grey", lw=0.5, alpha=0.6, label=f"all {plan.total_frames} frames "
                                                                        f"({plan.video_fps:g} fps)")
    times = plan.times
    n = min(len(times), max_thumbs)
    slot = duration / max(n, 1)
    for k in range(n):
        x0 = plan.start_time + k * slot
        inset = ax.inset_axes((x0 + 0.04 * slot, 0.3, 0.92 * slot, 0.62), transform=ax.transData)
        inset.imshow(_frame_array(frames[k]))
        inset.set_anchor("S")  # the thumbnail sits on the bottom of its slot, where the connector ends
        inset.axis("off")
        colour = MERGE_COLOURS[(k // 2) % len(MERGE_COLOURS)]
        ax.annotate("", xy=(times[k], 0.2), xytext=(x0 + slot / 2, 0.3), arrowprops=dict(arrowstyle="-", color=colour, lw=1))
        if k % 2 == 0:
            ax.text(x0 + slot, 0.25, f"tube t={k // 2}", ha="center", va="center", fontsize=7, color=colour)
    ax.vlines(times, 0, 0.2, color="#d62728", lw=1.5, label=f"{plan.nframes} sampled ({plan.sample_fps:.2f} per s)")
    ax.set_xlim(plan.start_time - 0.02 * duration, plan.start_time + duration * 1.02)
    ax.set_ylim(0, 1.2)
    ax.set_yticks([])
    ax.set_xlabel("time (s)")
    ax.set_title(f"{plan.total_frames} frames at {plan.video_fps:g} fps → {plan.nframes} sampled → "
                 f"{plan.nframes // 2} temporal patches of 2 frames, each {plan.resized_width}x{plan.resized_height}",
                 fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    return fig


def _frame_array(frame) -> np.ndarray:
    """A frame (PIL or [3, H, W] 0..255 tensor) as a uint8 [H, W, 3] array for imshow."""
    return np.asarray(frame) if isinstance(frame, Image.Image) else frame.permute(1, 2, 0).numpy().astype(np.uint8)


def moving_patch(frames) -> tuple[int, int]:
    """(row, col) of the 14x14 patch whose pixels change most across the sampled frames (where the motion is)."""
    x = np.stack([_frame_array(f).astype(np.float32) for f in frames])  # [T, H, W, 3]
    t, h, w, _ = x.shape
    change = x.std(axis=0).mean(axis=-1)  # [H, W]
    per_patch = change[: h // PATCH_SIZE * PATCH_SIZE, : w // PATCH_SIZE * PATCH_SIZE].reshape(
        h // PATCH_SIZE, PATCH_SIZE, w // PATCH_SIZE, PATCH_SIZE).mean(axis=(1, 3))  # [h/14, w/14]
    r, c = np.unravel_index(int(per_patch.argmax()), per_patch.shape)
    return int(r), int(c)


def draw_video_tubes(frames, plan, *, patch: tuple[int, int] | None = None, pairs: int = 3):
    """Consecutive sampled frames pair up: the same 14x14 square in both frames is one 3D tube (one row of 1176)."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    pairs = min(pairs, plan.nframes // 2)
    r, c = patch or moving_patch(frames[: 2 * pairs])
    fig, axes = plt.subplots(2, pairs + 1, figsize=(3.2 * (pairs + 1), 5.2),
                             gridspec_kw={"width_ratios": [3] * pairs + [1.6]})
    for t in range(pairs):
        for k in range(2):
            ax = axes[k, t]
            ax.imshow(_frame_array(frames[2 * t + k]))
            ax.add_patch(Rectangle((c * PATCH_SIZE, r * PATCH_SIZE), PATCH_SIZE, PATCH_SIZE, fill=False, ec="red", lw=2))
            ax.set_title(f"t={t}, frame {k} (video frame {plan.indices[2 * t + k]}, "
                         f"{plan.times[2 * t + k]:.2f} s)", fontsize=8)
            ax.axis("off")
    tube_ax = axes[0, pairs]
    tubes = []
    for t in range(pairs):
        for k in range(2):
            img = _frame_array(frames[2 * t + k])
            tubes.append(img[r * PATCH_SIZE:(r + 1) * PATCH_SIZE, c * PATCH_SIZE:(c + 1) * PATCH_SIZE])
    gap = np.full((PATCH_SIZE, 2, 3), 255, np.uint8)
    rows = [np.concatenate([tubes[2 * t], gap, tubes[2 * t + 1]], axis=1) for t in range(pairs)]
    tube_ax.imshow(np.concatenate([np.concatenate([row, np.full((3, row.shape[1], 3), 255, np.uint8)]) for row in rows]))
    tube_ax.set_title("the red square's tubes,\none per t (2 frames each)", fontsize=8)
    tube_ax.axis("off")
    axes[1, pairs].axis("off")
    t_, gh, gw = plan.grid_thw
    axes[1, pairs].text(0, 0.5, f"grid t={t_} h={gh} w={gw}\n= {t_ * gh * gw} tubes\n(rows of 2x3x14x14 = 1176)\n"
                                f"→ {plan.tokens} merged tokens", fontsize=9, va="center")
    fig.suptitle("A video is a stack of 3D tubes: 2 frames x 14 x 14 pixels each", fontsize=11)
    fig.tight_layout()
    return fig


def explain_video(ele: dict, *, defaults: str | None = None, progress: bool = False):
    """The ``explain`` figure for a video: sampled frames on the timeline, then their tubes."""
    plt = _plt()
    from ...media import fetch_video

    frames, plan = fetch_video(ele, defaults=defaults, progress=progress)
    fig = plt.figure(figsize=(12, 6.6))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.1], hspace=0.08)
    draw_frame_timeline(frames, plan, ax=top.subplots())
    n = min(4, plan.nframes)
    axes = np.atleast_1d(bottom.subplots(1, n))
    r, c = moving_patch(frames[:n])
    from matplotlib.patches import Rectangle

    for k, ax in enumerate(axes):
        ax.imshow(_frame_array(frames[k]))
        ax.add_patch(Rectangle((c * PATCH_SIZE, r * PATCH_SIZE), PATCH_SIZE, PATCH_SIZE, fill=False, ec="red", lw=2))
        ax.set_title(f"tube t={k // 2}, frame {k % 2} ({plan.times[k]:.2f} s)", fontsize=9)
        ax.axis("off")
    t, gh, gw = plan.grid_thw
    bottom.suptitle(f"frames pair up: the red 14x14 square in both frames of a pair is one tube (one row of 1176); "
                    f"grid {t}x{gh}x{gw} → {plan.tokens} merged tokens (+2 special)", fontsize=10)
    return fig


def plot_video_tokens_vs_duration(height: int = 1080, width: int = 1920, video_fps: float = 30.0,
                                  presets: Sequence[str] = ("0.0.8", "0.0.10", "paper"), ax=None):
    """Merged tokens of a video vs its duration (2 fps sampling), per preset, with the 16384 cap marked."""
    plt = _plt()
    from ...media import MEDIA_PRESETS, plan_video

    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4.8))
    fig = ax.figure
    seconds = np.unique(np.geomspace(2, 3600, 160).round(1))
    for name in presets:
        toks = [plan_video(max(4, int(s * video_fps)), video_fps, height, width, defaults=name).tokens for s in seconds]
        budget = MEDIA_PRESETS[name].video_token_budget
        ax.plot(seconds, toks, color=PRESET_COLOURS.get(name), label=f"preset {name} (budget {budget:,.0f})")
    ax.axhline(16384, color="k", ls="--", lw=1)
    ax.text(seconds[0], 16384 * 1.07, "paper: 16384 tokens per video", fontsize=8)
    ax.axhline(24576, color=PRESET_COLOURS["0.0.8"], ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axvline(768 / 2, color="grey", ls=":", lw=1)
    ax.text(768 / 2 * 1.05, 1500, "768 frames\n(FPS_MAX_FRAMES)", fontsize=7, color="grey")
    ax.set_xlabel("video duration (s), sampled at 2 fps")
    ax.set_ylabel("merged visual tokens")
    ax.set_title(f"Tokens per video vs duration ({width}x{height} at {video_fps:g} fps)", fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def draw_gif_modes(path: str | Path):
    """A GIF read as an image (its first frame) and as a video (its frames, fps from the frame durations)."""
    plt = _plt()
    from ...media import fetch_image, fetch_video

    image = fetch_image({"image": str(path)})
    frames, plan = fetch_video({"video": str(path)})
    fig, axes = plt.subplots(1, 1 + plan.nframes, figsize=(2.6 * (1 + plan.nframes), 2.8))
    axes[0].imshow(image)
    ti = (image.height // FACTOR) * (image.width // FACTOR)
    axes[0].set_title(f"as an image: frame 0\n{image.width}x{image.height} → {ti} tokens", fontsize=9)
    for k in range(plan.nframes):
        axes[k + 1].imshow(_frame_array(frames[k]))
        axes[k + 1].set_title(f"as a video: frame {plan.indices[k]}\n({plan.times[k]:.2f} s, tube t={k // 2})", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{Path(path).name}: image = {ti} tokens; video = {plan.total_frames} frames at {plan.video_fps:g} fps "
                 f"→ {plan.nframes} sampled, {plan.resized_width}x{plan.resized_height} → {plan.tokens} tokens",
                 fontsize=10)
    fig.tight_layout()
    return fig


TOKEN_COLOURS = {
    "<|im_start|>": "#1f77b4", "<|im_end|>": "#1f77b4", "<|endoftext|>": "#7f7f7f",
    "<|vision_start|>": "#9467bd", "<|vision_end|>": "#9467bd",
    "<|image_pad|>": "#d62728", "<|video_pad|>": "#ff7f0e",
    "<|object_ref_start|>": "#2ca02c", "<|object_ref_end|>": "#2ca02c",
    "<|box_start|>": "#8c564b", "<|box_end|>": "#8c564b",
}


def draw_chat_tokens(text: str, *, columns: int = 84, title: str | None = None):
    """The prompt with each special token highlighted by kind; runs of pads collapsed to '<|image_pad|> x n'."""
    plt = _plt()
    from ...chat import split_special_tokens

    cells: list[tuple[str, str | None]] = []  # (visible text, colour) per line-wrapped chunk
    for piece, special in split_special_tokens(text):
        if special:
            token = piece[: piece.index("|>") + 2]
            n = len(piece) // len(token)
            cells.append((token + (f" x {n}" if n > 1 else ""), TOKEN_COLOURS.get(token, "#17becf")))
        else:
            for k, line in enumerate(piece.split("\n")):
                if k:
                    cells.append(("↵", "newline"))
                if line:
                    cells.append((line, None))
    lines: list[list[tuple[str, str | None]]] = [[]]
    used = 0
    for label, colour in cells:
        if colour == "newline":
            lines[-1].append(("↵", None))
            lines.append([])
            used = 0
            continue
        while label:
            room = columns - used
            if room <= 0 or (colour is not None and len(label) > room and used):
                lines.append([])
                used, room = 0, columns
            chunk, label = (label, "") if colour is not None else (label[:room], label[room:])
            lines[-1].append((chunk, colour))
            used += len(chunk) + (2 if colour else 0)
    fontsize = 9
    char_in = 0.62 * fontsize / 72  # about the monospace advance (measured exactly below)
    width_in = char_in * (columns + 2) / 0.98
    fig = plt.figure(figsize=(width_in, 0.26 * len(lines) + 0.9))
    ax = fig.add_axes((0.01, 0.02, 0.98, 1 - 0.9 / (0.26 * len(lines) + 0.9)))
    for row, line in enumerate(lines):
        x = 0.0
        for chunk, colour in line:
            kw = dict(bbox=dict(boxstyle="round,pad=0.12", fc=colour, ec="none", alpha=0.85)) if colour else {}
            ax.text(x + (0.5 if colour else 0), row, chunk, family="DejaVu Sans Mono", fontsize=fontsize,
                    va="center", color="white" if colour else "black", **kw)
            x += len(chunk) + (1.5 if colour else 0)
    # one data unit = one character: measure the monospace advance with the figure's own renderer
    renderer = fig.canvas.get_renderer()
    probe = ax.text(0, 0, "M" * 40, family="DejaVu Sans Mono", fontsize=fontsize)
    char_px = probe.get_window_extent(renderer).width / 40
    probe.remove()
    ax.set_xlim(-0.5, -0.5 + ax.get_window_extent(renderer).width / char_px)
    ax.set_ylim(len(lines) - 0.4, -0.6)
    ax.axis("off")
    from matplotlib.patches import Patch

    kinds = [("<|im_start|> / <|im_end|>", "#1f77b4"), ("<|vision_start|> / <|vision_end|>", "#9467bd"),
             ("<|image_pad|>", "#d62728"), ("<|video_pad|>", "#ff7f0e"),
             ("<|object_ref_*|>", "#2ca02c"), ("<|box_*|>", "#8c564b")]
    present = [(k, c) for k, c in kinds if any(col == c for line in lines for _, col in line)]
    if present:
        ax.legend(handles=[Patch(color=c, label=k) for k, c in present], loc="lower center", ncol=min(3, len(present)),
                  fontsize=7, bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.suptitle(title or "the chat template, special tokens highlighted", fontsize=10, y=0.995)
    return fig


def plot_input_composition(input_ids, *, ax=None, title: str = "what the LLM sequence is made of"):
    """A horizontal bar: text tokens vs special tokens vs image pads vs video pads in ``input_ids``."""
    plt = _plt()
    from ...chat import IMAGE_PAD, SPECIAL_TOKENS, VIDEO_PAD

    ids = np.asarray(input_ids).reshape(-1)
    image, video = SPECIAL_TOKENS[IMAGE_PAD], SPECIAL_TOKENS[VIDEO_PAD]
    special = np.isin(ids, list(SPECIAL_TOKENS.values())) & ~np.isin(ids, [image, video])
    parts = [("text", int((~np.isin(ids, list(SPECIAL_TOKENS.values()))).sum()), "#bbbbbb"),
             ("special (ChatML, vision start/end)", int(special.sum()), "#1f77b4"),
             ("<|image_pad|>", int((ids == image).sum()), "#d62728"),
             ("<|video_pad|>", int((ids == video).sum()), "#ff7f0e")]
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 1.9))
    fig = ax.figure
    left = 0
    for label, n, colour in parts:
        if n:
            ax.barh(0, n, left=left, color=colour, label=f"{label}: {n}")
            left += n
    ax.set_yticks([])
    ax.set_xlabel(f"position in input_ids (length {len(ids)})")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.55), frameon=False)
    return fig


def draw_grounding(image: Image.Image | str | Path, items, *, truth: dict | None = None, ax=None,
                   title: str = "grounding: boxes in [0, 1000) drawn on the image"):
    """Parsed (phrase, [0,1000) box) items on the image; optional true pixel boxes dashed for comparison."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    from ...grounding import from_normalized

    rgb = to_rgb(open_image(image))
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 7 * rgb.height / rgb.width))
    fig = ax.figure
    ax.imshow(rgb)
    for k, item in enumerate(items):
        x1, y1, x2, y2 = from_normalized(item.box, rgb.size)
        colour = MERGE_COLOURS[k % len(MERGE_COLOURS)]
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=2.5))
        ax.text(x1, y1 - 4, f"{item.phrase or '?'} {item.box}", color="white", fontsize=8,
                bbox=dict(fc=colour, ec="none", pad=1.5))
    for name, box in (truth or {}).items():
        x1, y1, x2, y2 = box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="black", lw=1, ls="--"))
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.set_title(title + ("\n(dashed: the true boxes)" if truth else ""), fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------
# Lessons 09–10 — the VLM family
# --------------------------------------------------------------------------------------------
FAMILY_COLOURS = {"Qwen-VL": "#9467bd", "BLIP-2": "#8c564b", "LLaVA-1.5": "#e377c2", "InternVL2": "#2ca02c",
                  "Qwen2-VL": "#1f77b4", "MiniGPT-4": "#bcbd22", "MiniGPT-v2": "#17becf"}


def _fmt_shape(shape: Sequence[int]) -> str:
    return " x ".join(str(s) for s in shape)


def draw_connectors(chains: dict | None = None):
    """Each connector as a row of boxes (stage, shape) → the LLM, computed by ``connector_chains``."""
    plt = _plt()
    import textwrap

    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from ...family.budget import connector_chains

    chains = chains or connector_chains()
    width = max(len(c) for c in chains.values())
    step, box = 1.3, 1.1  # box centres 1.3 apart, boxes 1.1 wide
    fig, ax = plt.subplots(figsize=(2.9 * width + 1.8, 1.0 * len(chains) + 0.7))
    for r, (model, chain) in enumerate(chains.items()):
        y = len(chains) - 1 - r
        colour = next((c for k, c in FAMILY_COLOURS.items() if model.startswith(k)), "grey")
        ax.text(-box / 2 - 0.1, y, "\n".join(textwrap.wrap(model, 12)), ha="right", va="center", fontsize=9,
                fontweight="bold", color=colour)
        for k, (label, shape) in enumerate(chain):
            x = k * step
            ax.add_patch(FancyBboxPatch((x - box / 2, y - 0.38), box, 0.76, boxstyle="round,pad=0.02",
                                        fc=colour, alpha=0.15 if k < len(chain) - 1 else 0.4, ec=colour))
            ax.text(x, y + 0.13, "\n".join(textwrap.wrap(label, 26)), ha="center", va="center", fontsize=6.5)
            ax.text(x, y - 0.24, _fmt_shape(shape), ha="center", va="center", fontsize=8.5, family="monospace",
                    fontweight="bold")
            if k:
                ax.add_patch(FancyArrowPatch((x - step + box / 2, y), (x - box / 2, y), arrowstyle="->",
                                             mutation_scale=9))
    ax.set_xlim(-box / 2 - 1.3, (width - 1) * step + box / 2 + 0.05)
    ax.set_ylim(-0.55, len(chains) - 0.45)
    ax.axis("off")
    ax.set_title("Vision encoder → connector → LLM: the shapes at each stage (one image, paper sizes;\n"
                 "the last box is what the LLM receives: visual tokens x LLM width)", fontsize=10)
    return fig


def draw_qformer_masks(num_query: int = 4, num_text: int = 4):
    """BLIP-2's self-attention masks (and InstructBLIP's) as images: row attends to column."""
    plt = _plt()
    from ...family.blip2 import MASK_KINDS, qformer_mask

    titles = {"itc": "ITC — uni-modal\n(queries and text apart)", "itm": "ITM — bi-directional",
              "itg": "ITG — multi-modal causal",
              "instruct": "InstructBLIP — queries +\ninstruction, bi-directional"}
    labels = [f"Q{i + 1}" for i in range(num_query)] + [f"T{i + 1}" for i in range(num_text)]
    fig, axes = plt.subplots(1, len(MASK_KINDS), figsize=(3.2 * len(MASK_KINDS), 3.6))
    for ax, kind in zip(axes, MASK_KINDS):
        mask = qformer_mask(kind, num_query, num_text).numpy()
        ax.imshow(mask, cmap="Blues", vmin=0, vmax=1.25)
        n = len(labels)
        ax.set_xticks(range(n), labels if kind != "instruct" else [*labels[:num_query],
                                                                   *[f"I{i + 1}" for i in range(num_text)]], fontsize=7)
        ax.set_yticks(range(n), ax.get_xticklabels(), fontsize=7)
        ax.axhline(num_query - 0.5, color="k", lw=1)
        ax.axvline(num_query - 0.5, color="k", lw=1)
        ax.set_title(titles[kind], fontsize=9)
        ax.set_xlabel("key (attended to)", fontsize=8)
    axes[0].set_ylabel("query position (attending)", fontsize=8)
    fig.suptitle(f"Q-Former self-attention masks: {num_query} queries + {num_text} text tokens "
                 f"(blue = may attend, white = masked)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def draw_internvl_tiles(image: Image.Image | str | Path, *, max_num: int = 12, axes=None):
    """InternVL2's dynamic tiling of an image: the resized image cut into numbered 448 tiles, and the
    thumbnail (when there is more than one tile)."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    from ...family.internvl import INTERNVL2_8B, internvl_image_tokens, internvl_tile_boxes

    rgb = to_rgb(open_image(image))
    (tw, th), boxes = internvl_tile_boxes(rgb.width, rgb.height, max_num=max_num)
    cols, rows = tw // INTERNVL2_8B.image_size, th // INTERNVL2_8B.image_size
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [3, 1]})
    fig = axes[0].figure
    # the resize to (cols*448, rows*448) is a stretch: drawing the image over that extent shows the same
    axes[0].imshow(rgb, extent=(0, tw, th, 0))
    for n, (x0, y0, x1, y1) in enumerate(boxes):
        axes[0].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="red", lw=1.5))
        axes[0].text((x0 + x1) / 2, (y0 + y1) / 2, str(n + 1), color="red", fontsize=12, ha="center", va="center",
                     fontweight="bold")
    tokens = internvl_image_tokens(rgb.width, rgb.height, max_num=max_num)
    thumb = len(boxes) > 1
    axes[0].set_title(f"{rgb.width}x{rgb.height} → {cols}x{rows} tiles of 448 (resized to {tw}x{th})\n"
                      f"{len(boxes)} tiles{' + 1 thumbnail' if thumb else ''} x 256 = {tokens:,} tokens",
                      fontsize=9)
    axes[0].set_xlabel("x (resized pixels)")
    axes[0].set_ylabel("y (resized pixels)")
    if thumb:
        axes[1].imshow(rgb, extent=(0, 448, 448, 0))
        axes[1].set_title("thumbnail 448x448", fontsize=9)
    else:
        axes[1].text(0.5, 0.5, "one tile:\nno thumbnail", ha="center", va="center", fontsize=9)
    axes[1].axis("off")
    return fig


def draw_token_grouping(rows: int = 4, cols: int = 8):
    """Which patches become one LLM token: Qwen2-VL's merger, InternVL's pixel shuffle (both 2x2
    squares) and MiniGPT-v2's concatenation (4 consecutive tokens of a row). Computed by running
    each package function on patch indices; the small number is the patch's slot in the token."""
    plt = _plt()
    import torch

    from ...family.internvl import pixel_shuffle
    from ...family.minigpt import concat_adjacent_tokens
    from ...rope import vision_position_ids

    if rows % 2 or cols % 4:
        raise ValueError(f"draw_token_grouping needs an even number of rows and columns divisible by 4, "
                         f"got {rows}x{cols}")
    idx = torch.arange(rows * cols)  # patch p = row * cols + col
    groups = {}
    # Qwen2-VL: pixel_values rows come 2x2 group by group; the merger views 4 consecutive rows as one token
    rc = vision_position_ids([[1, rows, cols]])
    groups["Qwen2-VL merger (2x2)"] = (rc[:, 0] * cols + rc[:, 1]).reshape(-1, 4)
    groups["InternVL2 pixel shuffle (2x2)"] = pixel_shuffle(idx.reshape(1, rows, cols, 1).float()).reshape(-1, 4).long()
    groups["MiniGPT-v2 concat (1x4)"] = concat_adjacent_tokens(idx.reshape(1, -1, 1).float()).reshape(-1, 4).long()
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.55 * rows + 1.6))
    cmap = plt.get_cmap("tab20")
    for ax, (name, g) in zip(axes, groups.items()):
        token = np.zeros(rows * cols, dtype=int)
        slot = np.zeros(rows * cols, dtype=int)
        for t, members in enumerate(g.tolist()):
            for s, p in enumerate(members):
                token[p], slot[p] = t, s
        ax.imshow(token.reshape(rows, cols) % 20, cmap=cmap, vmin=0, vmax=19)
        for p in range(rows * cols):
            ax.text(p % cols, p // cols, f"{token[p]}·{slot[p]}", ha="center", va="center", fontsize=7)
        ax.set_title(f"{name}: {rows * cols} patches → {len(g)} tokens of 4C", fontsize=9)
        ax.set_xticks(range(cols))
        ax.set_yticks(range(rows))
        ax.set_xlabel("patch column")
    axes[0].set_ylabel("patch row")
    fig.suptitle("Which patches share an LLM token (token·slot: the slot is the patch's place in the concatenated "
                 "channels)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def plot_token_budget(table: dict | None = None, ax=None):
    """Grouped bars (log scale): visual tokens per input for each model; ✗ = not supported."""
    plt = _plt()
    from ...family.budget import token_budget

    table = table or token_budget()
    inputs = list(table)
    models = list(next(iter(table.values())))
    if ax is None:
        fig, ax = plt.subplots(figsize=(11, 4.8))
    fig = ax.figure
    w = 0.8 / len(models)
    for k, m in enumerate(models):
        xs = np.arange(len(inputs)) + (k - (len(models) - 1) / 2) * w
        vals = [table[i][m] for i in inputs]
        ax.bar([x for x, v in zip(xs, vals) if v], [v for v in vals if v], width=w, label=m,
               color=FAMILY_COLOURS.get(m, "grey"))
        for x, v in zip(xs, vals):
            ax.text(x, v * 1.08 if v else 12, f"{v:,}" if v else "✗", ha="center", va="bottom", fontsize=6.5,
                    rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(10, 3e5)
    ax.set_xticks(range(len(inputs)), [i.replace(" (", "\n(") for i in inputs], fontsize=8)
    ax.set_ylabel("visual tokens sent to the LLM (log)")
    ax.set_title("The token budget: same inputs, five architectures (✗ = no video support)")
    ax.legend(ncol=len(models), fontsize=8, loc="upper left")
    return fig


def draw_infonce_example(image_features, text_features, logit_scale: float):
    """InfoNCE step by step on a small batch: cosines, scaled logits, softmax over rows (image →
    text) and over columns (text → image); the diagonal holds the true pairs."""
    plt = _plt()
    import torch
    import torch.nn.functional as F

    from ...family.clip import clip_logits, clip_loss

    sims, _ = clip_logits(torch.as_tensor(image_features), torch.as_tensor(text_features), 1.0)
    logits, logits_t = clip_logits(torch.as_tensor(image_features), torch.as_tensor(text_features), logit_scale)
    p_i2t = logits.softmax(dim=1)  # each row sums to 1: which text for image i?
    p_t2i = logits_t.softmax(dim=1).T  # each column sums to 1: which image for text j?
    n = sims.shape[0]
    labels = torch.arange(n)
    l_i2t = F.cross_entropy(logits, labels).item()
    l_t2i = F.cross_entropy(logits_t, labels).item()
    panels = [(sims, "cosine S_ij", "RdBu_r", (-1, 1)), (logits, f"logits = {logit_scale:g} · S", "RdBu_r", None),
              (p_i2t, f"softmax over rows (image → text)\nCE = {l_i2t:.3f}", "Greens", (0, 1)),
              (p_t2i, f"softmax over columns (text → image)\nCE = {l_t2i:.3f}", "Oranges", (0, 1))]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for ax, (m, title, cmap, lim) in zip(axes, panels):
        m = m.detach().numpy()
        vmax = np.abs(m).max() if lim is None else lim[1]
        ax.imshow(m, cmap=cmap, vmin=-vmax if lim is None else lim[0], vmax=vmax)
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    fontweight="bold" if i == j else "normal")
        ax.set_xticks(range(n), [f"text {j}" for j in range(n)], fontsize=7)
        ax.set_yticks(range(n), [f"image {i}" for i in range(n)], fontsize=7)
        ax.set_title(title, fontsize=9)
    loss = clip_loss(torch.as_tensor(image_features), torch.as_tensor(text_features), logit_scale).item()
    fig.suptitle(f"Symmetric InfoNCE = (CE rows + CE columns) / 2 = {loss:.3f}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_clip_training(history, ax=None):
    """The toy contrastive training: loss per step and the learned logit scale exp(t)."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.8))
    fig = ax.figure
    steps = np.arange(1, len(history.loss) + 1)
    ax.plot(steps, history.loss, color="#1f77b4", label="training loss (batch)")
    ax.axhline(np.log(64), color="grey", ls=":", lw=1)
    ax.text(steps[-1], np.log(64) * 1.05, "ln 64: chance for a batch of 64", ha="right", fontsize=8, color="grey")
    ax.set_xlabel("step")
    ax.set_ylabel("symmetric InfoNCE loss")
    ax.set_yscale("log")
    ax2 = ax.twinx()
    ax2.plot(steps, history.logit_scale, color="#d62728", label="logit scale exp(t)")
    ax2.set_ylabel("logit scale exp(t) = 1 / temperature", color="#d62728")
    lines = ax.get_lines()[:1] + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center right", fontsize=8)
    ax.set_title(f"Toy CLIP: held-out retrieval top-1 {history.accuracy_before:.0%} → {history.accuracy_after:.0%}")
    return fig


def draw_similarity_matrices(history, n: int = 12):
    """Held-out cosine similarities (image i vs text j) before and after the toy training."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, (m, title) in zip(axes, ((history.sim_before, "before training"), (history.sim_after, "after training"))):
        im = ax.imshow(m[:n, :n], cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(f"{title}: cosine(image i, text j)", fontsize=9)
        ax.set_xlabel("text j")
        ax.set_ylabel("image i")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.suptitle(f"Held-out pairs (first {n}): the diagonal lights up", fontsize=10)
    return fig


def plot_temperature_effect(similarities: Sequence[float], scales: Sequence[float] = (1.0, 1 / 0.07, 100.0)):
    """softmax(scale · cosines) for one image's row at a few logit scales: a low temperature
    (large scale) sharpens the distribution; scale 1 can barely separate cosines in [-1, 1]."""
    plt = _plt()
    import torch

    sims = torch.as_tensor(similarities, dtype=torch.float32)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    w = 0.8 / len(scales)
    for k, s in enumerate(scales):
        p = (s * sims).softmax(dim=0).numpy()
        ax.bar(np.arange(len(sims)) + (k - (len(scales) - 1) / 2) * w, p, width=w,
               label=f"scale {s:.3g} (τ = {1 / s:.3g})")
    ax.set_xticks(range(len(sims)), [f"text {j}\ncos {v:.2f}" for j, v in enumerate(sims.tolist())], fontsize=7)
    ax.set_ylabel("softmax probability")
    ax.set_title("The temperature: the same cosines, three logit scales (text 0 is the true pair)")
    ax.legend(fontsize=8)
    return fig


"""Figures the notebooks and the demo share (matplotlib; each function returns its Figure).

Every figure is computed from the package's own functions — a drawing never restates a number
by hand. Sections: dynamic resolution (lesson 01), vision encoder (lesson 04). Later lessons add theirs below.
"""


# --------------------------------------------------------------------------------------------
# Lesson 04 — vision encoder
# --------------------------------------------------------------------------------------------
def _segment_labels(grid_thw) -> list[str]:
    labels = []
    for i, (t, h, w) in enumerate(np.asarray(grid_thw).reshape(-1, 3).tolist()):
        kind = "image" if t == 1 else "video"
        labels += [f"{kind} {i}" + (f"\nslice {s}" if t > 1 else "") + f"\n{h}x{w}" for s in range(t)]
    return labels


def draw_block_mask(grid_thw, ax=None):
    """The block-diagonal "may attend" mask of images / videos packed into one sequence (from cu_seqlens)."""
    plt = _plt()
    import torch

    from ...attention import block_diagonal_mask, cu_seqlens_from_grid

    cu = cu_seqlens_from_grid(torch.as_tensor(grid_thw))
    mask = block_diagonal_mask(cu).numpy()
    n = mask.shape[0]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.2, 6.2))
    fig = ax.figure
    ax.imshow(mask, cmap="Blues", vmin=0, vmax=1.25, interpolation="nearest")
    bounds = cu.tolist()
    for b in bounds[1:-1]:
        ax.axhline(b - 0.5, color="grey", lw=0.6)
        ax.axvline(b - 0.5, color="grey", lw=0.6)
    mids = [(a + z) / 2 - 0.5 for a, z in zip(bounds[:-1], bounds[1:])]
    labels = _segment_labels(grid_thw)
    ax.set_xticks(mids, labels, fontsize=7)
    ax.set_yticks(mids, [x.replace("\n", " ") for x in labels], fontsize=7)
    kept = mask.sum()
    ax.set_xlabel(f"key (patch row in the packed sequence, N = {n})")
    ax.set_ylabel("query (patch row)")
    ax.set_title(f"Packed attention: each segment attends only to itself\n"
                 f"cu_seqlens = {bounds}; {kept:,} of {n * n:,} pairs ({kept / (n * n):.0%}) are computed by "
                 f"a per-segment kernel", fontsize=9)
    return fig


def toy_video(num_frames: int = 4, height: int = 112, width: int = 112) -> np.ndarray:
    """A short self-drawn clip ``[T, H, W, 3]`` uint8: a red square moving right over a blue gradient."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([np.full_like(x, 30), (x * 200 // max(width - 1, 1)), np.full_like(x, 230)], -1).astype(np.uint8)
    frames = np.repeat(base[None], num_frames, axis=0)
    side = height // 4
    for t in range(num_frames):
        x0 = (t * (width - side)) // max(num_frames - 1, 1)
        frames[t, height // 2 - side // 2: height // 2 + side // 2, x0: x0 + side] = (220, 30, 40)
    return frames


def draw_temporal_slices(frames: np.ndarray):
    """Frames ``[T, H, W, 3]`` (uint8) grouped two by two into temporal slices; one tube outlined."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    frames = np.asarray(frames)
    T = len(frames)
    padded = T + (T % 2)
    fig, axes = plt.subplots(1, padded, figsize=(2.6 * padded, 3.0))
    colours = ("#ff7f0e", "#2ca02c", "#9467bd", "#8c564b")
    for i, ax in enumerate(np.atleast_1d(axes)):
        frame = frames[min(i, T - 1)]
        ax.imshow(frame)
        slice_ = i // 2
        ax.add_patch(Rectangle((2 * PATCH_SIZE, 2 * PATCH_SIZE), PATCH_SIZE, PATCH_SIZE, fill=False,
                               ec="white", lw=2))
        for side in ("left", "right", "top", "bottom"):
            ax.spines[side].set_color(colours[slice_ % 4])
            ax.spines[side].set_linewidth(3)
        ax.set_xticks([])
        ax.set_yticks([])
        copy = " (copy of the last frame)" if i >= T else ""
        ax.set_title(f"frame {i}{copy}\ntemporal slice {slice_}", fontsize=9)
    fig.suptitle(f"{T} frames → {padded // 2} temporal slices of 2 frames: each 14x14 square across its 2 frames "
                 f"is one tube (1176 values); white: one tube per slice", fontsize=10)
    return fig


def plot_attention_memory(image_patches: Sequence[int], heads: int = 16, ax=None):
    """Score-matrix memory of one packed attention call vs the number of images: dense mask vs per segment."""
    plt = _plt()
    from ...attention import score_bytes

    counts = list(range(1, len(image_patches) + 1))
    dense = [score_bytes(image_patches[:n], heads, dense=True) / 2**20 for n in counts]
    per_seg = [score_bytes(image_patches[:n], heads, dense=False) / 2**20 for n in counts]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4))
    fig = ax.figure
    ax.plot(counts, dense, "o-", label="dense N x N block-diagonal mask (eager math)")
    ax.plot(counts, per_seg, "s-", label="one call per segment (eager math)")
    ax.plot(counts, [0] * len(counts), "^-", label="varlen / flash kernels (no score matrix)")
    ax.set_xlabel("images packed")
    ax.set_ylabel("mask + score bytes (MiB, computed by score_bytes)")
    ax.set_title(f"Attention memory (analytic; measured in benchmarks/bench_vision.py), {heads} heads,\n"
                 f"images of {', '.join(map(str, image_patches))} patches", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def plot_layer_errors(ours: Sequence, reference: Sequence, ax=None, tolerance: float = 1e-5):
    """max |ours - reference| per hidden state (embeddings, block 0, 1, ...): the layer-by-layer parity."""
    plt = _plt()
    errors = [float((a - b).abs().max()) for a, b in zip(ours, reference)]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
    fig = ax.figure
    labels = ["embed"] + [f"block {i}" for i in range(len(errors) - 1)]
    ax.bar(range(len(errors)), [max(e, 1e-12) for e in errors], color="#1f77b4")
    ax.axhline(tolerance, color="red", ls="--", lw=1, label=f"tolerance {tolerance:g}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(errors)), labels, rotation=45 if len(errors) > 8 else 0, fontsize=8)
    ax.set_ylabel("max |ours - transformers|")
    ax.set_title("Hidden states, layer by layer (bars at 1e-12 are exactly equal)", fontsize=9)
    ax.legend(fontsize=8)
    return fig


"""Figures the notebooks and the demo share (matplotlib; each function returns its Figure).

Every figure is computed from the package's own functions — a drawing never restates a number
by hand. Sections: dynamic resolution (lesson 01); positions (lessons 02–03). Later lessons add theirs below.
"""


# --------------------------------------------------------------------------------------------
# Lessons 02–03 — positions (vision 2D-RoPE, M-RoPE)
# --------------------------------------------------------------------------------------------
ROPE_ROW_COLOURS = {"t": "#d62728", "h": "#1f77b4", "w": "#2ca02c"}


SEGMENT_COLOURS = {"image": "#1f77b4", "video": "#ff7f0e"}


def _annotate_grid(ax, values: np.ndarray, fontsize: int = 8) -> None:
    lo, hi = float(values.min()), float(values.max())
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=fontsize,
                color="white" if hi > lo and (v - lo) / (hi - lo) < 0.5 else "black")


def draw_vision_position_ids(grid_h: int = 6, grid_w: int = 8, spatial_merge_size: int = MERGE_SIZE):
    """Row and column id of every patch (heatmaps), and both ids in the order ``pixel_values`` lists them."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    from ...rope import vision_position_ids

    rc = vision_position_ids([[1, grid_h, grid_w]], spatial_merge_size).numpy()  # [N, 2] processor order
    rows = np.zeros((grid_h, grid_w), dtype=int)
    cols = np.zeros((grid_h, grid_w), dtype=int)
    rows[rc[:, 0], rc[:, 1]] = rc[:, 0]
    cols[rc[:, 0], rc[:, 1]] = rc[:, 1]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9), gridspec_kw={"width_ratios": [1, 1, 1.5]})
    for ax, img, what in ((axes[0], rows, "row id → first half of the rotary pairs"),
                          (axes[1], cols, "column id → second half of the rotary pairs")):
        ax.imshow(img, cmap="viridis")
        _annotate_grid(ax, img, fontsize=9)
        for i in range(0, grid_h, spatial_merge_size):
            for j in range(0, grid_w, spatial_merge_size):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), spatial_merge_size, spatial_merge_size, fill=False,
                                       ec="white", lw=1.5))
        ax.set_xlabel("patch column")
        ax.set_ylabel("patch row")
        ax.set_title(what, fontsize=10)
    k = np.arange(len(rc))
    ax = axes[2]
    ax.step(k, rc[:, 0], where="mid", label="row id", color=ROPE_ROW_COLOURS["h"])
    ax.step(k, rc[:, 1], where="mid", label="column id", color=ROPE_ROW_COLOURS["w"])
    group = spatial_merge_size**2
    for start in range(0, len(rc), 2 * group):
        ax.axvspan(start - 0.5, start + group - 0.5, color="grey", alpha=0.12, lw=0)
    ax.set_xlabel("row of pixel_values (the ViT's sequence order)")
    ax.set_ylabel("id")
    ax.set_title(f"in sequence order: each {spatial_merge_size}x{spatial_merge_size} merge group "
                 f"({group} rows, shaded) is contiguous", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"Vision 2D-RoPE ids of a {grid_h}x{grid_w} patch grid (white squares: merge groups)",
                 fontsize=11)
    fig.tight_layout()
    return fig


def plot_vision_rotary_angles(grid_h: int = 8, grid_w: int = 8, head_dim: int = 80, theta: float = 10000.0):
    """cos(angle) per rotary pair for every patch of a grid (raster order), and the frequencies."""
    plt = _plt()
    import torch

    from ...rope import inverse_frequencies, vision_rotary_angles

    r, c = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
    pos = torch.from_numpy(np.stack([r.ravel(), c.ravel()], axis=1))  # [N, 2] raster order
    angles = vision_rotary_angles(pos, head_dim, theta).numpy()  # [N, head_dim/2]
    quarter = head_dim // 4
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [1.6, 1]})
    ax = axes[0]
    im = ax.imshow(np.cos(angles), aspect="auto", cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest")
    ax.axvline(quarter - 0.5, color="k", lw=1.5)
    ax.set_xlabel(f"rotary pair (frequency index), {head_dim // 2} pairs for head_dim {head_dim}")
    ax.set_ylabel(f"patch (raster order, row-major, {grid_w} per row)")
    ax.set_title(f"cos(angle): pairs 0–{quarter - 1} follow the row (change every {grid_w} patches), "
                 f"pairs {quarter}–{2 * quarter - 1} the column", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax = axes[1]
    inv = inverse_frequencies(head_dim // 2, theta).numpy()  # [head_dim/4]
    ax.semilogy(np.arange(quarter), inv, "o-", color=ROPE_ROW_COLOURS["h"], label="row pairs 0…")
    ax.semilogy(np.arange(quarter, 2 * quarter), inv, "s-", color=ROPE_ROW_COLOURS["w"], label=f"column pairs {quarter}…")
    ax.set_xlabel("rotary pair")
    ax.set_ylabel("radians per patch step")
    ax.set_title(f"frequencies theta^(-2i/{head_dim // 2}), theta = {theta:g}: the same ladder on both axes",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_relative_scores(scores: np.ndarray, grid_h: int, grid_w: int,
                         anchors: Sequence[tuple[int, int]] = ((3, 3), (6, 8))):
    """q·k after 2D-RoPE for queries at two anchors against keys everywhere, re-centred on the offset.

    ``scores[i, j]``: query rotated at patch i, key at patch j (raster order of a grid_h x grid_w grid).
    Plotted against (Δrow, Δcol) the two maps coincide where both are defined.
    """
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(anchors) + 1, figsize=(4.4 * (len(anchors) + 1), 4.0))
    lo, hi = float(scores.min()), float(scores.max())
    extent = (-grid_w + 0.5, grid_w - 0.5, grid_h - 0.5, -grid_h + 0.5)  # Δcol, Δrow in [-(n-1), n-1]
    centred = []
    for ax, (ar, ac) in zip(axes, anchors):
        s = scores[ar * grid_w + ac].reshape(grid_h, grid_w)
        canvas = np.full((2 * grid_h - 1, 2 * grid_w - 1), np.nan)
        canvas[grid_h - 1 - ar:2 * grid_h - 1 - ar, grid_w - 1 - ac:2 * grid_w - 1 - ac] = s
        centred.append(canvas)
        im = ax.imshow(canvas, cmap="viridis", vmin=lo, vmax=hi, extent=extent)
        ax.set_title(f"query at (row {ar}, col {ac}): q·k per key", fontsize=10)
    fig.colorbar(im, ax=axes[len(anchors) - 1], fraction=0.046)
    diff = np.abs(centred[0] - centred[1])
    ax = axes[-1]
    im = ax.imshow(diff, cmap="magma", extent=extent)
    ax.set_title(f"|difference| where both exist: max {np.nanmax(diff):.1e}", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    for ax in axes:
        ax.set_xlabel("Δcol = key col − query col")
        ax.set_ylabel("Δrow = key row − query row")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("RoPE is relative: after rotation q·k depends only on the (Δrow, Δcol) offset", fontsize=11)
    fig.tight_layout()
    return fig


def _token_kinds(input_ids) -> list[str]:
    from ...rope import IMAGE_TOKEN_ID, VIDEO_TOKEN_ID

    return ["image" if t == IMAGE_TOKEN_ID else "video" if t == VIDEO_TOKEN_ID else "text" for t in input_ids]


def _shade_segments(ax, kinds: Sequence[str], x0: int = 0, alpha: float = 0.12) -> None:
    """Shade the image / video runs of ``kinds`` (token ``x0 + i`` has kind ``kinds[i]``)."""
    start = 0
    for i in range(1, len(kinds) + 1):
        if i == len(kinds) or kinds[i] != kinds[start]:
            if kinds[start] in SEGMENT_COLOURS:
                ax.axvspan(x0 + start - 0.5, x0 + i - 0.5, color=SEGMENT_COLOURS[kinds[start]], alpha=alpha, lw=0,
                           label=kinds[start])
            start = i


def plot_mrope_ids(position_ids, input_ids, title: str = "M-RoPE ids along a sequence"):
    """The paper's Figure 3: the (t, h, w) ids of every token of one sequence, as numbers and as lines.

    ``position_ids [3, L]`` and ``input_ids [L]`` of one row (real tokens only).
    """
    plt = _plt()
    ids = np.asarray(position_ids)
    kinds = _token_kinds(list(np.asarray(input_ids)))
    L = ids.shape[1]
    fig, axes = plt.subplots(2, 1, figsize=(max(9, 0.42 * L), 5.6), gridspec_kw={"height_ratios": [1, 1.6]},
                             sharex=True)
    ax = axes[0]
    ax.imshow(ids, aspect="auto", cmap="viridis", interpolation="nearest")
    _annotate_grid(ax, ids, fontsize=8)
    ax.set_yticks([0, 1, 2], ["t", "h", "w"])
    ax.set_title(title, fontsize=11)
    ax = axes[1]
    _shade_segments(ax, kinds)
    x = np.arange(L)
    for row, (name, dx) in enumerate((("t", -0.15), ("h", 0.0), ("w", 0.15))):
        ax.plot(x + dx, ids[row], "o-", ms=3.5, lw=1, color=ROPE_ROW_COLOURS[name], label=f"{name} id")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), loc="upper left", fontsize=8, ncol=5)
    ax.set_xlabel("token index (shaded: image / video pad tokens; the rest is text incl. vision_start/end)")
    ax.set_ylabel("position id")
    ax.set_xticks(x[:: max(1, L // 40)])
    fig.tight_layout()
    return fig


def plot_position_budget(items: dict[str, tuple[int, int]]):
    """Position ids consumed per item: 1D RoPE (one per token) vs M-RoPE (max(t, h', w') + specials)."""
    plt = _plt()
    import textwrap

    names = list(items)
    one_d = [items[n][0] for n in names]
    mrope = [items[n][1] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    b1 = ax.bar(x - 0.2, one_d, 0.4, label="1D RoPE (one id per token)", color="#7f7f7f")
    b2 = ax.bar(x + 0.2, mrope, 0.4, label="M-RoPE (max(t, h', w') per segment)", color="#2ca02c")
    for bars in (b1, b2):
        for bar in bars:
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() * 1.08, f"{int(bar.get_height()):,}",
                    ha="center", fontsize=9)
    ax.set_yscale("log")
    ax.set_xticks(x, [textwrap.fill(n, 22) for n in names], fontsize=9)
    ax.set_ylabel("position ids consumed (log scale)")
    ax.set_ylim(1, max(one_d) * 4)
    ax.set_title("M-RoPE reduces position ids: the next text token's id after the item", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_rope_drift(ours, theirs, input_ids, zoom: int = 40):
    """Temporal id of every token, paper rule vs transformers 5.x, after a long low-resolution video.

    ``ours, theirs [3, L]`` and ``input_ids [L]`` of one row. The band is the video's range of t ids;
    right panel: the tokens around the video's end, where 5.x resumes inside that band.
    """
    plt = _plt()
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    kinds = _token_kinds(list(np.asarray(input_ids)))
    L = ours.shape[1]
    x = np.arange(L)
    pads = np.array([k == "video" for k in kinds])
    last_pad = int(np.flatnonzero(pads).max())
    lo, hi = int(ours[0, pads].min()), int(ours[0, pads].max())
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.3), gridspec_kw={"width_ratios": [1.2, 1]})
    for ax, sl, marker in ((axes[0], slice(0, L), None),
                           (axes[1], slice(max(0, last_pad - zoom), min(L, last_pad + zoom // 2)), ".")):
        _shade_segments(ax, kinds[sl], x0=sl.start)
        ax.axhspan(lo, hi, color="#9467bd", alpha=0.15, lw=0, label=f"the video's t ids {lo}–{hi}")
        ax.plot(x[sl], ours[0, sl], "-", marker=marker, ms=4, color=ROPE_ROW_COLOURS["t"], lw=1.3,
                label="paper / transformers 4.45 (ours)")
        ax.plot(x[sl], theirs[0, sl], "--", marker=marker, ms=4, color="k", lw=1.1, label="transformers 5.x")
        ax.set_xlabel("token index")
        ax.set_ylabel("t id")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left")
    axes[0].set_title("whole sequence: text – long low-res video (shaded) – text", fontsize=10)
    axes[1].set_title(f"around the video's end: after t = {hi}, 5.x resumes at {int(theirs[0, last_pad + 1])} "
                      f"(inside the band), the paper at {int(ours[0, last_pad + 1])}", fontsize=10)
    fig.suptitle("The drift: transformers 5.x advances by max(h', w') after a video, ignoring its t", fontsize=11)
    fig.tight_layout()
    return fig


def plot_mrope_sections(mrope_section: Sequence[int] = (16, 24, 24), head_dim: int = 128, theta: float = 1e6):
    """Which id row (t / h / w) each rotary pair reads, and the pair's frequency."""
    plt = _plt()
    from ...rope import inverse_frequencies

    pairs = head_dim // 2
    owner = np.repeat(np.arange(3), mrope_section)  # [pairs]
    inv = inverse_frequencies(head_dim, theta).numpy()  # [pairs]
    fig, axes = plt.subplots(2, 1, figsize=(11, 4.8), gridspec_kw={"height_ratios": [2.2, 1]}, sharex=False)
    ax = axes[0]
    names = ("t", "h", "w")
    for s, name in enumerate(names):
        sel = owner == s
        ax.bar(np.arange(pairs)[sel], inv[sel], color=ROPE_ROW_COLOURS[name], width=0.85,
               label=f"{name}: {mrope_section[s]} pairs")
    ax.set_yscale("log")
    ax.set_xlim(-1, pairs)
    ax.set_xlabel(f"rotary pair j (frequency theta^(-2j/{head_dim}), theta = {theta:g})")
    ax.set_ylabel("radians per position step")
    ax.set_title(f"mrope_section {list(mrope_section)}: pair j rotates by the t, h or w id "
                 "(high frequencies for time, low ones for space)", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1]
    dims = np.concatenate([owner, owner])  # [head_dim] the angle vector is duplicated (rotate_half layout)
    from matplotlib.colors import ListedColormap

    ax.imshow(dims[None, :], aspect="auto", cmap=ListedColormap([ROPE_ROW_COLOURS[n] for n in names]),
              interpolation="nearest")
    ax.set_yticks([])
    ax.set_xlabel(f"head dimension (0–{head_dim - 1}): dims d and d + {pairs} rotate together")
    ax.set_title("over the head: [t h w | t h w]", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Lessons 05–06 — the language model and the whole model
# --------------------------------------------------------------------------------------------
def draw_embedding_merge(input_ids, image_token_id: int = 151655, video_token_id: int = 151656, *, every: int = 1,
                         title: str = "where the ViT's merged tokens go: the <|image_pad|> positions, in order"):
    """ViT outputs (top) scattered into the pad positions of the LLM sequence (bottom), in order."""
    plt = _plt()
    ids = np.asarray(input_ids).reshape(-1)
    pads = np.flatnonzero((ids == image_token_id) | (ids == video_token_id))
    fig, ax = plt.subplots(figsize=(10, 2.8))
    colours = np.where(ids == image_token_id, "#d62728", np.where(ids == video_token_id, "#ff7f0e", "#bbbbbb"))
    ax.bar(np.arange(len(ids)), np.ones(len(ids)), bottom=0, width=1.0, color=colours, edgecolor="white", lw=0.2)
    if len(pads):
        x0 = (len(ids) - len(pads)) / 2  # the ViT outputs, centred above
        ax.bar(x0 + np.arange(len(pads)), np.ones(len(pads)), bottom=2.2, width=1.0, color="#9467bd",
               edgecolor="white", lw=0.2)
        for k in range(0, len(pads), max(1, every)):
            ax.plot([x0 + k, pads[k]], [2.2, 1.0], color="#9467bd", lw=0.4, alpha=0.6)
        ax.text(x0, 3.35, f"ViT output: {len(pads)} merged tokens (row k → pad k)", fontsize=9)
    ax.text(0, -0.55, f"LLM sequence: {len(ids)} tokens (grey: text/special, red: <|image_pad|>, orange: "
                      f"<|video_pad|>)", fontsize=9)
    ax.set_xlim(-1, len(ids) + 1)
    ax.set_ylim(-0.9, 3.8)
    ax.set_yticks([])
    ax.set_xlabel("position in input_ids")
    ax.set_title(title, fontsize=10)
    return fig


def draw_gqa(num_heads: int = 12, num_kv_heads: int = 2, head_dim: int = 128, hidden: int = 1536):
    """Grouped-query attention: each key/value head serves num_heads / num_kv_heads query heads."""
    plt = _plt()
    from matplotlib.patches import FancyBboxPatch

    group = num_heads // num_kv_heads
    fig, ax = plt.subplots(figsize=(10, 3.2))
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for h in range(num_heads):
        g = h // group
        ax.add_patch(FancyBboxPatch((h, 2), 0.8, 0.8, boxstyle="round,pad=0.02", color=colours[g % 8], alpha=0.75))
        ax.text(h + 0.4, 2.4, f"q{h}", ha="center", va="center", fontsize=8, color="white")
        kx = g * group + (group - 1) / 2
        ax.plot([h + 0.4, kx + 0.4], [2.0, 0.8], color=colours[g % 8], lw=0.8)
    for g in range(num_kv_heads):
        kx = g * group + (group - 1) / 2
        ax.add_patch(FancyBboxPatch((kx, 0), 0.8, 0.8, boxstyle="round,pad=0.02", color=colours[g % 8]))
        ax.text(kx + 0.4, 0.4, f"k{g},v{g}", ha="center", va="center", fontsize=8, color="white")
    ax.text(num_heads + 0.3, 2.4, f"q_proj: {hidden} → {num_heads}x{head_dim} = {num_heads * head_dim}", fontsize=9,
            va="center")
    ax.text(num_heads + 0.3, 0.4, f"k_proj, v_proj: {hidden} → {num_kv_heads}x{head_dim} = {num_kv_heads * head_dim}"
                                  f"\n(KV cache {num_heads // num_kv_heads}x smaller than with MHA)", fontsize=9,
            va="center")
    ax.set_xlim(-0.5, num_heads + 7)
    ax.set_ylim(-0.3, 3.2)
    ax.axis("off")
    ax.set_title(f"GQA: {num_heads} query heads share {num_kv_heads} key/value heads ({group} per group)", fontsize=10)
    return fig


def plot_next_token_filters(logits, *, temperature: float = 0.7, top_k: int = 20, top_p: float = 0.9, show: int = 30):
    """The next-token distribution before and after temperature → top-k → top-p (transformers' order)."""
    import torch

    plt = _plt()
    from ...model import filter_logits

    logits = torch.as_tensor(logits, dtype=torch.float32).reshape(-1)
    order = logits.argsort(descending=True)[:show]
    base = logits.softmax(-1)[order]
    after = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p).softmax(-1)[order]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    x = np.arange(len(order))
    ax.bar(x - 0.2, base.numpy(), width=0.4, label="softmax(logits)", color="#bbbbbb")
    ax.bar(x + 0.2, after.numpy(), width=0.4, label=f"T={temperature}, top-k={top_k}, top-p={top_p}", color="#1f77b4")
    ax.set_xticks(x, [str(int(i)) for i in order], rotation=90, fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel(f"token id (the {show} most likely)")
    ax.set_ylabel("probability (log scale)")
    ax.set_title(f"sampling keeps {int((after > 0).sum())} candidates of {logits.numel()}; greedy takes the first",
                 fontsize=10)
    ax.legend(fontsize=8)
    return fig
