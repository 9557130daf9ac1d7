"""The figures: one module per lesson, every public name re-exported, saved at >= 110 dpi."""

import importlib
import pkgutil

from PIL import Image

from qwenvl_study.course import figures as viz


def test_every_lesson_module_is_re_exported_in_course_order():
    modules = [m.name for m in pkgutil.iter_modules(viz.__path__) if m.name.startswith("lesson")]
    assert modules == sorted(modules) and len(modules) >= 9
    exported = []
    for name in modules:
        module = importlib.import_module(f"{viz.__name__}.{name}")
        assert module.__all__, name
        for public in module.__all__:
            assert getattr(viz, public) is getattr(module, public), (name, public)
        exported += module.__all__
    assert len(exported) == len(set(exported))  # each figure lives in one lesson
    assert set(viz.__all__) == set(exported) | {"DPI", "savefig"}


def test_savefig_writes_at_least_110_dpi(tmp_path):
    assert viz.DPI >= 110
    path = viz.savefig(viz.draw_patch_order(2, 4), tmp_path / "sub" / "order.png")
    with Image.open(path) as png:
        assert min(png.info["dpi"]) >= 109.5  # PNG stores pixels per metre: 120 dpi reads back as 119.99


def test_layer_errors_draw_exact_zeros_as_zeros_and_name_the_final_norm():
    """Lessons 04 and 06: a bit-identical hidden state is a marker labelled 0 (not a bar at an invented height),
    and the LLM's last hidden state is the final norm, not another layer."""
    import matplotlib.pyplot as plt
    import torch

    ours = [torch.zeros(3), torch.ones(3), torch.ones(3)]
    reference = [torch.zeros(3), torch.ones(3) + 1e-6, torch.ones(3)]
    fig = viz.plot_layer_errors(ours, reference, kind="llm")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["embeddings", "layer 0", "final norm\n(after layer 1)"]
    assert len(ax.patches) == 1 and "2 of 3 bit-identical" in ax.get_title()  # one bar: the nonzero difference
    assert [t.get_text() for t in ax.texts] == ["0", "0"]
    plt.close(fig)
    fig = viz.plot_layer_errors(ours[:2], ours[:2])
    assert "all 2 bit-identical" in fig.axes[0].get_title() and not fig.axes[0].patches
    plt.close(fig)
    assert viz.layer_labels(3) == ["patch embed", "block 0", "block 1"]


# --- lessons 01-02: no text on text, no legend on a curve, text >= 8 pt, width <= 12 in ---------------------
def _drawn_texts(fig):
    """(text, bbox) of every text the Agg renderer actually draws (tick labels outside the view excluded)."""
    from matplotlib.backends.backend_agg import RendererAgg

    drawn, draw_text = [], RendererAgg.draw_text

    def record(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if mtext is not None and s.strip():
            drawn.append(mtext)
        return draw_text(self, gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    RendererAgg.draw_text = record
    try:
        fig.canvas.draw()
    finally:
        RendererAgg.draw_text = draw_text
    renderer = fig.canvas.get_renderer()
    return [(t, t.get_window_extent(renderer)) for t in dict.fromkeys(drawn)]


def _overlap(a, b) -> bool:
    """Two display boxes share more than a pixel each way."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1


def _layout_problems(fig):
    from itertools import combinations

    from matplotlib.path import Path

    texts = _drawn_texts(fig)
    problems = [f"{t.get_text()!r} at {t.get_fontsize():g} pt" for t, _ in texts if t.get_fontsize() < 8]
    for (a, box_a), (b, box_b) in combinations(texts, 2):
        if _overlap(box_a, box_b):
            problems.append(f"{a.get_text()!r} overlaps {b.get_text()!r}")
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        frame = legend.get_window_extent(renderer)
        for line in ax.get_lines():
            path = Path(line.get_transform().transform(line.get_xydata()))
            if len(path.vertices) > 1 and path.intersects_bbox(frame, filled=False):
                problems.append(f"the legend covers the line {line.get_label()!r}")
        own = set(legend.get_texts()) | {legend.get_title()}
        for t, box in texts:
            if t not in own and _overlap(box, frame):
                problems.append(f"the legend covers {t.get_text()!r}")
    if fig.get_size_inches()[0] > 12.01:
        problems.append(f"{fig.get_size_inches()[0]:.1f} in wide (> 12 in: text shrinks below 8 pt on screen)")
    return problems


def test_lesson01_02_figures_have_no_overlaps_and_readable_text():
    import numpy as np

    figures = {
        "plot_tokens_vs_resolution": viz.plot_tokens_vs_resolution(),
        "draw_patch_order": viz.draw_patch_order(4, 6),
        "draw_vision_position_ids": viz.draw_vision_position_ids(6, 8),
        "plot_vision_rotary_angles": viz.plot_vision_rotary_angles(8, 8),
        "plot_relative_scores": viz.plot_relative_scores(np.random.default_rng(0).normal(size=(120, 120)), 10, 12),
    }
    problems = {name: _layout_problems(fig) for name, fig in figures.items()}
    assert not any(problems.values()), problems


def test_the_layout_check_sees_an_overlap():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 1], label="data")
    ax.plot([0, 1], [0, 0], label="more data")
    ax.text(0.5, 0.5, "one label")
    ax.text(0.5, 0.5, "another label")
    ax.text(0.05, 0.9, "a third label", transform=ax.transAxes)
    ax.legend(loc="upper left")  # on the line and on the third label
    problems = _layout_problems(fig)
    plt.close(fig)
    assert any("overlaps" in p for p in problems) and any("covers the line" in p for p in problems)
    assert any("covers 'a third label'" in p for p in problems)


def test_lesson04_05_06_figures_have_no_overlaps_and_readable_text():
    import matplotlib.pyplot as plt
    import torch

    ids = torch.tensor([151644] * 14 + [151652] + [151655] * 12 + [151653] + [100] * 9)
    same, off = [torch.ones(2)] * 33, [torch.ones(2) + 1e-6] * 33
    figures = {
        "plot_layer_errors (3 states, zeros)": viz.plot_layer_errors(same[:3], [same[0]] + off[:2], kind="llm"),
        "plot_layer_errors (the 2B tower's 33)": viz.plot_layer_errors(same, off),
        "plot_layer_errors (the 2B LLM's 29)": viz.plot_layer_errors(same[:29], off[:29], kind="llm"),
        "draw_block_mask": viz.draw_block_mask([[1, 16, 16], [2, 8, 8], [1, 8, 12]]),
        "draw_temporal_slices": viz.draw_temporal_slices(viz.toy_video(4, 112, 112)),
        "plot_attention_memory": viz.plot_attention_memory([256, 320, 320, 192, 192, 400, 144, 384]),
        "draw_gqa": viz.draw_gqa(),
        "draw_embedding_merge": viz.draw_embedding_merge(ids),
        "plot_next_token_filters": viz.plot_next_token_filters(torch.randn(151936) * 0.1),
    }
    problems = {name: _layout_problems(fig) for name, fig in figures.items()}
    plt.close("all")
    assert not any(problems.values()), problems
