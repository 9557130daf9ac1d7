"""Lesson 12 — the paper's claims in miniature (ablations of the course model).

One figure per claim: the baseline and the variant on the claim's key cells (split x metric),
mean ± std over seeds, chance marked; beside it what each costs (visual tokens per image,
training minutes). Draws from ``qwenvl_study/train/ablations.py`` (``summarize``, ``compare``,
``KEY_CELLS``, ``CHANCE``, ``verdict``); paper §2.1.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ._style import _plt

__all__ = ["plot_claim", "plot_ablation_overview"]

_COLOURS = {"baseline": "#1f77b4", "variant": "#ff7f0e"}


def plot_claim(results: Mapping[str, Any], variant: str):
    """Scores of the baseline and ``variant`` on the claim's key cells (bars: mean over seeds, whiskers:
    ± std, dashes: chance) and their cost (visual tokens per in_dist image, training minutes)."""
    from ...train.ablations import CHANCE, CLAIMS, KEY_CELLS, summarize, verdict

    plt = _plt()
    summary = summarize(results)
    fig, (ax, cost) = plt.subplots(1, 2, figsize=(12.5, 4.2), gridspec_kw={"width_ratios": [3, 1.25]})
    cells = KEY_CELLS[variant]
    x = np.arange(len(cells))
    width = 0.38
    for k, (name, label) in enumerate((("baseline", "baseline (M-RoPE, 2D-RoPE, dynamic res., 2x2 merge, video)"),
                                       (variant, variant))):
        if name not in summary:
            continue
        m = summary[name]["metrics"]
        means = [m[s][t][0] for s, t in cells]
        stds = [m[s][t][1] for s, t in cells]
        ax.bar(x + (k - 0.5) * width, means, width, yerr=stds, capsize=3, label=f"{label} ({summary[name]['n']} seeds)",
               color=_COLOURS["baseline" if k == 0 else "variant"])
    for i, (_, metric) in enumerate(cells):
        ax.hlines(CHANCE[metric], i - width, i + width, colors="k", linestyles="--", linewidth=1,
                  label="chance" if i == 0 else None)
    ax.set_xticks(x, [f"{s}\n{t}" for s, t in cells], fontsize=8)
    ax.set_ylim(0, 1.3)  # room for the legend above the bars
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("score (mean ± std over seeds)")
    ax.set_xlabel("split / metric (the claim's key cells)")
    ax.legend(fontsize=7, loc="upper center", ncol=3, frameon=False)
    word, _ = verdict(results, variant)
    ax.set_title(f"{variant}: {CLAIMS[variant][1]}\nverdict: {word}", fontsize=9)

    names = [n for n in ("baseline", variant) if n in summary]
    tokens = [summary[n]["tokens"] for n in names]
    minutes = [tuple(v / 60 for v in summary[n]["seconds"]) for n in names]
    xs = np.arange(len(names))
    cost.bar(xs - 0.2, [t[0] for t in tokens], 0.4, yerr=[t[1] for t in tokens], capsize=3, color="#2ca02c",
             label="visual tokens / image")
    cost.set_ylabel("visual tokens per in_dist image", color="#2ca02c")
    twin = cost.twinx()
    twin.bar(xs + 0.2, [m[0] for m in minutes], 0.4, yerr=[m[1] for m in minutes], capsize=3, color="#9467bd",
             label="training minutes")
    twin.set_ylabel("training minutes (mean ± std)", color="#9467bd")
    cost.set_xticks(xs, names, fontsize=8)
    cost.set_xlabel("model")
    cost.set_title("what each costs", fontsize=9)
    fig.tight_layout()
    return fig


def plot_ablation_overview(results: Mapping[str, Any]):
    """Every variant on every split and metric: a heat map of the mean over seeds (text: mean ± std)."""
    from ...train.ablations import SPLITS, VARIANTS, summarize

    plt = _plt()
    summary = summarize(results)
    names = [v for v in VARIANTS if v in summary]
    cols = [(s, t) for s, split in SPLITS.items() for t in split.tasks]
    values = np.array([[summary[n]["metrics"][s][t][0] for s, t in cols] for n in names])
    stds = np.array([[summary[n]["metrics"][s][t][1] for s, t in cols] for n in names])
    fig, ax = plt.subplots(figsize=(12, 0.55 * len(names) + 1.8))
    im = ax.imshow(values, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.2f}\n±{stds[i, j]:.2f}", ha="center", va="center", fontsize=7,
                color="white" if v < 0.55 else "black")
    ax.set_xticks(range(len(cols)), [f"{s}\n{t}" for s, t in cols], fontsize=7)
    ax.set_yticks(range(len(names)), [f"{n} ({summary[n]['n']} seeds)" for n in names], fontsize=8)
    ax.set_xlabel("split / metric")
    ax.set_ylabel("variant")
    fig.colorbar(im, ax=ax, label="score (mean over seeds)")
    ax.set_title("every variant, every split: mean ± std over seeds", fontsize=10)
    fig.tight_layout()
    return fig
