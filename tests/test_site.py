"""The website's build script (site/build.py) stages what it promises; CI builds and browses it.

The build itself (Sphinx, ~30 s) and the headless-browser check run in `.ci/run` after `make test`
(`make site`, `make site-check`); these tests cover the staging logic in milliseconds.
"""

import importlib.util
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("site_build", ROOT / "site" / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)


def test_staged_notebook_drops_widget_views_and_keeps_the_static_fallback(tmp_path):
    src = ROOT / "notebooks" / "01_dynamic_resolution.ipynb"
    widget = build.WIDGET_MIME
    before = nbformat.read(src, as_version=4)
    assert any(widget in o.get("data", {}) for c in before.cells if c.cell_type == "code" for o in c.outputs)
    build.stage_notebook(src, tmp_path / src.name)
    after = nbformat.read(tmp_path / src.name, as_version=4)
    assert "widgets" not in after.metadata
    outputs = [o for c in after.cells if c.cell_type == "code" for o in c.outputs]
    assert not any(widget in o.get("data", {}) for o in outputs)
    assert any("1-min video at 2 fps" in o.get("text", "") for o in outputs)  # the calculator's table
    assert len(after.cells) == len(before.cells)


def test_home_page_links_every_notebook_found_by_glob():
    stems = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    page = build.home_page(stems)
    for stem in stems:
        assert f"notebooks/{stem}" in page  # in the toctree
    readme = (ROOT / "README.md").read_text()
    for stem in stems:
        if f"| `{stem}` |" in readme:
            assert f"[{stem}](notebooks/{stem}.ipynb)" in page
    assert "calculator" in page and "faq" in page and "api" in page


def test_api_page_covers_the_public_api():
    import qwenvl_study

    page = build.api_page()
    for name in qwenvl_study.__all__:
        assert f"qwenvl_study.{name}" in page, name


def test_ci_builds_and_browses_the_site():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make test") < ci.index("make site") < ci.index("make site-check")
    assert "npm ci" in ci and "chromium" in ci
    assert (ROOT / "site" / "check" / "package-lock.json").exists()
