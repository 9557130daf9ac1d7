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


def _legend_boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert legends, "the figure has no legend"
    return renderer, [legend.get_window_extent(renderer) for legend in legends]


def _assert_legends_off_the_data(fig):
    renderer, boxes = _legend_boxes(fig)
    for box in boxes:
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), "a legend sits on the data"


def _assert_reference_lines_labelled(fig):
    for ax in fig.axes:
        references = [line for line in ax.get_lines() if line.get_transform() != ax.transData]  # axhline/axvline
        assert references, "no reference lines drawn"
        labels = {line.get_label() for line in references}
        assert not any(label.startswith("_") for label in labels), labels
        assert labels <= set(ax.get_legend_handles_labels()[1])  # each shown in the legend


def test_lesson03_drift_figure_keeps_its_legend_and_band_off_the_data():
    import torch

    from qwenvl_study.rope import VIDEO_TOKEN_ID, mrope_position_ids, segments_to_batch

    case = segments_to_batch([[("text", 3), ("video", (12, 4, 4)), ("text", 5)]])
    ours, _ = mrope_position_ids(**case)
    ours = ours[:, 0]
    after = int((case["input_ids"][0] == VIDEO_TOKEN_ID).nonzero().max()) + 1
    theirs = ours.clone()
    theirs[:, after:] -= 12 - 2  # transformers 5.x resumes at start + max(h', w') = start + 2, not + 12
    fig = viz.plot_rope_drift(ours, theirs, case["input_ids"][0], zoom=20)
    _assert_legends_off_the_data(fig)
    band = [p for p in fig.axes[1].collections]  # the t-id band: drawn only right of the video's last token
    assert band and min(p.get_paths()[0].vertices[:, 0].min() for p in band) > after - 1
    assert torch.equal(ours[0, :after], theirs[0, :after])


def test_lesson07_token_figures_label_every_reference_line_off_the_data():
    for fig in (viz.plot_video_tokens_vs_duration(), viz.plot_video_context()):
        _assert_reference_lines_labelled(fig)
        _assert_legends_off_the_data(fig)


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
