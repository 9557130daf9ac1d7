"""Beyond one device: load_pretrained(device_map=...) with CPU / disk offload through accelerate, and the
plan for a GPU set computed on the meta device (placement.py)."""

import dataclasses

import pytest
import torch

from qwenvl_study import QWEN2_VL_2B, QWEN2_VL_72B, Qwen2VL, count_parameters, load_pretrained
from qwenvl_study.checkpoint import save_pretrained
from qwenvl_study.config import tiny_config
from qwenvl_study.placement import infer_device_map, parse_gpus, plan_device_map


def _inputs(config):
    """A prompt with one 4x4-patch image (4 merged tokens) between text tokens."""
    g = torch.Generator().manual_seed(0)
    ids = ([151644] + torch.randint(0, 150_000, (5,), generator=g).tolist() + [config.vision_start_token_id]
           + [config.image_token_id] * 4 + [config.vision_end_token_id] + torch.randint(0, 150_000, (3,), generator=g).tolist())
    patch = 3 * config.vision.temporal_patch_size * config.vision.patch_size ** 2
    return dict(input_ids=torch.tensor([ids]), pixel_values=torch.randn(16, patch, generator=g),
                image_grid_thw=torch.tensor([[1, 4, 4]]))


@pytest.mark.parametrize("tied", [True, False])
def test_disk_offload_gives_the_in_memory_logits_and_tokens(tmp_path, tied):
    from accelerate.utils import compute_module_sizes

    config = dataclasses.replace(tiny_config(), tie_word_embeddings=tied)
    torch.manual_seed(0)
    save_pretrained(Qwen2VL(config).eval(), tmp_path / "ckpt", max_shard_bytes=20_000_000)
    plain = load_pretrained(tmp_path / "ckpt")
    with torch.device("meta"):
        total = compute_module_sizes(Qwen2VL(config), dtype=torch.float32)[""]
    offloaded = load_pretrained(tmp_path / "ckpt", device_map="auto", max_memory={"cpu": int(0.6 * total)},
                                offload_folder=tmp_path / "offload")
    placed = set(offloaded.hf_device_map.values())
    assert placed == {"cpu", "disk"}, offloaded.hf_device_map  # part in memory, part on disk
    assert (tmp_path / "offload" / "index.json").is_file()
    assert sum(p.device.type == "meta" for p in offloaded.parameters()) > 0  # really not in memory
    if tied:  # the embedding is also the head: never offloaded
        assert offloaded.hf_device_map["model.embed_tokens"] == "cpu"
    kw = _inputs(config)
    with torch.no_grad():
        err = (offloaded(**kw) - plain(**kw)).abs().max().item()
    assert err <= 1e-5, err
    assert torch.equal(offloaded.generate(**kw, max_new_tokens=6, eos_token_id=[]),
                       plain.generate(**kw, max_new_tokens=6, eos_token_id=[]))


def test_a_given_device_map_and_clear_errors(tmp_path):
    config = dataclasses.replace(tiny_config(), tie_word_embeddings=False)
    torch.manual_seed(0)
    save_pretrained(Qwen2VL(config).eval(), tmp_path / "ckpt")
    plain = load_pretrained(tmp_path / "ckpt")
    device_map = {"visual": "disk", "model": "cpu", "lm_head": "disk"}
    model = load_pretrained(tmp_path / "ckpt", device_map=device_map, offload_folder=tmp_path / "off")
    assert model.hf_device_map == device_map and model.lm_head.weight.device.type == "meta"
    kw = _inputs(config)
    with torch.no_grad():
        assert (model(**kw) - plain(**kw)).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="pass offload_folder="):
        load_pretrained(tmp_path / "ckpt", device_map=device_map)
    with pytest.raises(ValueError, match="either device or device_map"):
        load_pretrained(tmp_path / "ckpt", device_map="auto", device="cpu")
    with pytest.raises(ValueError, match="device_map must be"):
        load_pretrained(tmp_path / "ckpt", device_map="balanced_low_0")
    with pytest.raises(ValueError, match="does not place model.norm.weight"):
        load_pretrained(tmp_path / "ckpt", device_map={"visual": "cpu", "model.layers": "cpu",
                                                        "model.embed_tokens": "cpu", "lm_head": "cpu"})


def test_plan_72b_on_4x80gb_balances_whole_layers_on_the_meta_device():
    plan = plan_device_map(QWEN2_VL_72B, parse_gpus("4x80GB"))
    assert plan.total_bytes == 2 * count_parameters(QWEN2_VL_72B).total  # bf16
    assert sum(plan.bytes_per_device.values()) == plan.total_bytes
    assert set(plan.bytes_per_device) == {0, 1, 2, 3}  # fits, every GPU used (balanced)
    assert all(plan.bytes_per_device[d] <= plan.capacity[d] for d in range(4))
    layers = sorted(int(k.split(".")[2]) for k in plan.device_map if k.startswith("model.layers."))
    assert layers == list(range(80))  # every decoder layer whole, on one device
    assert "model.layers.0-" in plan.modules_per_device[0] and "lm_head" in plan.modules_per_device[3]
    assert "GPU 3" in plan.format()


def test_plan_offloads_what_does_not_fit_and_pins_the_tied_head():
    plan = plan_device_map(QWEN2_VL_72B, parse_gpus("1x24GB"), cpu_bytes=40 * 2**30)
    assert plan.bytes_per_device["cpu"] <= plan.capacity["cpu"] and plan.bytes_per_device["disk"] > 0
    with torch.device("meta"):
        model = Qwen2VL(QWEN2_VL_2B)
    device_map = infer_device_map(model, max_memory={"cpu": 2**30})  # 1 GiB: most of the 2B goes to disk
    assert device_map["model.embed_tokens"] == "cpu" and "disk" in device_map.values()
    assert parse_gpus("2x24GB,80GB") == [24 * 2**30] * 2 + [80 * 2**30]
    for bad in ("4x", "x80GB", "0x80GB", "four"):
        with pytest.raises(ValueError, match="--gpus"):
            parse_gpus(bad)
