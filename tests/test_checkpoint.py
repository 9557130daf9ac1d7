"""load_pretrained / save_pretrained: published and transformers-5 layouts, sharding, strictness."""

import json

import pytest
import torch
from safetensors.torch import save_file

from qwenvl_study import QWEN2_VL_2B, QWEN2_VL_7B, Qwen2VL, count_parameters, load_pretrained
from qwenvl_study.course import reference as ref
from qwenvl_study.checkpoint import published_key, save_pretrained
from qwenvl_study.config import tiny_config

CFG = tiny_config()


def _meta_state(cfg):
    with torch.device("meta"):
        return Qwen2VL(cfg).state_dict()


def test_2b_key_set_is_the_published_checkpoint():
    ours = _meta_state(QWEN2_VL_2B)
    theirs = ref.published_state_dict(ref.hf_meta_model(QWEN2_VL_2B))
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    assert len(ours) == 729  # the published index's weight_map (tied lm_head not stored)
    assert sum(v.numel() for v in ours.values()) == count_parameters(QWEN2_VL_2B).total == 2_208_985_600
    assert "lm_head.weight" not in ours and sum(k.startswith("visual.") for k in ours) == 391


def test_untied_7b_has_an_lm_head():
    ours = _meta_state(QWEN2_VL_7B)
    assert ours["lm_head.weight"].shape == (152064, 3584) and len(ours) == 730
    assert sum(v.numel() for v in ours.values()) == count_parameters(QWEN2_VL_7B).total


@pytest.fixture(scope="module")
def hf_tiny():
    return ref.hf_model(CFG, seed=1)


def _assert_same_weights(model, hf):
    theirs = ref.published_state_dict(hf)
    ours = model.state_dict()
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k


def test_loads_what_transformers_saves(tmp_path, hf_tiny):
    with ref.quiet():
        hf_tiny.save_pretrained(tmp_path)
    assert "text_config" in json.loads((tmp_path / "config.json").read_text())  # 5.x nested config
    _assert_same_weights(load_pretrained(tmp_path), hf_tiny)


def test_loads_the_published_layout_sharded(tmp_path, hf_tiny):
    model = Qwen2VL(CFG)
    model.load_state_dict(ref.published_state_dict(hf_tiny))
    files = save_pretrained(model, tmp_path, layout="published", max_shard_bytes=8_000_000)
    assert len(files) >= 3 and (tmp_path / "model.safetensors.index.json").is_file()
    assert "text_config" not in json.loads((tmp_path / "config.json").read_text())  # 4.x flat config
    _assert_same_weights(load_pretrained(tmp_path), hf_tiny)
    from transformers import Qwen2VLForConditionalGeneration  # transformers reads our copy too

    with ref.quiet():
        back = Qwen2VLForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.float32)
    _assert_same_weights(load_pretrained(tmp_path), back)


def test_loads_transformers5_in_memory_names(tmp_path, hf_tiny):
    model = Qwen2VL(CFG)
    model.load_state_dict(ref.published_state_dict(hf_tiny))
    save_pretrained(model, tmp_path, layout="transformers5")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert any(k.startswith("model.language_model.layers.") for k in f.keys())
    _assert_same_weights(load_pretrained(tmp_path), hf_tiny)


def test_dtype_follows_the_checkpoint_unless_asked(tmp_path, hf_tiny):
    model = Qwen2VL(CFG)
    model.load_state_dict(ref.published_state_dict(hf_tiny))
    save_pretrained(model.to(torch.bfloat16), tmp_path)
    assert load_pretrained(tmp_path).model.embed_tokens.weight.dtype == torch.bfloat16
    assert load_pretrained(tmp_path, dtype=torch.float32).visual.patch_embed.proj.weight.dtype == torch.float32


def test_strict_loading_lists_every_problem(tmp_path, hf_tiny):
    state = ref.published_state_dict(hf_tiny)
    state.pop("model.layers.1.mlp.up_proj.weight")  # missing
    state["visual.blocks.9.attn.qkv.weight"] = torch.zeros(3, 3)  # unexpected
    state["model.norm.weight"] = torch.ones(65)  # mis-shaped
    (tmp_path / "config.json").write_text(json.dumps(CFG.to_hf_dict()))
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError) as err:
        load_pretrained(tmp_path)
    msg = str(err.value)
    assert "1 missing tensors:\n    model.layers.1.mlp.up_proj.weight" in msg
    assert "1 unexpected tensors:\n    visual.blocks.9.attn.qkv.weight" in msg
    assert "model.norm.weight: checkpoint [65], model [64]" in msg


def test_tied_lm_head_must_equal_the_embedding(tmp_path, hf_tiny):
    state = ref.published_state_dict(hf_tiny)
    state["lm_head.weight"] = state["model.embed_tokens.weight"] + 1
    (tmp_path / "config.json").write_text(json.dumps(CFG.to_hf_dict()))
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="lm_head.weight differs"):
        load_pretrained(tmp_path)


def test_missing_files_are_named(tmp_path, hf_tiny):
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found"):
        load_pretrained(tmp_path / "nope")
    (tmp_path / "config.json").write_text(json.dumps(CFG.to_hf_dict()))
    with pytest.raises(FileNotFoundError, match="expected model.safetensors or model.safetensors.index.json"):
        load_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match=r"only pickle weights found \(pytorch_model.bin\); they are never loaded"):
        load_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").unlink()
    model = Qwen2VL(CFG)
    save_pretrained(model, tmp_path, max_shard_bytes=8_000_000)
    (tmp_path / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00003.safetensors"):
        load_pretrained(tmp_path)
    (tmp_path / "model.safetensors.index.json").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors.index.json is missing"):
        load_pretrained(tmp_path)


def test_published_key_renames_only_transformers5_names():
    assert published_key("model.language_model.layers.0.mlp.up_proj.weight") == "model.layers.0.mlp.up_proj.weight"
    assert published_key("model.visual.merger.mlp.0.bias") == "visual.merger.mlp.0.bias"
    assert published_key("model.layers.3.self_attn.q_proj.bias") == "model.layers.3.self_attn.q_proj.bias"
    assert published_key("lm_head.weight") == "lm_head.weight"
