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


# --- lessons 08-10: text >= 8 pt at display size (inline at 110 dpi, no wider than 10 in: not shrunk) ---------
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


def _display_check(fig, *, min_pt=8.0, max_width_in=10.0):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    sizes = [t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_fontsize"))
             if t.get_visible() and t.get_text().strip()]
    width = fig.get_tightbbox(renderer).width  # inches, as the inline backend crops it
    plt.close(fig)
    assert sizes and min(sizes) >= min_pt, f"smallest text {min(sizes)} pt"
    assert width <= max_width_in, f"{width:.1f} in wide"


def _lesson_08_to_10_figures():
    from qwenvl_study import build_prompt, parse_grounding
    from qwenvl_study.course.samples import sample_path
    from qwenvl_study.family import clip

    history = clip.train_toy_clip(steps=3, seed=0)
    text = build_prompt([{"role": "user", "content": [{"image": "x"}, {"text": "Where?"}]}])
    box = parse_grounding("<|object_ref_start|>a<|object_ref_end|><|box_start|>(1,2),(300,400)<|box_end|>")
    yield "chat tokens", lambda: viz.draw_chat_tokens(text)
    yield "input composition", lambda: viz.plot_input_composition([1, 2, 151655, 151655, 151645])
    yield "grounding", lambda: viz.draw_grounding(sample_path(), box)
    yield "connectors", viz.draw_connectors
    yield "qformer masks", viz.draw_qformer_masks
    yield "internvl tiles", lambda: viz.draw_internvl_tiles(sample_path())
    yield "token grouping", viz.draw_token_grouping
    yield "token budget", viz.plot_token_budget
    yield "training stages", lambda: viz.draw_training_stages(
        [("A", "1 · stage", [("frozen", "ViT"), ("trained", "connector"), ("absent", "none")]),
         ("A", "2 · stage", [("lora", "ViT"), ("partial", "half"), ("trained", "LLM")])])
    yield "infonce example", lambda: viz.draw_infonce_example(torch.eye(3), torch.eye(3), 10.0)
    yield "clip training", lambda: viz.plot_clip_training(history, floor=2.254, floor_label="floor")
    yield "similarity", lambda: viz.draw_similarity_matrices(history, n=4)
    yield "temperature", lambda: viz.plot_temperature_effect([0.9, 0.1])


@pytest.mark.parametrize("name, draw", list(_lesson_08_to_10_figures()), ids=lambda v: v if isinstance(v, str) else "")
def test_lessons_08_to_10_text_is_readable_at_display_size(name, draw):
    _display_check(draw())


def test_clip_training_draws_and_labels_the_floor():
    from qwenvl_study.family import clip

    fig = viz.plot_clip_training(clip.train_toy_clip(steps=3, seed=0), floor=2.254, floor_label="floor 2.254")
    ax = fig.axes[0]
    assert any(abs(line.get_ydata()[0] - 2.254) < 1e-9 for line in ax.get_lines())  # the floor line is drawn
    assert {"floor 2.254"} <= {t.get_text() for t in ax.texts}  # and labelled
    low, high = ax.get_ylim()
    assert low < 2.254 < high
    title = ax.title.get_window_extent(fig.canvas.get_renderer())
    assert not any(t.get_window_extent().overlaps(title) for t in ax.texts)  # no label on the title
    plt.close(fig)


def test_training_stages_refuse_an_unknown_state():
    with pytest.raises(ValueError, match="states in"):
        viz.draw_training_stages([("A", "1", [("warm", "ViT"), ("trained", "c"), ("frozen", "LLM")])])
