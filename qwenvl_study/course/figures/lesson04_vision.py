"""Lesson 04 — the vision encoder.

The block-diagonal mask of images and videos packed into one sequence, a video cut into 2-frame
tubes, the memory of the attention scores, and per-layer errors against the reference (also used
by lesson 06 for the whole model). Draws from ``attention.py`` and ``vision.py`` (paper §2.1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...resolution import PATCH_SIZE
from ._style import _plt

__all__ = ["draw_block_mask", "toy_video", "draw_temporal_slices", "plot_attention_memory",
           "plot_layer_errors"]

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
