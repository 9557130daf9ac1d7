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
