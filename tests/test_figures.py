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
