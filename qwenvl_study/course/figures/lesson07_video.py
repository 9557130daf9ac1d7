"""Lesson 07 — video and GIF.

Frames sampled at 2 fps on a timeline, paired into tubes, the token count of a video against its
duration per preset, tokens vs M-RoPE positions against the context length, and a GIF read as an
image and as a video. Draws from ``media.py`` (paper
§2.1 "Unified Image and Video Understanding").
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ...resolution import FACTOR, PATCH_SIZE
from ._style import MERGE_COLOURS, _plt

__all__ = ["draw_frame_timeline", "moving_patch", "draw_video_tubes", "explain_video",
           "plot_video_tokens_vs_duration", "plot_video_context", "draw_gif_modes"]

PRESET_COLOURS = {"0.0.8": "#1f77b4", "0.0.10": "#ff7f0e", "paper": "#2ca02c"}


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
        if k % 2 == 0:  # a bracket over the pair's two thumbnails, labelled above them (off the connectors)
            ax.plot([x0 + 0.06 * slot, x0 + 1.94 * slot], [0.97, 0.97], color=colour, lw=1.5)
            ax.text(x0 + slot, 1.0, f"tube t={k // 2}", ha="center", va="bottom", fontsize=9, color=colour)
    ax.vlines(times, 0, 0.2, color="#d62728", lw=1.5, label=f"{plan.nframes} sampled ({plan.sample_fps:.2f} per s)")
    ax.set_xlim(plan.start_time - 0.02 * duration, plan.start_time + duration * 1.02)
    ax.set_ylim(0, 1.15)
    ax.set_yticks([])
    ax.set_xlabel("time (s)", fontsize=10)
    ax.set_title(f"{plan.total_frames} frames at {plan.video_fps:g} fps → {plan.nframes} sampled → "
                 f"{plan.nframes // 2} temporal patches of 2 frames, each {plan.resized_width}x{plan.resized_height}",
                 fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, fontsize=9, frameon=False)
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
    fig = plt.figure(figsize=(12, 7.4))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.3, 1.1], hspace=0.08)
    draw_frame_timeline(frames, plan, ax=top.subplots())
    top.subplots_adjust(bottom=0.32)  # room for the timeline's legend, under its axis
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


def _durations() -> np.ndarray:
    return np.unique(np.geomspace(2, 3600, 160).round(1))


def _legend_below(ax, ncol: int = 2) -> None:
    """The legend under the axes (off the data), every entry labelled."""
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, frameon=False)


def plot_video_tokens_vs_duration(height: int = 1080, width: int = 1920, video_fps: float = 30.0,
                                  presets: Sequence[str] = ("0.0.8", "0.0.10", "paper"), ax=None):
    """Merged tokens of a video vs its duration (2 fps sampling), per preset.

    Every reference line is labelled in the legend (below the axes): each preset's token budget
    (total_pixels / 28²), the paper's 16384 per video, and the duration where 2 fps reaches 768 frames.
    """
    plt = _plt()
    from ...media import MEDIA_PRESETS, plan_video

    if ax is None:
        fig, ax = plt.subplots(figsize=(8.5, 5.6))
    fig = ax.figure
    seconds = _durations()
    for name in presets:
        toks = [plan_video(max(4, int(s * video_fps)), video_fps, height, width, defaults=name).tokens for s in seconds]
        ax.plot(seconds, toks, color=PRESET_COLOURS.get(name), lw=1.6, label=f"preset {name}")
        budget = MEDIA_PRESETS[name].video_token_budget
        if name != "paper":
            ax.axhline(budget, color=PRESET_COLOURS.get(name), ls=":", lw=1.1,
                       label=f"budget of {name}: total_pixels / 28² = {budget:,.0f}")
    ax.axhline(16384, color="k", ls="--", lw=1, label="paper: at most 16,384 tokens per video (= preset paper's budget)")
    max_frames = MEDIA_PRESETS[presets[0]].fps_max_frames
    ax.axvline(max_frames / 2, color="grey", ls="-.", lw=1,
               label=f"{max_frames / 2:g} s: 2 fps reaches {max_frames} frames (FPS_MAX_FRAMES)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("video duration (s), sampled at 2 fps", fontsize=10)
    ax.set_ylabel("merged visual tokens", fontsize=10)
    ax.set_title(f"Tokens per video vs duration ({width}x{height} at {video_fps:g} fps)", fontsize=11)
    _legend_below(ax)
    fig.tight_layout()
    return fig


def plot_video_context(height: int = 1080, width: int = 1920, video_fps: float = 30.0, *,
                       contexts: Sequence[tuple[int, str]] = ((32768, "32K context (32,768): Qwen2-VL-2B's max_position_embeddings"),
                                                              (131072, "128K context (131,072)")),
                       mark_seconds: float = 1200, defaults: str | None = None, ax=None):
    """Tokens vs positions of a video against its duration, at the published defaults.

    Tokens (what attention and the KV cache pay for, = the ids 1D RoPE would use) vs the ids M-RoPE uses
    (max(t, h', w') + 2: the temporal axis grows by one per 2 sampled frames), with the context lengths and
    the 20-minute point marked; every reference line labelled in the legend below the axes.
    """
    plt = _plt()
    from ...media import plan_video

    if ax is None:
        fig, ax = plt.subplots(figsize=(8.5, 5.8))
    fig = ax.figure
    seconds = _durations()
    plans = [plan_video(max(4, int(s * video_fps)), video_fps, height, width, defaults=defaults) for s in seconds]
    tokens = np.array([p.tokens + 2 for p in plans])
    positions = np.array([max(p.grid_thw[0], p.grid_thw[1] // 2, p.grid_thw[2] // 2) + 2 for p in plans])
    ax.plot(seconds, tokens, color="#1f77b4", lw=1.8, label="tokens (+2 wrappers) = ids under 1D RoPE")
    ax.plot(seconds, positions, color="#d62728", lw=1.8, label="ids under M-RoPE: max(t, h', w') + 2")
    for (n, label), colour in zip(contexts, ("#555555", "#9467bd")):
        ax.axhline(n, color=colour, ls="--", lw=1.1, label=label)
    mark = plan_video(int(mark_seconds * video_fps), video_fps, height, width, defaults=defaults)
    m_tok = mark.tokens + 2
    m_pos = max(mark.grid_thw[0], mark.grid_thw[1] // 2, mark.grid_thw[2] // 2) + 2
    ax.axvline(mark_seconds, color="#2ca02c", ls=":", lw=1.2,
               label=f"{mark_seconds / 60:g} min: {m_tok:,} tokens, {m_pos:,} M-RoPE ids")
    ax.plot([mark_seconds] * 2, [m_tok, m_pos], "o", color="#2ca02c", ms=5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(10, 4e5)
    ax.set_xlabel("video duration (s), sampled at 2 fps", fontsize=10)
    ax.set_ylabel("tokens / position ids", fontsize=10)
    ax.set_title(f"A video in the context: tokens vs M-RoPE positions ({width}x{height}, published defaults)",
                 fontsize=11)
    _legend_below(ax)
    fig.tight_layout()
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
