"""The vision tower vs transformers' Qwen2VisionTransformerPretrainedModel holding the same weights."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import qwenvl_study
from qwenvl_study import QWEN2_VL_2B, VisionConfig, count_parameters, model_structure, preprocess_image, tiny_config
from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.config import vision_config_from_hf
from qwenvl_study.course.samples import sample_path
from qwenvl_study.vision import VisionOutput, VisionTransformer

TOL = 1e-5  # fp32, max abs

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest
TINY = tiny_config().vision  # 2 blocks, width 64, 4 heads (head_dim 16)
grid_lists = st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3).map(lambda x: 2 * x),
                                st.integers(1, 3).map(lambda x: 2 * x)), min_size=1, max_size=3)


def _pair(vision: VisionConfig, backend: str, seed: int = 0):
    """Ours (random weights, every tensor random) and the reference holding the same tensors."""
    return checks.vision_pair(vision, backend, seed=seed, std=0.1)


def _inputs(vision: VisionConfig, grid, seed: int = 0):
    grid = torch.tensor(grid).reshape(-1, 3)
    n = int(grid.prod(-1).sum())
    return torch.randn(n, vision.patch_dim, generator=torch.Generator().manual_seed(seed)), grid


def _max_err(a, b) -> float:
    return (a - b).abs().max().item()


def _check_parity(ours, theirs, pv, grid):
    check = checks.vision_tower(pv, grid, pair=(ours, theirs), tolerance=TOL)
    out, errors = check.details["output"], check.details
    assert isinstance(out, VisionOutput)
    assert out.merged.shape == check.reference.shape == (pv.shape[0] // 4, ours.config.hidden_size)
    assert check.max_abs_error <= TOL  # the merged output
    assert errors["last_hidden_state"] <= TOL
    assert errors["same_depth"] and len(out.hidden_states) == ours.config.depth + 1
    for err in errors["layer_errors"]:  # the embeddings, then every block
        assert err <= TOL
    return out


# ---------------------------------------------------------------------------------------------
# Parity on small configs: one image, packed images, a video, random configs and grids
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["eager", "sdpa"])
@pytest.mark.parametrize("case,grid", [
    ("one image", [[1, 6, 8]]),
    ("three images of different sizes, packed", [[1, 4, 6], [1, 2, 2], [1, 8, 4]]),
    ("a video of 3 temporal slices (6 frames)", [[3, 4, 4]]),
    ("a video packed between two images", [[1, 2, 4], [2, 4, 2], [1, 6, 6]]),
])
def test_tiny_tower_equals_transformers(backend, case, grid):
    ours, theirs = _pair(TINY, backend)
    pv, g = _inputs(TINY, grid)
    _check_parity(ours, theirs, pv, g)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_gradients_equal_transformers(backend):
    """Training works through the in-place residual / GELU paths: same gradients as the reference."""
    ours = VisionTransformer.random(TINY, std=0.1, attn_backend=backend).train()
    theirs = ref.hf_vision_model(TINY, {k: v.clone() for k, v in ours.state_dict().items()}, backend).train()
    pv, g = _inputs(TINY, [[1, 4, 6], [2, 2, 2]])
    weight = torch.randn(pv.shape[0] // 4, TINY.hidden_size)
    (ours(pv, g) * weight).sum().backward()
    (ref.hf_vision_forward(theirs, pv, g).pooler_output * weight).sum().backward()
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert _max_err(p.grad, grads[name].grad) <= TOL, name


@given(depth=st.integers(1, 2), heads=st.integers(1, 3), head_dim=st.sampled_from([8, 16]),
       mlp_ratio=st.sampled_from([2, 4]), hidden=st.sampled_from([16, 48]), grid=grid_lists,
       backend=st.sampled_from(["eager", "sdpa"]), seed=st.integers(0, 1000))
@settings(max_examples=12)
def test_random_configs_and_grids_equal_transformers(depth, heads, head_dim, mlp_ratio, hidden, grid, backend, seed):
    vision = VisionConfig(depth=depth, embed_dim=heads * head_dim, num_heads=heads, mlp_ratio=mlp_ratio,
                          hidden_size=hidden)
    ours, theirs = _pair(vision, backend, seed)
    _check_parity(ours, theirs, *_inputs(vision, grid, seed))


@pytest.fixture(scope="module")
def tiny_model():
    return VisionTransformer.random(TINY, std=0.1, attn_backend="eager")


@given(grid=grid_lists, seed=st.integers(0, 1000))
@settings(max_examples=25)
def test_backends_agree(tiny_model, grid, seed):
    pv, g = _inputs(TINY, grid, seed)
    outs = {}
    with torch.no_grad():
        for backend in ("eager", "sdpa", "auto"):
            tiny_model.attn_backend = backend
            outs[backend] = tiny_model(pv, g)
    tiny_model.attn_backend = "eager"
    assert _max_err(outs["eager"], outs["sdpa"]) <= TOL and torch.equal(outs["sdpa"], outs["auto"])


@given(grid=grid_lists, seed=st.integers(0, 1000), backend=st.sampled_from(["eager", "sdpa"]))
@settings(max_examples=25)
def test_packing_gives_each_image_its_own_output(tiny_model, grid, seed, backend):
    """Property: encoding images packed == encoding each alone (attention never crosses segments)."""
    pv, g = _inputs(TINY, grid, seed)
    tiny_model.attn_backend = backend
    with torch.no_grad():
        packed = tiny_model(pv, g)
        alone = [tiny_model(rows, one[None]) for rows, one in zip(pv.split(g.prod(-1).tolist()), g)]
    tiny_model.attn_backend = "eager"
    assert _max_err(packed, torch.cat(alone)) <= TOL


def test_video_slices_do_not_attend_to_each_other(tiny_model):
    """As the reference: a video of t slices == t one-slice videos (time mixes only inside a 2-frame tube)."""
    pv, g = _inputs(TINY, [[3, 4, 2]])
    with torch.no_grad():
        video = tiny_model(pv, g)
        slices = tiny_model(pv, torch.tensor([[1, 4, 2]] * 3))
    assert _max_err(video, slices) <= TOL


@pytest.mark.parametrize("size", [(56, 56), (112, 84), (56, 168)])
def test_a_blank_canvas_gives_every_token_the_same_vector(tiny_model, size):
    """No absolute position anywhere in the tower (2D-RoPE is relative, patches do not overlap, no CLS):
    on a uniform image every patch starts equal and attention only averages equal values, so every merged
    token leaves equal. *Where* a shape lies is not in its token: the LLM must read it from M-RoPE
    (notebook 11, Going deeper: why the course model's boxes fail)."""
    w, h = size
    pv, grid = preprocess_image(Image.new("RGB", (w, h), (230, 210, 240)), min_pixels=w * h, max_pixels=w * h)
    with torch.no_grad():
        merged = tiny_model(pv, grid)  # [h*w/784, hidden]
    assert merged.shape[0] == (w // 28) * (h // 28) >= 4
    assert _max_err(merged, merged[:1].expand_as(merged)) <= TOL
    assert merged.abs().max() > 1e-3  # not trivially zero
    pv2 = pv.clone()
    pv2[0] += 1.0  # one patch differs: its neighbours' tokens now differ from the far ones
    with torch.no_grad():
        merged2 = tiny_model(pv2, grid)
    assert _max_err(merged2, merged2[:1].expand_as(merged2)) > 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="varlen attention needs a CUDA GPU (none here)")
def test_varlen_tower_equals_sdpa_on_cuda():  # pragma: no cover - runs only where CUDA is present
    ours = VisionTransformer.random(TINY, attn_backend="sdpa").cuda().to(torch.bfloat16)
    pv, g = _inputs(TINY, [[1, 4, 6], [2, 2, 2]])
    pv = pv.cuda().to(torch.bfloat16)
    with torch.no_grad():
        a = ours(pv, g)
        ours.attn_backend = "varlen"
        b = ours(pv, g)
    assert _max_err(a.float(), b.float()) <= 5e-2  # bf16


# ---------------------------------------------------------------------------------------------
# The full 2B vision config on one 224x224 image (one model, shared with the reference)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_b():
    ours = VisionTransformer.random(QWEN2_VL_2B.vision, attn_backend="eager")  # std 0.02, as transformers inits
    theirs = ref.hf_vision_model(QWEN2_VL_2B.vision, ours.state_dict(), attn_implementation="eager")
    yield ours, theirs
    del ours, theirs


def test_2b_tower_on_a_224_image_equals_transformers(two_b):
    ours, theirs = two_b
    assert theirs.blocks[0].attn.qkv.weight.data_ptr() == ours.blocks[0].attn.qkv.weight.data_ptr()  # shared
    image = Image.open(sample_path()).convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
    pv, grid = preprocess_image(image)
    assert pv.shape == (256, 1176) and grid.tolist() == [[1, 16, 16]]
    with torch.inference_mode():
        out = _check_parity(ours, theirs, pv, grid)  # every block's hidden state, merged tokens: <= 1e-5
    assert out.merged.shape == (64, 1536)


# ---------------------------------------------------------------------------------------------
# Names, counts, loading, structure
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def meta_2b():
    with torch.device("meta"):
        return VisionTransformer(QWEN2_VL_2B.vision)


def test_2b_state_dict_mirrors_the_published_visual_tensors(meta_2b):
    sd = meta_2b.state_dict()
    hf = ref.hf_meta_model(QWEN2_VL_2B).model.visual.state_dict()
    assert len(sd) == len(hf) == 391
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: tuple(v.shape) for k, v in hf.items()}
    assert sum(p.numel() for p in meta_2b.parameters()) == count_parameters(QWEN2_VL_2B).vision == 665_271_296
    assert list(meta_2b.buffers()) == []  # nothing computed is persisted (the rotary table is rebuilt per call)
    for name in ["patch_embed.proj.weight", "blocks.31.attn.qkv.bias", "blocks.0.norm2.weight",
                 "merger.ln_q.bias", "merger.mlp.0.weight", "merger.mlp.2.bias"]:
        assert name in sd


def test_loads_the_reference_weights_by_their_names():
    theirs = ref.hf_vision_model(TINY, attn_implementation="sdpa")  # transformers' own init
    ours = VisionTransformer(TINY, attn_backend="sdpa")
    ours.load_state_dict(theirs.state_dict())
    pv, g = _inputs(TINY, [[1, 4, 4], [2, 2, 6]])
    _check_parity(ours, theirs, pv, g)


def test_strict_loading_lists_missing_unexpected_and_misshaped_in_one_error():
    model = VisionTransformer(TINY)
    sd = model.state_dict()
    del sd["blocks.1.mlp.fc2.bias"]
    sd["blocks.0.attn.rotary.inv_freq"] = torch.zeros(4)
    sd["merger.mlp.0.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError) as err:
        model.load_state_dict(sd)
    msg = str(err.value)
    assert "1 missing tensors:\n    blocks.1.mlp.fc2.bias" in msg  # checkpoint.check_state_dict's listing
    assert "1 unexpected tensors:\n    blocks.0.attn.rotary.inv_freq" in msg
    assert "1 mis-shaped tensors:\n    merger.mlp.0.weight: checkpoint [3, 3], model [256, 256]" in msg
    sd2 = {f"visual.{k}": v for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"strip the 'visual\.' prefix"):
        model.load_state_dict(sd2)
    del sd["blocks.0.attn.rotary.inv_freq"]
    with pytest.raises(ValueError, match="mis-shaped"):  # not strict: names may differ, shapes may not
        model.load_state_dict(sd, strict=False)


def _visual_part(structure: str) -> list[str]:
    lines = structure.splitlines()
    start = lines.index("  (visual): Qwen2VisionTransformerPretrainedModel(")
    end = lines.index("  (model): Qwen2VLModel(")
    return [line[2:] for line in lines[start:end]]


def test_repr_reads_like_the_seed_printout(meta_2b):
    """print(VisionTransformer(2B)) == the (visual) part of the seed's print(model), up to our class names
    (VisionTransformer, VisionBlock) and torch's newer LayerNorm repr (it now adds ', bias=True')."""
    ours = (repr(meta_2b).replace("elementwise_affine=True, bias=True)", "elementwise_affine=True)")
            .replace("VisionTransformer(", "Qwen2VisionTransformerPretrainedModel(")
            .replace(" x VisionBlock(", " x Qwen2VLVisionBlock("))
    seed = _visual_part(model_structure(QWEN2_VL_2B))
    assert ours.splitlines() == [seed[0].replace("(visual): ", "")] + seed[1:]


def test_from_hf_config_reads_4x_and_5x_keys():
    published = QWEN2_VL_2B.to_hf_dict()["vision_config"]  # 4.x keys: in_chans, num_heads, depth
    saved_5x = ref.hf_vision_config(QWEN2_VL_2B.vision).to_dict()  # 5.x: in_channels, rope_parameters
    assert vision_config_from_hf(published) == vision_config_from_hf(saved_5x) == QWEN2_VL_2B.vision
    renamed = {"in_channels": 3, "num_attention_heads": 4, "num_hidden_layers": 2, "embed_dim": 64, "hidden_size": 64}
    assert vision_config_from_hf(renamed) == TINY
    model = VisionTransformer.from_hf_config(renamed, attn_backend="eager")
    assert model.config == TINY and model.attn_backend == "eager" and len(model.blocks) == 2
    with pytest.raises(ValueError, match="vision_config must be a dict"):
        VisionTransformer.from_hf_config([1, 2])


def test_bad_inputs_raise_clear_errors(tiny_model):
    pv, g = _inputs(TINY, [[1, 4, 4]])
    with pytest.raises(ValueError, match=r"pixel_values has shape \(16, 1176\); grid_thw \[\[1, 4, 6\]\] needs \[24, 1176\]"):
        tiny_model(pv, torch.tensor([[1, 4, 6]]))
    with pytest.raises(ValueError, match="multiples of spatial_merge_size=2"):
        tiny_model(pv, torch.tensor([[1, 2, 8], [1, 3, 2]]))
    with pytest.raises(ValueError, match=r"grid_thw must have shape \[num_items, 3\]"):
        tiny_model(pv, torch.tensor([1, 4, 4]))
    with pytest.raises(ValueError, match="unknown attention backend 'fast'"):
        tiny_model.attn_backend = "fast"
    with pytest.raises(ValueError, match="'varlen' is not available"):
        VisionTransformer(TINY, attn_backend="varlen")(pv, g)
    with pytest.raises(ValueError, match="needs a VisionConfig"):
        VisionTransformer(QWEN2_VL_2B)
    with pytest.raises(ValueError, match="grid_thw must hold integers"):
        tiny_model(pv, torch.tensor([[1.0, 4.0, 4.0]]))
    with pytest.raises(ValueError, match="pixel_values must be a floating-point tensor"):
        tiny_model(pv.long(), g)
    with pytest.raises(ValueError, match="expected a mapping of tensor names to tensors, got list"):
        tiny_model.load_state_dict([1, 2])


def test_exported_at_top_level():
    assert qwenvl_study.VisionTransformer is VisionTransformer
