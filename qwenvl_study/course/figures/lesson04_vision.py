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
           "layer_labels", "plot_layer_errors"]

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
    ax.set_xticks(mids, labels, fontsize=8)
    ax.set_yticks(mids, [x.replace("\n", " ") for x in labels], fontsize=8)
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


def layer_labels(n: int, kind: str = "vision") -> list[str]:
    """Names of ``n`` hidden states in transformers' ``output_hidden_states`` convention.

    ``"vision"``: the patch embeddings, then the output of every block. ``"llm"``: the embeddings, the
    output of layers 0 .. n-3 (= the input of the next layer), and last the *final norm* applied to the
    last layer's output — transformers (and ours) return that normed state in place of the raw one.
    """
    if kind == "vision":
        return ["patch embed"] + [f"block {i}" for i in range(n - 1)]
    if kind == "llm":
        return ["embeddings"] + [f"layer {i}" for i in range(n - 2)] + [f"final norm\n(after layer {n - 2})"]
    raise ValueError(f"layer_labels: kind must be 'vision' or 'llm', got {kind!r}")


def plot_layer_errors(ours: Sequence, reference: Sequence, ax=None, tolerance: float = 1e-5, kind: str = "vision",
                      title: str | None = None):
    """max |ours - reference| per hidden state (``layer_labels(kind)``): the layer-by-layer parity.

    A difference of exactly 0 (bit-identical) has no height on a log axis: it is drawn as a marker on
    the floor labelled "0", so a figure of zeros says so instead of showing bars at an invented value.
    """
    plt = _plt()
    errors = [float((a - b).abs().max()) for a, b in zip(ours, reference)]
    many = len(errors) > 8  # a 32-block tower: a wider figure, labels upright
    if ax is None:
        fig, ax = plt.subplots(figsize=(min(12.0, 3.0 + 0.27 * len(errors)) if many else 6.5, 3.6))
    fig = ax.figure
    labels = layer_labels(len(errors), kind)
    nonzero = [e for e in errors if e > 0]
    floor = min(nonzero + [tolerance]) / 100
    x = np.arange(len(errors))
    if nonzero:
        ax.bar([i for i, e in zip(x, errors) if e > 0], nonzero, color="#1f77b4", bottom=floor,
               label="max |ours - transformers|")
    zeros = [i for i, e in zip(x, errors) if e == 0]
    if zeros:
        ax.plot(zeros, [floor * 1.6] * len(zeros), "D", color="#2ca02c", ms=6, ls="none",
                label="exactly 0 (bit-identical)")
        for i in zeros:
            ax.text(i, floor * 3.2, "0", ha="center", va="bottom", fontsize=8, color="#2ca02c")
    ax.axhline(tolerance, color="red", ls="--", lw=1, label=f"tolerance {tolerance:g}")
    ax.set_yscale("log")
    ax.set_ylim(floor, max(errors + [tolerance]) * 30)
    ax.set_xlim(-0.6, len(errors) - 0.4)
    ax.set_xticks(x, labels, rotation=90 if many else 0, fontsize=8)
    ax.set_ylabel("max |ours - transformers|")
    default = (f"Hidden states, layer by layer: all {len(errors)} bit-identical" if not nonzero else
               f"Hidden states, layer by layer: {len(zeros)} of {len(errors)} bit-identical, "
               f"largest difference {max(errors):.1e}")
    ax.set_title(title or default, fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig
