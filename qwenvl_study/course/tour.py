"""The tour: the course's key facts computed live and checked against the reference (``make demo``).

Each fact is a claim, our value, the reference's value and ✔/✘. Sections register themselves
with ``@section``; figures with ``@figure``. Nothing here restates a number by hand: the "ours"
column comes from the package, the "reference" column from transformers (``reference.py``) or,
for the published checkpoint's size, from its ``model.safetensors.index.json``. The parity
comparisons are the ones the tests assert on (``checks.py``). A reference that is not installed
(qwen-vl-utils is a dev extra) gives the line "not checked: qwen-vl-utils is not installed" and
the tour goes on; only a ✘ makes ``qwenvl-study tour`` exit 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

__all__ = ["Fact", "section", "figure", "run_tour", "format_facts", "passed"]


@dataclass
class Fact:
    claim: str
    ours: Any
    reference: Any
    ok: bool | None  # None: not checked (its reference is not installed)


def _bound(tolerance: float) -> str:
    return f"≤ {tolerance:.0e}".replace("e-0", "e-")


def from_check(check, claim: str | None = None, ours: Any = None, reference: Any = None) -> Fact:
    """A ``checks.Check`` as a tour line: by default its error and its tolerance."""
    if ours is None and check.max_abs_error is not None and check.tolerance is not None:
        ours, reference = f"{check.max_abs_error:.1e}", _bound(check.tolerance)
    return Fact(claim or check.name, check.ours if ours is None else ours,
                check.reference if reference is None else reference, check.ok)


def needs_reference(facts: list[Fact], build: Callable[[], Any]) -> None:
    """Append the fact(s) ``build`` makes, or one "not checked" line when its reference is not installed."""
    from .reference import ReferenceUnavailable

    try:
        made = build()
    except ReferenceUnavailable as err:
        facts.append(Fact(f"not checked: {err.package} is not installed", "—", "—", None))
        return
    facts.extend(made if isinstance(made, list) else [made])


def passed(facts: list[Fact]) -> bool:
    """No ✘ (a line not checked for want of its reference is no failure)."""
    return all(f.ok is not False for f in facts)


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

    from . import checks
    from ..patching import PatchEmbed
    from ..resolution import count_image_tokens
    from .samples import sample_path

    facts = [from_check(checks.smart_resize(224, 224), "224x224 is resized to")]
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8))
    check = checks.preprocess_image(img)
    (pv, grid), (hpv, hgrid) = check.ours, check.reference
    facts.append(Fact("224x224 patch grid (t, h, w)", tuple(grid[0].tolist()), tuple(hgrid[0].tolist()),
                      check.details["grid_equal"]))
    facts.append(Fact("224x224 patches (rows of 1176)", pv.shape[0], hpv.shape[0], pv.shape == hpv.shape))
    n_tok = count_image_tokens(224, 224)
    ref_tok = int(hgrid.prod()) // 4 + 2
    facts.append(Fact("224x224 → LLM tokens (64 merged + 2)", n_tok, ref_tok, n_tok == ref_tok == 66))
    facts.append(from_check(checks.preprocess_image(sample_path()), "sample.png pixel_values max |ours - ref|"))
    thin = checks.smart_resize(13, 2000)
    facts.append(from_check(thin, "13x2000, transformers rule"))

    def qwen_vl_utils_rule() -> Fact:
        check = checks.qwen_vl_utils_resize(13, 2000)
        return Fact("13x2000, qwen-vl-utils rule (clamps sides ≥ 28 first)", check.ours,
                    f"{check.reference} (qwen-vl-utils)", check.ok and check.ours != thin.ours)

    needs_reference(facts, qwen_vl_utils_rule)
    torch.manual_seed(0)
    embed = PatchEmbed(embed_dim=1280)
    x = torch.randn(256, 1176)
    err = (embed(x) - embed.as_linear()(x)).abs().max().item()
    facts.append(Fact("Conv3d(k=stride=(2,14,14)) == Linear(1176, 1280)", f"{err:.1e}", "≤ 1e-5", err <= 1e-5))
    return facts


@section("Model size (config → parameters)")
def _sizes() -> list[Fact]:
    from . import checks
    from ..config import PRESETS, count_parameters

    facts = []
    for name, cfg in PRESETS.items():
        check = checks.parameter_count(cfg)
        ours, hf = check.ours, check.reference
        facts.append(Fact(f"Qwen2-VL-{name} parameters (vision + language)",
                          f"{ours.vision:,} + {ours.language:,} = {ours.total:,}", f"{hf.total:,}", check.ok))
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

    from . import checks
    from ..config import QWEN2_VL_2B
    from ..rope import VIDEO_TOKEN_ID, mrope_cos_sin, mrope_position_ids, rope_cos_sin, segments_to_batch

    facts = []
    grids = torch.tensor([[1, 4, 6], [2, 6, 4], [3, 8, 10]])
    check = checks.vision_position_ids(grids)
    ids = check.ours
    facts.append(Fact("vision (row, col) ids of 3 grids (merge groups adjacent)", tuple(ids.shape),
                      "equal" if check.ok else "differ", check.ok))
    head_dim, heads = QWEN2_VL_2B.vision.head_dim, QWEN2_VL_2B.vision.num_heads
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, len(ids), heads, head_dim, generator=g)
    facts.append(from_check(checks.vision_rotary(ids, q, k),
                            f"2D-RoPE on q/k (head_dim {head_dim}: 20 row + 20 column pairs), max |ours - ref|"))
    batch = segments_to_batch([[("text", 5), ("image", (1, 8, 12)), ("text", 3), ("video", (4, 8, 8)), ("text", 2)],
                               [("text", 2), ("image", (1, 4, 4)), ("text", 6)],
                               [("video", (2, 6, 10)), ("text", 1)]], pad_side="left")
    check = checks.mrope_ids(batch)
    facts.append(Fact("M-RoPE ids, left-padded mixed batch (videos with t ≤ max(h', w')), real tokens",
                      f"{int(batch['attention_mask'].sum())} tokens", "equal" if check.ok else "differ", check.ok))
    deltas, hf_deltas = check.details["deltas"], check.details["reference_deltas"]
    facts.append(Fact("deltas (padded length) vs 5.x (unpadded): delta_5x = ours + L - n_real",
                      deltas.flatten().tolist(), hf_deltas.flatten().tolist(), check.details["deltas_relation"]))
    long = segments_to_batch([[("text", 4), ("video", LONG_VIDEO_GRID), ("text", 4)]])
    check = checks.mrope_ids(long)
    ours, theirs = check.details["ids"], check.details["reference_ids"]
    pads = long["input_ids"][0] == VIDEO_TOKEN_ID
    after = int(pads.nonzero().max()) + 1
    video_max = int(ours[:, 0, pads].max())
    ok = int(ours[0, 0, after]) == video_max + 1 and int(theirs[0, 0, after]) <= video_max
    t, h, w = LONG_VIDEO_GRID
    facts.append(Fact(f"id after a {t}x{h}x{w} video (t={t} > max(h', w')={max(h, w) // 2}; video max {video_max})",
                      f"{int(ours[0, 0, after])} (paper: max + 1)",
                      f"{int(theirs[0, 0, after])} (5.x: inside the video's range)", ok))
    image = segments_to_batch([[("image", (1, 78, 138))]])  # 1920x1080 → 78x138 patches
    check = checks.mrope_ids(image)
    d, hd = check.details["deltas"], check.details["reference_deltas"]
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

    from . import checks
    from . import reference as ref
    from ..config import QWEN2_VL_2B, count_parameters, tiny_config
    from ..vision import VisionTransformer

    grid = torch.tensor(PACKED_EXAMPLE)
    check = checks.cu_seqlens(grid)
    facts = [Fact("cu_seqlens of image + 2-slice video + image", check.ours.tolist(), check.reference.tolist(),
                  check.ok)]
    vision = tiny_config().vision
    n = int(grid.prod(-1).sum())
    pv = torch.randn(n, vision.patch_dim, generator=torch.Generator().manual_seed(0))
    outs = {}
    for backend in ("eager", "sdpa"):
        ours, theirs = checks.vision_pair(vision, backend)
        check = checks.vision_tower(pv, grid, backend=backend, pair=(ours, theirs))
        outs[backend] = check.ours
        facts.append(from_check(check, f"tiny tower, packed images + video, {backend}: max |ours - transformers|"))
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

    from . import checks
    from . import reference as ref
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
    facts.append(from_check(checks.model_logits((ours, hf), ids, mask, **kw),
                            "logits, tiny model, image + left-padded batch: max |ours - ref|"))
    check = checks.greedy_generation((ours, hf), ids, mask, **kw, max_new_tokens=12)
    mine = check.ours
    facts.append(Fact("greedy 12 tokens (KV cache) equal transformers' generate", "equal" if check.ok else "differ",
                      "transformers generate", check.ok))
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
        mine = ours(ids, output_hidden_states=True).hidden_states
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
    from . import checks
    from . import reference as ref
    from ..chat import SPECIAL_TOKENS
    from ..config import Qwen2VLConfig
    from ..grounding import format_grounding, from_normalized, parse_grounding, to_normalized, GroundedBox
    from ..media import plan_video
    from .samples import SAMPLE_OBJECTS, SAMPLE_SIZE, SAMPLE_VIDEO, sample_path

    facts: list[Fact] = []

    def sample_image() -> Fact:
        check = checks.fetch_image({"image": str(sample_path())})
        return Fact("sample.png via process_vision_info == qwen-vl-utils 0.0.8 fetch_image",
                    "x".join(map(str, check.ours.size)), "x".join(map(str, check.reference.size)), check.ok)

    def sample_video() -> Fact:
        check = checks.fetch_video({"video": str(sample_path(SAMPLE_VIDEO))})
        return Fact("sample.mp4 (4 s, 25 fps) → frames sampled at 2 fps, [T, C, H, W]", tuple(check.ours.shape),
                    f"{tuple(check.reference.shape)} (qwen-vl-utils' fetch_video, PyAV reader)", check.ok)

    long_video = (30 * 600, 30.0, 1080, 1920)  # 10 min of 1080p at 30 fps

    def long_video_tokens() -> Fact:
        check = checks.video_tokens(*long_video, defaults="0.0.8")
        return Fact("10-min 1080p video → tokens, preset 0.0.8 (default; budget 24576, floor binds)",
                    check.ours, f"{check.reference} (qwen-vl-utils 0.0.8)", check.ok)

    for build in (sample_image, sample_video, long_video_tokens):
        needs_reference(facts, build)
    tokens = {name: plan_video(*long_video, defaults=name).tokens for name in ("0.0.10", "paper")}
    facts.append(Fact("same video, preset 0.0.10 (budget 128000*0.9) / paper (cap 16384)",
                      f"{tokens['0.0.10']} / {tokens['paper']}", "≤ 115200 / ≤ 16384",
                      tokens["0.0.10"] <= 115200 and tokens["paper"] <= 16384))
    messages = _seed_messages()
    check = checks.chat_template(messages, add_vision_id=True)
    facts.append(Fact("build_prompt == the published template rendered by transformers' Jinja",
                      f"{len(check.ours)} chars", f"{len(check.reference)} chars", check.ok))
    hf = ref.hf_config(Qwen2VLConfig())
    ids = (SPECIAL_TOKENS["<|image_pad|>"], SPECIAL_TOKENS["<|video_pad|>"])
    facts.append(Fact("<|image_pad|>, <|video_pad|> ids", ids, (hf.image_token_id, hf.video_token_id),
                      ids == (hf.image_token_id, hf.video_token_id)))

    def processor() -> list[Fact]:  # the reference's media side is qwen-vl-utils' process_vision_info
        check = checks.prepare_inputs(messages)  # the real Qwen2-VL tokenizer (prepare_inputs' default) on both sides
        mine, theirs, errors = check.ours, check.reference, check.details
        same_ids = errors["input_ids"] == 0 and mine["input_ids"].shape == theirs["input_ids"].shape
        err_i, err_v = errors["pixel_values"], errors["pixel_values_videos"]
        return [Fact("prepare_inputs input_ids == Qwen2VLProcessor (the real Qwen2-VL tokenizer)",
                     f"{mine['input_ids'].shape[1]} ids", f"{theirs['input_ids'].shape[1]} ids", same_ids),
                Fact("pixel_values / pixel_values_videos max |ours - ref|", f"{err_i:.1e} / {err_v:.1e}", "≤ 1e-6",
                     max(err_i, err_v) <= 1e-6)]

    needs_reference(facts, processor)
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

    from . import checks
    from . import reference as ref
    from ..family import blip2, budget, clip, llava, qwen_vl

    check = checks.tile_grid(1920, 1080)
    facts = [Fact("InternVL2 tiles for 1920x1080 (published rule; transformers)", check.ours, check.reference,
                  check.ok and check.ours == (4, 2))]
    check = checks.tile_grid(5, 2, min_num=4, max_num=4)
    ours, theirs = check.ours, check.reference
    facts.append(Fact("equal-area tie, 5x2 with 4 tiles: published set order vs transformers' list order",
                      f"{ours} (published)", f"{theirs} (transformers)", ours == (4, 1) and theirs == (2, 2)))
    check = checks.pixel_shuffle(torch.randn(1, 32, 32, 64))
    inverse = check.details["inverse_exact"]
    facts.append(Fact("pixel shuffle [1,32,32,C] → [1,16,16,4C]: bit-equal to InternVLModel's; inverse exact",
                      f"{tuple(check.ours.shape)}, inverse exact: {inverse}", f"equal: {check.ok}",
                      check.ok and inverse))
    cfg = blip2.QFormerConfig(num_query_tokens=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=64, encoder_hidden_size=24)
    pair = checks.qformer_pair(cfg)
    emb, img, mask = torch.randn(1, 7, 32), torch.randn(1, 5, 24), blip2.itg_mask(4, 3)
    facts.append(from_check(checks.qformer(emb, img, mask, 4, pair=pair),
                            "Q-Former under the ITG mask vs Blip2QFormerModel (max |diff|)"))
    qcfg = qwen_vl.QwenVLConfig(image_size=56, patch_size=7, vit_width=24, num_queries=16, output_dim=32, head_dim=8)
    res = qwen_vl.QwenVLResampler(qcfg)
    facts.append(from_check(checks.qwen_vl_resampler(torch.randn(1, 64, 24), resampler=res),
                            "Qwen-VL resampler vs published forward (nn.MultiheadAttention)"))
    pair = checks.llava_pair(replace(llava.LLAVA_1_5_7B, vision_hidden_size=16, text_hidden_size=24))
    facts.append(from_check(checks.llava_projector(torch.randn(1, 9, 16), pair=pair),
                            "LLaVA-1.5 MLP projector vs LlavaMultiModalProjector"))
    check = checks.clip_loss(torch.randn(16, 8), torch.randn(16, 8), 1 / 0.07)
    facts.append(Fact("CLIP symmetric InfoNCE vs CLIPModel's loss", f"{check.ours:.6f}", f"{check.reference:.6f}",
                      check.ok))
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
# Lesson 11 — the course model, trained on a CPU, answering new questions
# ---------------------------------------------------------------------------------------------
TOUR_QUESTIONS = 20  # per task, the first questions of each held-out set (never trained on)


@lru_cache(maxsize=1)
def _course_model_answers() -> tuple[Any, dict]:
    from ..train.evaluate import evaluate
    from ..train.shipped import load_course_model

    model, tokenizer = load_course_model()
    return evaluate(model, tokenizer, TOUR_QUESTIONS, return_details=True)


@section("The course model answers new questions (lesson 11)")
def _lesson11() -> list[Fact]:
    from ..train.evaluate import GOALS

    scores, details = _course_model_answers()
    facts = []
    for task, score in scores.items():
        samples, answers, ok = details[task]
        facts.append(Fact(f"{task}: e.g. {samples[0].question!r} -> {answers[0]!r}", "right" if ok[0] else "wrong",
                          f"truth {samples[0].answer!r}", None))
        met = score >= GOALS[task]
        # a goal not met is reported, not failed: the tour's ✘ is for parity (see the model card)
        facts.append(Fact(f"{task} on {len(ok)} held-out questions", f"{score:.2f}",
                          f"goal >= {GOALS[task]}" + ("" if met else " (not met)"), True if met else None))
    return facts


@figure
def _lesson11_figures(out: Path) -> list[Path]:
    from . import figures as viz

    _, details = _course_model_answers()
    samples, answers, _ = details["find"]
    return [viz.savefig(viz.draw_course_answers(samples[:8], answers[:8]), out / "11_course_model_find.png")]


# ---------------------------------------------------------------------------------------------
def format_facts(title: str, facts: list[Fact]) -> str:
    rows = [({True: "✔", False: "✘", None: "–"}[f.ok], f.claim, str(f.ours), str(f.reference)) for f in facts]
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
    n_bad = sum(f.ok is False for f in all_facts)
    n_skipped = sum(f.ok is None for f in all_facts)
    print_fn(f"\n{len(all_facts) - n_bad - n_skipped} ✔ / {n_bad} ✘"
             + (f" / {n_skipped} not checked (reference not installed) or informational" if n_skipped else ""))
    return all_facts
