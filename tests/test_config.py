"""Configs, presets, load_config (4.x flat + 5.x nested) and parameter counts vs transformers."""

import collections
import dataclasses
import json
import re

import pytest

from qwenvl_study import (QWEN2_VL_2B, QWEN2_VL_7B, QWEN2_VL_72B, Qwen2VLConfig, TextConfig, VisionConfig,
                          count_parameters, load_config, model_structure, tiny_config)
from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.config import PRESETS, QWEN_VL_VS_QWEN2_VL, format_table

# config.json of Qwen/Qwen2-VL-2B-Instruct as published (transformers 4.x flat layout).
PUBLISHED_2B_CONFIG = {
    "architectures": ["Qwen2VLForConditionalGeneration"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
    "vision_token_id": 151654, "image_token_id": 151655, "video_token_id": 151656, "hidden_act": "silu",
    "hidden_size": 1536, "initializer_range": 0.02, "intermediate_size": 8960, "max_position_embeddings": 32768,
    "max_window_layers": 28, "model_type": "qwen2_vl", "num_attention_heads": 12, "num_hidden_layers": 28,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
    "tie_word_embeddings": True, "torch_dtype": "bfloat16", "transformers_version": "4.41.2", "use_cache": True,
    "use_sliding_window": False,
    "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3,
                      "hidden_size": 1536, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "vocab_size": 151936,
}


def _same_arch(a: Qwen2VLConfig, b: Qwen2VLConfig) -> bool:
    return dataclasses.replace(a, name="x") == dataclasses.replace(b, name="x")


def test_published_2b_counts_are_the_papers():
    counts = count_parameters(QWEN2_VL_2B)
    assert counts.total == 2_208_985_600
    assert (counts.vision, counts.language) == (665_271_296, 1_543_714_304)
    assert 2 * counts.total == 4_417_971_200  # bytes of the bf16 checkpoint (published index total_size)


@pytest.mark.parametrize("name", ["2B", "7B", "72B", "tiny"])
def test_count_parameters_matches_transformers_meta_model(name):
    cfg = PRESETS.get(name) or tiny_config()
    assert checks.parameter_count(cfg).ok


def test_untied_tiny_counts_the_lm_head():
    tied = tiny_config()
    untied = dataclasses.replace(tied, tie_word_embeddings=False)
    assert count_parameters(untied).language - count_parameters(tied).language == 151936 * 64
    assert checks.parameter_count(untied).ok


def test_load_config_reads_the_published_flat_layout(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(PUBLISHED_2B_CONFIG))
    assert _same_arch(load_config(tmp_path), QWEN2_VL_2B)
    assert _same_arch(load_config(tmp_path / "config.json"), QWEN2_VL_2B)
    assert _same_arch(load_config(PUBLISHED_2B_CONFIG), QWEN2_VL_2B)


@pytest.mark.parametrize("name", ["2B", "7B", "72B", "tiny"])
def test_load_config_reads_what_transformers_5_saves(tmp_path, name):
    cfg = PRESETS.get(name) or tiny_config()
    ref.hf_config(cfg).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "text_config" in saved  # really the nested 5.x layout
    assert _same_arch(load_config(tmp_path), cfg)


@pytest.mark.parametrize("cfg", [QWEN2_VL_2B, QWEN2_VL_7B, QWEN2_VL_72B, tiny_config()], ids=lambda c: c.name)
def test_to_hf_dict_round_trips(cfg):
    assert _same_arch(load_config(cfg.to_hf_dict()), cfg)


def test_load_config_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(tmp_path)
    with pytest.raises(ValueError, match="model_type is 'llava'"):
        load_config({"model_type": "llava"})
    with pytest.raises(ValueError, match="needs a checkpoint directory, a config.json path or a dict, got list"):
        load_config([1, 2])
    with pytest.raises(ValueError, match="mrope_section must be 3 integers"):
        load_config({"rope_scaling": {"mrope_section": 5}})


@pytest.mark.parametrize("build, match", [
    (lambda: TextConfig(hidden_size=100), "hidden_size=100 is not divisible by num_attention_heads=12"),
    (lambda: Qwen2VLConfig(vision=VisionConfig(hidden_size=64), text=TextConfig()), "vision.hidden_size=64"),
])
def test_inconsistent_configs_are_rejected(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_config_field_checks():
    with pytest.raises(ValueError, match="num_key_value_heads=5"):
        TextConfig(num_key_value_heads=5)
    with pytest.raises(ValueError, match="mrope_section"):
        TextConfig(mrope_section=(16, 24, 20))
    with pytest.raises(ValueError, match="depth"):
        VisionConfig(depth=0)
    with pytest.raises(ValueError, match="VisionConfig.mlp_ratio must be a positive finite number, got -1"):
        VisionConfig(mlp_ratio=-1)
    with pytest.raises(ValueError, match="VisionConfig.rope_theta must be a positive finite number, got 0"):
        VisionConfig(rope_theta=0)
    with pytest.raises(ValueError, match="TextConfig.rms_norm_eps must be a positive finite number, got nan"):
        TextConfig(rms_norm_eps=float("nan"))
    with pytest.raises(ValueError, match="mrope_section must be 3 integers"):
        TextConfig(mrope_section=5)


_LAYER = re.compile(r"(?<![A-Za-z])(?:Linear|Conv3d|Embedding|LayerNorm)\([^)]*\)+")
_REPEAT = re.compile(r"\((\d+)-(\d+)\): (\d+) x (\w+)")


@pytest.mark.parametrize("cfg", [QWEN2_VL_2B, QWEN2_VL_7B], ids=lambda c: c.name)
def test_model_structure_has_the_layers_transformers_prints(cfg):
    ours = model_structure(cfg)
    theirs = repr(ref.hf_meta_model(cfg))
    assert collections.Counter(_LAYER.findall(ours)) == collections.Counter(_LAYER.findall(theirs))
    assert sorted(_REPEAT.findall(ours)) == sorted(_REPEAT.findall(theirs))


def test_model_structure_2b_headline_lines():
    text = model_structure(QWEN2_VL_2B)
    assert "Conv3d(3, 1280, kernel_size=(2, 14, 14), stride=(2, 14, 14), bias=False)" in text
    assert "(0-31): 32 x Qwen2VLVisionBlock(" in text and "(0-27): 28 x Qwen2VLDecoderLayer(" in text
    assert "(0): Linear(in_features=5120, out_features=5120, bias=True)" in text
    assert "(2): Linear(in_features=5120, out_features=1536, bias=True)" in text
    assert "(k_proj): Linear(in_features=1536, out_features=256, bias=True)" in text


def test_comparison_table_formats():
    table = format_table(QWEN_VL_VS_QWEN2_VL)
    assert table.splitlines()[0].startswith("aspect") and "M-RoPE" in table
    assert len(table.splitlines()) == len(QWEN_VL_VS_QWEN2_VL) + 1
