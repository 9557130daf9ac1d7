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
