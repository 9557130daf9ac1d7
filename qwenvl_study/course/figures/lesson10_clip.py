"""Lesson 10 — CLIP and InfoNCE.

The similarity matrix and loss of one batch, a toy training run, and the effect of the
temperature. Draws from ``family/clip.py`` (CLIP, Radford et al. 2021, §2.3).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ._style import _plt

__all__ = ["draw_infonce_example", "plot_clip_training", "draw_similarity_matrices", "plot_temperature_effect"]

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
    fig, axes = plt.subplots(1, 4, figsize=(9.6, 3.3))
    for ax, (m, title, cmap, lim) in zip(axes, panels):
        m = m.detach().numpy()
        vmax = np.abs(m).max() if lim is None else lim[1]
        ax.imshow(m, cmap=cmap, vmin=-vmax if lim is None else lim[0], vmax=vmax)
        lo = -vmax if lim is None else lim[0]
        for (i, j), v in np.ndenumerate(m):
            dark = abs(v) / vmax > 0.6 if lo < 0 else (v - lo) / (vmax - lo) > 0.6  # white on the dark cells
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if dark else "black",
                    fontweight="bold" if i == j else "normal")
        ax.set_xticks(range(n), [f"text {j}" for j in range(n)], fontsize=8, rotation=45)
        ax.set_yticks(range(n), [f"image {i}" for i in range(n)], fontsize=8)
        ax.set_title(title, fontsize=9)
    loss = clip_loss(torch.as_tensor(image_features), torch.as_tensor(text_features), logit_scale).item()
    fig.suptitle(f"Symmetric InfoNCE = (CE rows + CE columns) / 2 = {loss:.3f}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_clip_training(history, ax=None, *, floor: float | None = None, floor_label: str | None = None):
    """The toy contrastive training: loss per step and the learned logit scale exp(t).

    Reference lines, each labelled inside the axes: chance, ln(batch) (64 in the toy run), and an optional
    ``floor`` (e.g. the lowest loss reachable at a frozen scale). The legend sits below the axes, off the data."""
    plt = _plt()
    from matplotlib.ticker import NullFormatter

    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4.2))
    fig = ax.figure
    steps = np.arange(1, len(history.loss) + 1)
    chance = np.log(64)
    ax.plot(steps, history.loss, color="#1f77b4", label="training loss (batch of 64)")
    lines = [(chance, "chance: ln 64 = %.3f" % chance, "grey", ":")]
    if floor is not None:
        lines.append((floor, floor_label or f"floor {floor:.3f}", "#2ca02c", "--"))
    low = min(min(history.loss), *(v for v, *_ in lines)) / 1.3
    high = max(max(history.loss), *(v for v, *_ in lines)) * 1.25
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    for value, label, colour, style in lines:
        ax.axhline(value, color=colour, ls=style, lw=1.2)
        # mid-run, where neither the first steps' loss nor the logit-scale curve's ends pass
        ax.text(steps[len(steps) // 2], value * 1.03, label, ha="center", va="bottom", fontsize=8, color=colour)
    ticks = [t for t in (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 3, 4, 6, 8) if low <= t <= high]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])  # plain numbers on the log axis
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("step")
    ax.set_ylabel("symmetric InfoNCE loss (log scale)")
    ax2 = ax.twinx()
    ax2.plot(steps, history.logit_scale, color="#d62728", label="logit scale exp(t)")
    ax2.set_ylabel("logit scale exp(t) = 1 / temperature", color="#d62728")
    handles = ax.get_lines()[:1] + ax2.get_lines()
    ax.legend(handles, [ln.get_label() for ln in handles], loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
              fontsize=8, frameon=False)
    ax.set_title(f"Toy CLIP: held-out retrieval top-1 {history.accuracy_before:.0%} → {history.accuracy_after:.0%}",
                 fontsize=10)
    fig.tight_layout()
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
    ax.set_xticks(range(len(sims)), [f"text {j}\ncos {v:.2f}" for j, v in enumerate(sims.tolist())], fontsize=8)
    ax.set_ylabel("softmax probability")
    ax.set_title("The temperature: the same cosines, three logit scales (text 0 is the true pair)")
    ax.legend(fontsize=8)
    return fig
