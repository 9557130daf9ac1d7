"""environment.yml and pyproject.toml install the same things; the public API is exported."""

import tomllib
from pathlib import Path

import yaml

import qwenvl_study

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in ("notebooks", "dev", "site"):
        wanted |= set(project["optional-dependencies"][extra])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip  # the package itself
    assert set(pip) - {"-e ."} == wanted


def test_make_installs_every_extra_ci_needs():
    """A fresh clone's `make test` / `make site` get the notebook, dev and site extras (not gpu)."""
    makefile = (ROOT / "Makefile").read_text()
    assert '-e ".[notebooks,dev,site]"' in makefile


def test_torch_stays_on_the_cpu_wheel_line():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_req = next(d for d in project["dependencies"] if d.startswith("torch"))
    assert "<2.14" in torch_req  # a bound admitting newer releases pulls GBs of CUDA wheels
    assert not any("torchvision" in d for d in project["dependencies"])
    assert project["optional-dependencies"]["gpu"] == ["flash-attn>=2.6"]


def test_public_api_names_are_exported():
    for name in ["smart_resize", "count_image_tokens", "count_video_tokens", "preprocess_image", "patchify",
                 "count_parameters", "load_config", "QWEN2_VL_2B", "QWEN2_VL_7B", "QWEN2_VL_72B",
                 "VisionConfig", "TextConfig", "Qwen2VLConfig", "vision_position_ids", "mrope_position_ids",
                 # lessons 07-08: media, chat, grounding
                 "process_vision_info", "fetch_image", "fetch_video", "plan_video", "smart_nframes", "MediaDefaults",
                 "MEDIA_PRESETS", "VideoPlan", "preprocess_video", "build_prompt", "expand_vision_pads",
                 "prepare_inputs", "load_tokenizer", "qwen2_tokenizer", "SPECIAL_TOKENS", "CHAT_TEMPLATE", "GroundedBox",
                 "to_normalized", "from_normalized", "format_grounding", "parse_grounding", "draw_boxes",
                 "internvl_tile_grid", "pixel_shuffle", "clip_loss", "token_budget", "format_budget",
                 # lesson 04
                 "VisionTransformer", "block_diagonal_mask", "cu_seqlens_from_grid",
                 # lessons 05-06
                 "Qwen2VL", "load_pretrained"]:
        assert hasattr(qwenvl_study, name), name
        assert name in qwenvl_study.__all__


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme and "make lab" in readme


def test_submodules_are_not_shadowed_by_exports():
    """`import qwenvl_study.attention as m` must give the module, not a function of the same name."""
    import importlib
    import types

    for name in ["config", "resolution", "patching", "rope", "attention", "vision", "language", "model",
                 "checkpoint", "media", "chat", "tokenizer", "grounding", "cli", "family", "course", "course.reference",
                 "course.checks", "course.figures", "course.tour", "course.env", "course.samples"]:
        assert isinstance(getattr(qwenvl_study, name, importlib.import_module(f"qwenvl_study.{name}")),
                          types.ModuleType), name
