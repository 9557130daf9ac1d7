"""The tour: the course's key facts computed live and checked against the reference (``make demo``).

Each fact is a claim, our value, the reference's value and ✔/✘. Sections register themselves
with ``@section``; figures with ``@figure``. Nothing here restates a number by hand: the "ours"
column comes from the package, the "reference" column from transformers (``reference.py``) or,
for the published checkpoint's size, from its ``model.safetensors.index.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["Fact", "section", "figure", "run_tour", "format_facts"]


@dataclass
class Fact:
    claim: str
    ours: Any
    reference: Any
    ok: bool


SECTIONS: list[tuple[str, Callable[[], list[Fact]]]] = []
FIGURES: list[Callable[[Path], list[Path]]] = []


def section(title: str):
    def register(fn: Callable[[], list[Fact]]):
        SECTIONS.append((title, fn))
        return fn

    return register


def figure(fn: Callable[[Path], list[Path]]):
    FIGURES.append(fn)
    return fn


# ---------------------------------------------------------------------------------------------
# Lesson 01 — from pixels to 66 tokens
# ---------------------------------------------------------------------------------------------
# The published checkpoint's bf16 size: metadata.total_size of Qwen2-VL-2B(-Instruct)'s
# model.safetensors.index.json (two bytes per parameter, tied embeddings stored once).
PUBLISHED_2B_TOTAL_SIZE = 4_417_971_200


@section("Dynamic resolution and patching (lesson 01)")
def _lesson01() -> list[Fact]:
    import numpy as np
    import torch
    from PIL import Image

    from . import reference as ref
    from ..patching import PatchEmbed, preprocess_image
    from ..resolution import count_image_tokens, smart_resize
    from .samples import sample_path

    facts = []
    facts.append(Fact("224x224 is resized to", smart_resize(224, 224), ref.hf_smart_resize(224, 224),
                      smart_resize(224, 224) == ref.hf_smart_resize(224, 224)))
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8))
    pv, grid = preprocess_image(img)
    hpv, hgrid = ref.hf_preprocess(img)
    facts.append(Fact("224x224 patch grid (t, h, w)", tuple(grid[0].tolist()), tuple(hgrid[0].tolist()),
                      torch.equal(grid, hgrid)))
    facts.append(Fact("224x224 patches (rows of 1176)", pv.shape[0], hpv.shape[0], pv.shape == hpv.shape))
    n_tok = count_image_tokens(224, 224)
    ref_tok = int(hgrid.prod()) // 4 + 2
    facts.append(Fact("224x224 → LLM tokens (64 merged + 2)", n_tok, ref_tok, n_tok == ref_tok == 66))
    sample = sample_path()
    spv, sgrid = preprocess_image(sample)
    shpv, shgrid = ref.hf_preprocess(Image.open(sample))
    err = (spv - shpv).abs().max().item()
    facts.append(Fact("sample.png pixel_values max |ours - ref|", f"{err:.1e}", "≤ 1e-6", err <= 1e-6))
    thin_t = smart_resize(13, 2000)
    thin_q = smart_resize(13, 2000, rule="qwen-vl-utils")
    facts.append(Fact("13x2000, transformers rule", thin_t, ref.hf_smart_resize(13, 2000),
                      thin_t == ref.hf_smart_resize(13, 2000)))
    qvu = ref.qwen_vl_utils().smart_resize(13, 2000)
    facts.append(Fact("13x2000, qwen-vl-utils rule (clamps sides ≥ 28 first)", thin_q, f"{qvu} (qwen-vl-utils)",
                      thin_q == qvu and thin_q != thin_t))
    torch.manual_seed(0)
    embed = PatchEmbed(embed_dim=1280)
    x = torch.randn(256, 1176)
    err = (embed(x) - embed.as_linear()(x)).abs().max().item()
    facts.append(Fact("Conv3d(k=stride=(2,14,14)) == Linear(1176, 1280)", f"{err:.1e}", "≤ 1e-5", err <= 1e-5))
    return facts


@section("Model size (config → parameters)")
def _sizes() -> list[Fact]:
    from . import reference as ref
    from ..config import PRESETS, count_parameters

    facts = []
    for name, cfg in PRESETS.items():
        ours, hf = count_parameters(cfg), ref.hf_parameter_count(cfg)
        facts.append(Fact(f"Qwen2-VL-{name} parameters (vision + language)",
                          f"{ours.vision:,} + {ours.language:,} = {ours.total:,}", f"{hf.total:,}", ours == hf))
    two_b = count_parameters(PRESETS["2B"]).total
    facts.append(Fact("2B checkpoint bytes in bf16 (2 x params)", f"{2 * two_b:,}",
                      f"{PUBLISHED_2B_TOTAL_SIZE:,} (published index)", 2 * two_b == PUBLISHED_2B_TOTAL_SIZE))
    return facts


@figure
def _lesson01_figures(out: Path) -> list[Path]:
    from . import figures as viz
    from .samples import sample_path

    return [
        viz.savefig(viz.draw_patch_grid(sample_path()), out / "01_patch_grid.png"),
        viz.savefig(viz.draw_patch_order(4, 6), out / "01_patch_order.png"),
        viz.savefig(viz.plot_tokens_vs_resolution(), out / "01_tokens_vs_resolution.png"),
        viz.savefig(viz.draw_two_frames(sample_path()), out / "01_two_frames.png"),
    ]


# ---------------------------------------------------------------------------------------------
# Lessons 02–03 — positions: vision 2D-RoPE and M-RoPE
# ---------------------------------------------------------------------------------------------
# A 2-minute 1080p video at 2 fps under the paper's 16384-token cap (notebook 03 derives it with
# qwen-vl-utils' per-frame budget): 120 temporal patches of 16 x 30 patches (8 x 15 merged).
LONG_VIDEO_GRID = (120, 16, 30)


@section("Positions: vision 2D-RoPE and M-RoPE (lessons 02–03)")
def _lessons02_03() -> list[Fact]:
    import torch

    from . import reference as ref
    from ..config import QWEN2_VL_2B
    from ..rope import (VIDEO_TOKEN_ID, apply_rotary_vision, mrope_cos_sin, mrope_position_ids, rope_cos_sin,
                       segments_to_batch, vision_cos_sin, vision_position_ids)

    facts = []
    grids = torch.tensor([[1, 4, 6], [2, 6, 4], [3, 8, 10]])
    ids = vision_position_ids(grids)
    facts.append(Fact("vision (row, col) ids of 3 grids (merge groups adjacent)", tuple(ids.shape),
                      "equal" if torch.equal(ids, ref.hf_vision_position_ids(grids)) else "differ",
                      torch.equal(ids, ref.hf_vision_position_ids(grids))))
    head_dim, heads = QWEN2_VL_2B.vision.head_dim, QWEN2_VL_2B.vision.num_heads
    cos, sin = vision_cos_sin(ids, head_dim)
    hcos, hsin = ref.hf_vision_cos_sin(ids, head_dim)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, len(ids), heads, head_dim, generator=g)
    err = max((a - b).abs().max().item() for a, b in zip(apply_rotary_vision(q, k, cos, sin),
                                                          ref.hf_apply_rotary_vision(q, k, hcos, hsin)))
    facts.append(Fact(f"2D-RoPE on q/k (head_dim {head_dim}: 20 row + 20 column pairs), max |ours - ref|",
                      f"{err:.1e}", "≤ 1e-6", err <= 1e-6))
    batch = segments_to_batch([[("text", 5), ("image", (1, 8, 12)), ("text", 3), ("video", (4, 8, 8)), ("text", 2)],
                               [("text", 2), ("image", (1, 4, 4)), ("text", 6)],
                               [("video", (2, 6, 10)), ("text", 1)]], pad_side="left")
    ours, deltas = mrope_position_ids(**batch)
    theirs, hf_deltas = ref.hf_rope_index(**batch)
    real = batch["attention_mask"].bool()
    same = torch.equal(ours[:, real], theirs[:, real])
    facts.append(Fact("M-RoPE ids, left-padded mixed batch (videos with t ≤ max(h', w')), real tokens",
                      f"{int(real.sum())} tokens", "equal" if same else "differ", same))
    relation = torch.equal(hf_deltas, deltas + (real.shape[1] - real.sum(-1, keepdim=True)))
    facts.append(Fact("deltas (padded length) vs 5.x (unpadded): delta_5x = ours + L - n_real",
                      deltas.flatten().tolist(), hf_deltas.flatten().tolist(), relation))
    long = segments_to_batch([[("text", 4), ("video", LONG_VIDEO_GRID), ("text", 4)]])
    ours, _ = mrope_position_ids(**long)
    theirs, _ = ref.hf_rope_index(**long)
    pads = long["input_ids"][0] == VIDEO_TOKEN_ID
    after = int(pads.nonzero().max()) + 1
    video_max = int(ours[:, 0, pads].max())
    ok = int(ours[0, 0, after]) == video_max + 1 and int(theirs[0, 0, after]) <= video_max
    t, h, w = LONG_VIDEO_GRID
    facts.append(Fact(f"id after a {t}x{h}x{w} video (t={t} > max(h', w')={max(h, w) // 2}; video max {video_max})",
                      f"{int(ours[0, 0, after])} (paper: max + 1)",
                      f"{int(theirs[0, 0, after])} (5.x: inside the video's range)", ok))
    image = segments_to_batch([[("image", (1, 78, 138))]])  # 1920x1080 → 78x138 patches
    _, d = mrope_position_ids(**image)
    _, hd = ref.hf_rope_index(**image)
    L = image["input_ids"].shape[1]
    facts.append(Fact("1080p image: next id (M-RoPE vs 1D = one per token)", f"{int(d) + L} (1D: {L:,})",
                      int(hd) + L, int(d) + L == int(hd) + L))
    text = segments_to_batch([[("text", 9)], [("text", 4)]], pad_side="left")
    tids, _ = mrope_position_ids(**text)
    tcfg = QWEN2_VL_2B.text
    mc, ms = mrope_cos_sin(tids, tcfg.head_dim, tcfg.rope_theta, tcfg.mrope_section)
    rc, rs = rope_cos_sin(tids[0], tcfg.head_dim, tcfg.rope_theta)
    one_d = torch.equal(mc, rc) and torch.equal(ms, rs)
    facts.append(Fact("text only: M-RoPE cos/sin == 1D RoPE cos/sin", one_d, "bit-equal", one_d))
    return facts


@figure
def _lessons02_03_figures(out: Path) -> list[Path]:
    from . import reference as ref
    from . import figures as viz
    from ..config import QWEN2_VL_2B
    from ..rope import mrope_position_ids, segments_to_batch

    fig3 = segments_to_batch([[("text", 3), ("image", (1, 4, 6)), ("text", 2), ("video", (3, 4, 6)), ("text", 3)]])
    ids, _ = mrope_position_ids(**fig3)
    long = segments_to_batch([[("text", 10), ("video", LONG_VIDEO_GRID), ("text", 20)]])
    ours, _ = mrope_position_ids(**long)
    theirs, _ = ref.hf_rope_index(**long)
    tcfg = QWEN2_VL_2B.text
    return [
        viz.savefig(viz.draw_vision_position_ids(6, 8), out / "02_vision_position_ids.png"),
        viz.savefig(viz.plot_vision_rotary_angles(8, 8, QWEN2_VL_2B.vision.head_dim), out / "02_rotary_angles.png"),
        viz.savefig(viz.plot_mrope_ids(ids[:, 0], fig3["input_ids"][0]), out / "03_mrope_figure3.png"),
        viz.savefig(viz.plot_rope_drift(ours[:, 0], theirs[:, 0], long["input_ids"][0]), out / "03_drift.png"),
        viz.savefig(viz.plot_mrope_sections(tcfg.mrope_section, tcfg.head_dim, tcfg.rope_theta),
                    out / "03_mrope_sections.png"),
    ]


# ---------------------------------------------------------------------------------------------
# Lesson 04 — the vision encoder
# ---------------------------------------------------------------------------------------------
PACKED_EXAMPLE = [[1, 4, 6], [2, 2, 4], [1, 2, 2]]  # image, 2-slice video, image: packed in one sequence


@section("Vision encoder (lesson 04)")
def _lesson04() -> list[Fact]:
    import torch

    from . import reference as ref
    from ..attention import cu_seqlens_from_grid
    from ..config import QWEN2_VL_2B, count_parameters, tiny_config
    from ..vision import VisionTransformer

    facts = []
    grid = torch.tensor(PACKED_EXAMPLE)
    cu = cu_seqlens_from_grid(grid)
    hf_cu = ref.hf_vision_cu_seqlens(grid)
    facts.append(Fact("cu_seqlens of image + 2-slice video + image", cu.tolist(), hf_cu.tolist(),
                      torch.equal(cu, hf_cu)))
    vision = tiny_config().vision
    n = int(grid.prod(-1).sum())
    pv = torch.randn(n, vision.patch_dim, generator=torch.Generator().manual_seed(0))
    outs = {}
    for backend in ("eager", "sdpa"):
        ours = VisionTransformer.random(vision, std=0.1, attn_backend=backend)
        theirs = ref.hf_vision_model(vision, ours.state_dict(), attn_implementation=backend)
        with torch.no_grad():
            outs[backend] = ours(pv, grid)
            hf = ref.hf_vision_forward(theirs, pv, grid).pooler_output
        err = (outs[backend] - hf).abs().max().item()
        facts.append(Fact(f"tiny tower, packed images + video, {backend}: max |ours - transformers|",
                          f"{err:.1e}", "≤ 1e-5", err <= 1e-5))
        if backend == "sdpa":
            with torch.no_grad():
                alone = torch.cat([ours(rows, g[None]) for rows, g in zip(pv.split(grid.prod(-1).tolist()), grid)])
            err = (alone - outs["sdpa"]).abs().max().item()
            facts.append(Fact("packed == each image / video encoded alone", f"{err:.1e}", "≤ 1e-5", err <= 1e-5))
    err = (outs["eager"] - outs["sdpa"]).abs().max().item()
    facts.append(Fact("backends agree: eager vs sdpa", f"{err:.1e}", "≤ 1e-5", err <= 1e-5))
    with torch.device("meta"):
        two_b = VisionTransformer(QWEN2_VL_2B.vision)
    ours_n = sum(p.numel() for p in two_b.parameters())
    hf_visual = ref.hf_meta_model(QWEN2_VL_2B).model.visual
    hf_n = sum(p.numel() for p in hf_visual.parameters())
    facts.append(Fact("2B ViT parameters (our module on meta)", f"{ours_n:,}",
                      f"{hf_n:,} (count_parameters {count_parameters(QWEN2_VL_2B).vision:,})",
                      ours_n == hf_n == count_parameters(QWEN2_VL_2B).vision))
    names, hf_names = set(two_b.state_dict()), set(hf_visual.state_dict())
    facts.append(Fact("2B ViT tensors, named as the checkpoint's visual.*", len(names), len(hf_names),
                      names == hf_names and len(names) == 391))
    return facts


@figure
def _lesson04_figures(out: Path) -> list[Path]:
    from . import figures as viz

    return [
        viz.savefig(viz.draw_block_mask(PACKED_EXAMPLE), out / "04_block_mask.png"),
        viz.savefig(viz.draw_temporal_slices(viz.toy_video(4)), out / "04_video_tubes.png"),
        viz.savefig(viz.plot_attention_memory([256, 320, 320, 192, 192, 400, 144, 384]),
                    out / "04_attention_memory.png"),
    ]


# ---------------------------------------------------------------------------------------------
# Lessons 05–06 — the language model, the whole model, checkpoints
# ---------------------------------------------------------------------------------------------
@section("Language model, whole model and checkpoints (lessons 05–06)")
def _lessons05_06() -> list[Fact]:
    import tempfile

    import torch

    from . import reference as ref
    from ..chat import mm_token_type_ids
    from ..checkpoint import load_pretrained, save_pretrained
    from ..config import QWEN2_VL_2B, tiny_config
    from ..model import Qwen2VL
    from ..rope import segments_to_batch

    facts = []
    with torch.device("meta"):
        ours_keys = {k: tuple(v.shape) for k, v in Qwen2VL(QWEN2_VL_2B).state_dict().items()}
    theirs_keys = {k: tuple(v.shape) for k, v in ref.published_state_dict(ref.hf_meta_model(QWEN2_VL_2B)).items()}
    facts.append(Fact("2B state dict = the published checkpoint's names and shapes", f"{len(ours_keys)} tensors",
                      f"{len(theirs_keys)} (transformers, published names)",
                      ours_keys == theirs_keys and len(ours_keys) == 729))
    cfg = tiny_config()
    ours, hf = ref.model_pair(cfg, seed=0)
    g = torch.Generator().manual_seed(0)
    batch = segments_to_batch([[("text", torch.randint(0, 150_000, (5,), generator=g).tolist()), ("image", (1, 4, 6)),
                                ("text", torch.randint(0, 150_000, (4,), generator=g).tolist())],
                               [("text", torch.randint(0, 150_000, (8,), generator=g).tolist())]])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    kw = dict(pixel_values=torch.randn(24, 1176, generator=g), image_grid_thw=batch["image_grid_thw"])
    with torch.no_grad(), ref.quiet():
        err = (ours(ids, mask, **kw) - hf(input_ids=ids, attention_mask=mask, **kw,
                                          mm_token_type_ids=mm_token_type_ids(ids)).logits)[mask.bool()].abs().max().item()
    facts.append(Fact("logits, tiny model, image + left-padded batch: max |ours - ref|", f"{err:.1e}", "≤ 1e-4",
                      err <= 1e-4))
    mine = ours.generate(ids, mask, **kw, max_new_tokens=12)
    theirs = ref.hf_generate(hf, cfg, ids, mask, **kw, max_new_tokens=12, do_sample=False)
    facts.append(Fact("greedy 12 tokens (KV cache) equal transformers' generate", "equal" if torch.equal(mine, theirs)
                      else "differ", "transformers generate", torch.equal(mine, theirs)))
    uncached = ours.generate(ids, mask, **kw, max_new_tokens=12, use_cache=False)
    facts.append(Fact("cached decoding == uncached decoding", torch.equal(mine, uncached), True,
                      torch.equal(mine, uncached)))
    with tempfile.TemporaryDirectory() as d:
        save_pretrained(ours, d, max_shard_bytes=8_000_000)
        loaded = load_pretrained(d)
        same = all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), ours.state_dict().values()))
    facts.append(Fact("save_pretrained (sharded, published layout) → load_pretrained round trip", same, True, same))
    return facts


@figure
def _lessons05_06_figures(out: Path) -> list[Path]:
    import torch

    from . import reference as ref
    from . import figures as viz
    from ..config import tiny_config

    ours, hf = ref.model_pair(tiny_config(), seed=0)
    ids = torch.randint(0, 150_000, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), ref.quiet():
        mine = ours.run(ids, output_hidden_states=True).hidden_states
        theirs = hf(input_ids=ids, output_hidden_states=True).hidden_states
    return [viz.savefig(viz.plot_layer_errors(mine, theirs), out / "05_llm_layer_errors.png")]


# ---------------------------------------------------------------------------------------------
# Lessons 07–08 — media, chat and grounding
# ---------------------------------------------------------------------------------------------
def _seed_messages() -> list[dict]:
    from .samples import SAMPLE_VIDEO, sample_path

    return [{"role": "user", "content": [{"type": "image", "image": str(sample_path())},
                                         {"type": "video", "video": str(sample_path(SAMPLE_VIDEO))},
                                         {"type": "text", "text": "Describe the image and the video."}]}]


@section("Media, chat and grounding (lessons 07–08)")
def _lessons07_08() -> list[Fact]:
    import numpy as np
    import torch

    from . import reference as ref
    from ..chat import SPECIAL_TOKENS, build_prompt, prepare_inputs
    from ..tokenizer import qwen2_tokenizer
    from ..config import Qwen2VLConfig
    from ..grounding import format_grounding, from_normalized, parse_grounding, to_normalized, GroundedBox
    from ..media import fetch_image, fetch_video, plan_video
    from .samples import SAMPLE_OBJECTS, SAMPLE_SIZE, SAMPLE_VIDEO, sample_path

    facts = []
    qvu = ref.qwen_vl_utils()
    ours = np.asarray(fetch_image({"image": str(sample_path())}))
    theirs = np.asarray(qvu.fetch_image({"image": str(sample_path())}))
    facts.append(Fact("sample.png via process_vision_info == qwen-vl-utils 0.0.8 fetch_image",
                      f"{ours.shape[1]}x{ours.shape[0]}", f"{theirs.shape[1]}x{theirs.shape[0]}",
                      np.array_equal(ours, theirs)))
    video_ele = {"video": str(sample_path(SAMPLE_VIDEO))}
    frames, plan = fetch_video(video_ele)
    ref_frames = ref.qvu_fetch_video(video_ele)
    facts.append(Fact("sample.mp4 (4 s, 25 fps) → frames sampled at 2 fps, [T, C, H, W]", tuple(frames.shape),
                      f"{tuple(ref_frames.shape)} (qwen-vl-utils' fetch_video, PyAV reader)",
                      frames.shape == ref_frames.shape and torch.equal(frames, ref_frames)))
    long_video = (30 * 600, 30.0, 1080, 1920)  # 10 min of 1080p at 30 fps
    idx, (rh, rw) = ref.qvu_plan_video(*long_video)
    # transformers' processor counts the patches of one (already sized) frame; a token is 2 frames x 2x2 patches
    qvu_tokens = len(idx) // 2 * ref.hf_image_processor().get_number_of_image_patches(rh, rw, {}) // 4
    tokens = {name: plan_video(*long_video, defaults=name).tokens for name in ("0.0.8", "0.0.10", "paper")}
    facts.append(Fact("10-min 1080p video → tokens, preset 0.0.8 (default; budget 24576, floor binds)",
                      tokens["0.0.8"], f"{qvu_tokens} (qwen-vl-utils 0.0.8)", tokens["0.0.8"] == qvu_tokens))
    facts.append(Fact("same video, preset 0.0.10 (budget 128000*0.9) / paper (cap 16384)",
                      f"{tokens['0.0.10']} / {tokens['paper']}", "≤ 115200 / ≤ 16384",
                      tokens["0.0.10"] <= 115200 and tokens["paper"] <= 16384))
    messages = _seed_messages()
    prompt, jinja = build_prompt(messages, add_vision_id=True), ref.hf_render_chat(messages, add_vision_id=True)
    facts.append(Fact("build_prompt == the published template rendered by transformers' Jinja",
                      f"{len(prompt)} chars", f"{len(jinja)} chars", prompt == jinja))
    hf = ref.hf_config(Qwen2VLConfig())
    ids = (SPECIAL_TOKENS["<|image_pad|>"], SPECIAL_TOKENS["<|video_pad|>"])
    facts.append(Fact("<|image_pad|>, <|video_pad|> ids", ids, (hf.image_token_id, hf.video_token_id),
                      ids == (hf.image_token_id, hf.video_token_id)))
    mine = prepare_inputs(messages)  # the real Qwen2-VL tokenizer by default
    theirs = ref.hf_prepare_inputs(messages, qwen2_tokenizer())
    same_ids = torch.equal(mine["input_ids"], theirs["input_ids"])
    facts.append(Fact("prepare_inputs input_ids == Qwen2VLProcessor (the real Qwen2-VL tokenizer)",
                      f"{mine['input_ids'].shape[1]} ids", f"{theirs['input_ids'].shape[1]} ids", same_ids))
    err_i = (mine["pixel_values"] - theirs["pixel_values"]).abs().max().item()
    err_v = (mine["pixel_values_videos"] - theirs["pixel_values_videos"]).abs().max().item()
    facts.append(Fact("pixel_values / pixel_values_videos max |ours - ref|", f"{err_i:.1e} / {err_v:.1e}", "≤ 1e-6",
                      max(err_i, err_v) <= 1e-6))
    items = [GroundedBox(name, to_normalized(box, SAMPLE_SIZE)) for name, (_, _, box) in SAMPLE_OBJECTS.items()]
    parsed = parse_grounding(format_grounding(items))
    worst = max(abs(a - b) for item, (_, _, box) in zip(parsed, SAMPLE_OBJECTS.values())
                for a, b in zip(from_normalized(item.box, SAMPLE_SIZE), box))
    facts.append(Fact("grounding: sample boxes → [0,1000) text → parsed → pixels, max error", f"{worst:.2f} px",
                      "≤ 1 px (true boxes)", parsed == items and worst <= 1.0))
    return facts


@figure
def _lessons07_08_figures(out: Path) -> list[Path]:
    from . import figures as viz
    from ..chat import prepare_inputs
    from ..grounding import GroundedBox, to_normalized
    from .samples import SAMPLE_OBJECTS, SAMPLE_SIZE, SAMPLE_VIDEO, sample_path

    messages = _seed_messages()
    text = prepare_inputs(messages, tokenizer=False)["text"]
    items = [GroundedBox(name, to_normalized(box, SAMPLE_SIZE)) for name, (_, _, box) in SAMPLE_OBJECTS.items()]
    truth = {name: box for name, (_, _, box) in SAMPLE_OBJECTS.items()}
    return [
        viz.savefig(viz.explain_video({"video": str(sample_path(SAMPLE_VIDEO))}), out / "07_video_frames_and_tubes.png"),
        viz.savefig(viz.plot_video_tokens_vs_duration(), out / "07_tokens_vs_duration.png"),
        viz.savefig(viz.draw_chat_tokens(text), out / "08_chat_template.png"),
        viz.savefig(viz.draw_grounding(sample_path(), items, truth=truth), out / "08_grounding.png"),
    ]


# ---------------------------------------------------------------------------------------------
# Lessons 09-10 — the VLM family
# ---------------------------------------------------------------------------------------------
@section("The VLM family (lessons 09–10)")
def _lessons09_10() -> list[Fact]:
    from dataclasses import replace

    import torch

    from . import reference as ref
    from ..family import blip2, budget, clip, internvl, llava, qwen_vl

    facts = []
    ours, theirs = internvl.internvl_tile_grid(1920, 1080), ref.hf_tile_grid(1920, 1080)
    facts.append(Fact("InternVL2 tiles for 1920x1080 (published rule; transformers)", ours, theirs,
                      ours == theirs == (4, 2)))
    ours, theirs = internvl.internvl_tile_grid(5, 2, min_num=4, max_num=4), ref.hf_tile_grid(5, 2, min_num=4, max_num=4)
    facts.append(Fact("equal-area tie, 5x2 with 4 tiles: published set order vs transformers' list order",
                      f"{ours} (published)", f"{theirs} (transformers)", ours == (4, 1) and theirs == (2, 2)))
    x = torch.randn(1, 32, 32, 64)
    y = internvl.pixel_shuffle(x)
    facts.append(Fact("pixel shuffle [1,32,32,C] → [1,16,16,4C]: bit-equal to InternVLModel's; inverse exact",
                      f"{tuple(y.shape)}, inverse exact: {torch.equal(internvl.pixel_unshuffle(y), x)}",
                      f"equal: {torch.equal(y, ref.hf_pixel_shuffle(x))}",
                      torch.equal(y, ref.hf_pixel_shuffle(x)) and torch.equal(internvl.pixel_unshuffle(y), x)))
    cfg = blip2.QFormerConfig(num_query_tokens=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=64, encoder_hidden_size=24)
    hf_q = ref.hf_qformer(cfg)
    q = blip2.QFormerModel(cfg)
    q.load_state_dict(hf_q.state_dict())
    emb, img, mask = torch.randn(1, 7, 32), torch.randn(1, 5, 24), blip2.itg_mask(4, 3)
    with torch.no_grad():
        err = (q(emb, img, mask, query_length=4) - ref.hf_qformer_forward(hf_q, emb, img, mask, 4)).abs().max().item()
    facts.append(Fact("Q-Former under the ITG mask vs Blip2QFormerModel (max |diff|)", f"{err:.1e}", "≤ 1e-5",
                      err <= 1e-5))
    qcfg = qwen_vl.QwenVLConfig(image_size=56, patch_size=7, vit_width=24, num_queries=16, output_dim=32, head_dim=8)
    res = qwen_vl.QwenVLResampler(qcfg)
    xq = torch.randn(1, 64, 24)
    with torch.no_grad():
        err = (res(xq) - ref.qwen_vl_resampler_reference(res, xq)[0]).abs().max().item()
    facts.append(Fact("Qwen-VL resampler vs published forward (nn.MultiheadAttention)", f"{err:.1e}", "≤ 1e-5",
                      err <= 1e-5))
    lcfg = replace(llava.LLAVA_1_5_7B, vision_hidden_size=16, text_hidden_size=24)
    hf_p = ref.hf_llava_projector(lcfg)
    p = llava.LlavaMultiModalProjector(lcfg)
    p.load_state_dict(hf_p.state_dict())
    xl = torch.randn(1, 9, 16)
    with torch.no_grad():
        err = (p(xl) - hf_p(xl)).abs().max().item()
    facts.append(Fact("LLaVA-1.5 MLP projector vs LlavaMultiModalProjector", f"{err:.1e}", "≤ 1e-5", err <= 1e-5))
    i, t = torch.randn(16, 8), torch.randn(16, 8)
    a, b = clip.clip_loss(i, t, 1 / 0.07).item(), ref.hf_clip_loss(i, t, 1 / 0.07).item()
    facts.append(Fact("CLIP symmetric InfoNCE vs CLIPModel's loss", f"{a:.6f}", f"{b:.6f}", abs(a - b) <= 1e-5))
    row = budget.token_budget(budget.BUDGET_INPUTS[:1])["224x224"]
    hf_qwen2 = ref.hf_image_processor().get_number_of_image_patches(224, 224, {}) // 4  # one token per 2x2 patches
    cols, rows = ref.hf_tile_grid(224, 224)
    hf_intern = 256 * (cols * rows + (cols * rows > 1))  # 256 per tile (+ thumbnail)
    facts.append(Fact("224x224 visual tokens: Qwen-VL / BLIP-2 / LLaVA-1.5 / InternVL2 / Qwen2-VL",
                      " / ".join(str(row[m]) for m in budget.MODELS), f"InternVL2 {hf_intern}, Qwen2-VL {hf_qwen2}",
                      row["Qwen2-VL"] == hf_qwen2 and row["InternVL2"] == hf_intern))
    hist = clip.train_toy_clip(steps=150)
    first, last = sum(hist.loss[:5]) / 5, sum(hist.loss[-10:]) / 10
    facts.append(Fact("toy CLIP: training loss (first 5 → last 10 steps)", f"{first:.2f} → {last:.3f}",
                      "last < first / 4", last < first / 4))
    return facts


@figure
def _lessons09_10_figures(out: Path) -> list[Path]:
    from . import figures as viz
    from ..family.clip import train_toy_clip
    from .samples import sample_path

    hist = train_toy_clip(steps=150)
    return [
        viz.savefig(viz.draw_connectors(), out / "09_connectors.png"),
        viz.savefig(viz.draw_qformer_masks(), out / "09_qformer_masks.png"),
        viz.savefig(viz.draw_internvl_tiles(sample_path()), out / "09_internvl_tiles.png"),
        viz.savefig(viz.plot_token_budget(), out / "09_token_budget.png"),
        viz.savefig(viz.plot_clip_training(hist), out / "10_clip_training.png"),
    ]


# ---------------------------------------------------------------------------------------------
def format_facts(title: str, facts: list[Fact]) -> str:
    rows = [(("✔" if f.ok else "✘"), f.claim, str(f.ours), str(f.reference)) for f in facts]
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    lines = [f"\n== {title}", f"   {'claim'.ljust(w1)}  {'ours'.ljust(w2)}  reference"]
    lines += [f"{m}  {c.ljust(w1)}  {o.ljust(w2)}  {r}" for m, c, o, r in rows]
    return "\n".join(lines)


def run_tour(out: str | Path | None = "outputs", print_fn: Callable[[str], None] = print) -> list[Fact]:
    """Run every section (printing a ✔/✘ table each) and write the figures to ``out``."""
    from .reference import transformers_version

    import torch

    print_fn(f"qwenvl-study tour — torch {torch.__version__}, transformers {transformers_version()}, "
             f"device cpu{' (CUDA available)' if torch.cuda.is_available() else ''}")
    all_facts: list[Fact] = []
    for title, fn in SECTIONS:
        start = time.perf_counter()
        facts = fn()
        all_facts += facts
        print_fn(format_facts(f"{title}  [{time.perf_counter() - start:.1f} s]", facts))
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        out = Path(out)
        paths = [p for fn in FIGURES for p in fn(out)]
        print_fn(f"\nfigures written to {out}/: " + ", ".join(p.name for p in paths))
    n_bad = sum(not f.ok for f in all_facts)
    print_fn(f"\n{len(all_facts) - n_bad} ✔ / {n_bad} ✘")
    return all_facts
