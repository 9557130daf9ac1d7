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
