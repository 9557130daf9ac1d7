"""The paper's claims in miniature (issue 13): the course model with one design choice switched off.

Qwen2-VL's architecture section (paper §2.1) makes claims about why the model is built as it is.
Each variant below changes exactly one switch of the course model (``course.py``) and is trained
with the same data, steps and recipe (``ABLATION_STAGES``, through ``loop.train``), then scored on
four held-out splits. The claims, and the variant that tests each:

| variant       | what changes                                                  | claim it tests (§2.1)                            |
|---------------|---------------------------------------------------------------|--------------------------------------------------|
| ``baseline``  | nothing: the course model                                     | —                                                |
| ``rope1d``    | LLM positions 0, 1, 2, ... on all three M-RoPE rows (plain 1D | M-RoPE models position better and extrapolates   |
|               | RoPE), in training, scoring and generation alike              | to longer inputs                                 |
| ``vit_abs_pos`` | the ViT's 2D-RoPE off (identity rotation); instead a learned | 2D-RoPE lets one ViT serve any resolution        |
|               | absolute position table of 8 x 8 (the max square's patch grid)|                                                  |
|               | added to the patch embeddings, bicubic-interpolated to each   |                                                  |
|               | grid (Qwen-VL / CLIP style)                                   |                                                  |
| ``fixed_224`` | every image squashed to one square before patching (no        | naive dynamic resolution beats a fixed input     |
|               | dynamic resolution); video frames to the video budget's square| size, most on small objects and extreme aspects  |
| ``no_merge``  | no 2x2 merge: each patch is one LLM token (4x the visual      | the merger cuts tokens 4x at little cost         |
|               | tokens; the projector maps each patch to the LLM width)       |                                                  |
| ``no_video``  | no video question in any stage's mix (images only); videos    | unified image + video training                   |
|               | are still scored                                              |                                                  |

``no_merge``'s projector is the merger at merge size 1 (LayerNorm -> Linear(d, d) -> GELU -> Linear(d, LLM
width), d = the ViT width) instead of Linear(4d, 4d) -> GELU -> Linear(4d, LLM width): 4.03M parameters
instead of 4.38M at the course width, and the LLM's init draws after a narrower merger (so its initial
weights differ from the baseline's; every other variant starts from the baseline's weights).

``fixed_224`` keeps the paper's name, but 224 x 224 is larger than anything the course model sees:
its image budget is at most 112 x 112 = 12,544 pixels (16 LLM tokens). The honest analogue of
"a fixed 224 x 224 input" for a model whose largest input is 224 x 224 is its own largest square,
so here every image becomes 112 x 112 (8 x 8 patches, 16 tokens) and every video frame 56 x 56
(the video budget's square). ``vit_abs_pos``'s table is likewise the 8 x 8 grid of that square
(CLIP trains a 16 x 16 table at 224 px, Qwen-VL a 32 x 32 one at 448 px, each interpolated to other
grids). ``no_video`` keeps stage 0's text-only questions as they are (their "x 120 then 530" motion
sentences are text, the stand-in for the pretrained Qwen2 LLM, not video).

Splits (held-out, each task drawn from its own seed; ``data.make_sample`` with other ranges):

- ``in_dist``: the training distribution (count, find, direction);
- ``larger``: canvases 336-672 px per side, scored at 4x the pixel budget (images up to 224 x 224,
  video frames up to 112 x 112): at the training budget a larger canvas is only downscaled to the
  token grid training already had, so nothing would be beyond training; at 4x, grids are up to
  twice the training side, which is what "any resolution" is about (count, find, direction);
- ``aspect``: long / short side 3-6, at the training budget (count, find, direction);
- ``longer_video``: 16-24 frames, twice the training length (direction only).

Metrics in [0, 1], from ``evaluate.score_answers``: count exact match, find IoU >= 0.5 rate,
direction exact match; per run also the mean visual tokens per ``in_dist`` image and the training
wall time (seconds of every stage, a shared stage counted with the seconds it took once).

Seeds: run seed ``s`` initialises the weights from ``torch.manual_seed(s)`` and, for ``s`` > 0, draws
each stage's data from that stage's seed + 1000 s (``s`` = 0 is the course recipe's data), so the
spread over seeds is the spread over initialisation and data order.

Shared stages: a variant whose leading stages are, by construction, the baseline's computation
(same model class and initial weights, same data, and a switch that the stage never reads) gets
the baseline's fingerprint for those stages (``AblationConfig.fingerprint``), and the runner copies
the baseline's checkpoint instead of retraining: stage 0 (text only: 1D RoPE *is* M-RoPE on text,
tested bit for bit) for ``rope1d``, ``fixed_224`` and ``no_video``; stage 0v (the ViT alone) too for
``rope1d`` and ``no_video``. ``vit_abs_pos`` and ``no_merge`` have other parameters and share nothing.

``python -m qwenvl_study.train.ablations`` (``make ablations``) runs every variant x seed, resumable
per stage and per run (``outputs/ablations/<variant>-s<seed>/``), and writes
``experiments/ablations/results.json``; ``validate_results`` is its schema check; notebook 12 reads it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..attention import cu_seqlens_from_grid
from ..config import MERGE_SIZE, VisionConfig
from ..rope import vision_position_ids
from ..vision import VisionOutput, VisionTransformer, check_vision_inputs
from .course import COURSE_MEDIA, CourseMedia, CourseQwen2VL, course_config
from .loop import SMOKE_MODEL, TrainConfig, init_weights, stage_seed, train
from .recipe import STAGES, VISUAL, Stage
from .vocab import CourseVocab

__all__ = ["ABLATION_STAGES", "VARIANTS", "CLAIMS", "SPLITS", "Split", "METRICS", "CHANCE", "FixedSizeMedia", "NoMergeMedia",
           "NoRotary", "AbsPosVisionTransformer", "Rope1DQwen2VL", "AbsPosQwen2VL", "positions_1d",
           "merge_to_raster", "squash_messages", "variant_media", "variant_stages", "build_variant",
           "AblationConfig", "ablation_config", "shared_stages", "evaluate_splits", "run_one", "run_all",
           "validate_results", "find_results", "summarize", "compare", "verdict", "claim_table", "margin", "KEY_CELLS",
           "EXPECT", "DEFAULT_OUT", "DEFAULT_RESULTS", "main"]

VARIANTS: tuple[str, ...] = ("baseline", "rope1d", "vit_abs_pos", "fixed_224", "no_merge", "no_video")

# variant -> (what changes, the claim it tests)
CLAIMS: dict[str, tuple[str, str]] = {
    "rope1d": ("LLM positions 0, 1, 2, ... on all three M-RoPE rows (plain 1D RoPE)",
               "M-RoPE models position better and extrapolates to longer inputs"),
    "vit_abs_pos": ("ViT: learned absolute positions (8 x 8 table, bicubic-interpolated to each grid) instead of 2D-RoPE",
                    "2D-RoPE lets one ViT serve any resolution"),
    "fixed_224": ("every image squashed to 112 x 112 (the course model's max square; the paper's 224 x 224) "
                  "before patching, video frames to 56 x 56",
                  "naive dynamic resolution beats a fixed input size, most on small objects and extreme aspects"),
    "no_merge": ("no 2x2 merge: one LLM token per patch (4x the visual tokens)",
                 "the merger cuts tokens 4x at little cost"),
    "no_video": ("images only in training (no video question in any stage); videos still scored",
                 "unified image + video training"),
}

FIXED_IMAGE_SIDE = 112  # sqrt(COURSE_MEDIA.image_max_pixels): the course model's largest square image
FIXED_VIDEO_SIDE = 56  # sqrt(COURSE_MEDIA.video_max_pixels)
ABS_TABLE_SIDE = 8  # FIXED_IMAGE_SIDE / 14: the patch grid of that square
SEED_STRIDE = 1000  # run seed s > 0 draws stage data from the stage's seed + 1000 s
# The recipe the committed results (experiments/ablations/results.json) were trained with: ``make train``'s stages
# before stage 3's describe curriculum (stage 0v at 800 steps, stage 1 all of ``visual.*`` for 40 steps, stage 2 at
# 1,500 steps in one optimiser group, then stage 3's direction lead of 800 steps and 300 chat steps). The variants
# compare against each other, not against the shipped model, so they keep the recipe their results record (one
# batch per step: no micro-batches).
_BEFORE_CURRICULUM = {
    "stage0v": {"steps": 800},
    "stage1": {"name": "ViT + merger, LLM frozen", "trainable": VISUAL, "steps": 40},
    "stage2": {"steps": 1500, "visual_lr_scale": 1.0, "visual_lr_on": VISUAL},
    "stage3": {"name": "ViT frozen, LLM: video direction alone, then the chats", "steps": 800 + 300, "lead_steps": 800,
               "lead_weight": 0.0},
}
ABLATION_STAGES: tuple[Stage, ...] = tuple(replace(s, **{"micro_batch": 0, **_BEFORE_CURRICULUM.get(s.key, {})})
                                           for s in STAGES if s.key not in ("stage3a", "stage3b", "stage3c", "stage3d"))

DEFAULT_OUT = Path("outputs") / "ablations"
DEFAULT_RESULTS = Path("experiments") / "ablations" / "results.json"


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """A held-out split: data ranges (``data.make_sample`` keywords), tasks, and the pixel budget factor."""

    name: str
    seed: int  # task k of ``tasks`` is drawn from seed + k
    tasks: tuple[str, ...]
    sides: tuple[int, int] = (56, 336)
    ratio: tuple[float, float] = (1, 3)
    frames: tuple[int, int] = (4, 12)
    budget: int = 1  # the course model's max pixels (image and video frame) times this

    def ranges(self) -> dict[str, tuple]:
        return {"sides": self.sides, "ratio": self.ratio, "frames": self.frames}

    def media(self, media: CourseMedia) -> CourseMedia:
        if self.budget == 1:
            return media
        return replace(media, image_max_pixels=media.image_max_pixels * self.budget,
                       video_max_pixels=media.video_max_pixels * self.budget)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SPLITS: dict[str, Split] = {s.name: s for s in (
    Split("in_dist", 9100, ("count", "find", "direction")),
    Split("larger", 9110, ("count", "find", "direction"), sides=(336, 672), budget=4),
    Split("aspect", 9120, ("count", "find", "direction"), ratio=(3, 6)),
    Split("longer_video", 9130, ("direction",), frames=(16, 24)),
)}
METRICS: tuple[str, ...] = ("count", "find", "direction")
# What a model that ignores the pixels scores: counts 1-5 are uniform, 4 directions; a box with
# IoU >= 0.5 by luck is rare (taken as 0).
CHANCE: dict[str, float] = {"count": 0.2, "find": 0.0, "direction": 0.25}


# ---------------------------------------------------------------------------------------------
# Variants: media
# ---------------------------------------------------------------------------------------------
def _squash(image: Any, side: int) -> Image.Image:
    """An image (PIL, path or bytes) resized to side x side, aspect ratio ignored (PIL bicubic, as the processor)."""
    from ..patching import open_image, to_rgb

    rgb = to_rgb(open_image(image))
    return rgb if rgb.size == (side, side) else rgb.resize((side, side), resample=Image.Resampling.BICUBIC)


def squash_messages(messages: list[dict], image_side: int, video_side: int) -> list[dict]:
    """The messages with every image squashed to ``image_side``² and every video frame to ``video_side``²
    (videos as frame lists; a video file must be decoded into frames first)."""
    out = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            items = []
            for item in content:
                if isinstance(item, dict) and ("image" in item or "image_url" in item):
                    key = "image" if "image" in item else "image_url"
                    item = {**item, key: _squash(item[key], image_side)}
                elif isinstance(item, dict) and "video" in item:
                    if not isinstance(item["video"], (list, tuple)):
                        raise ValueError(f"fixed_224 squashes frame lists; decode the video {item['video']!r} "
                                         f"into a list of frames first (media.fetch_video)")
                    item = {**item, "video": [_squash(f, video_side) for f in item["video"]]}
                items.append(item)
            m = {**m, "content": items}
        out.append(m)
    return out


@dataclass(frozen=True)
class FixedSizeMedia(CourseMedia):
    """``fixed_224``: every image squashed to ``image_side`` x ``image_side`` before the processor, every
    video frame to ``video_side`` x ``video_side``: one grid for every image (8 x 8 patches at 112)."""

    image_side: int = FIXED_IMAGE_SIDE
    video_side: int = FIXED_VIDEO_SIDE

    def vision_inputs(self, messages: list[dict]) -> dict[str, torch.Tensor]:
        return super().vision_inputs(squash_messages(messages, self.image_side, self.video_side))


def merge_to_raster(pixels: torch.Tensor, grid_thw: torch.Tensor, m: int = MERGE_SIZE) -> torch.Tensor:
    """Patch rows in the processor's 2x2-merge order -> row-major (raster) order, per grid: the same rows,
    permuted. ``[N, 1176]`` -> ``[N, 1176]``."""
    parts, k = [], 0
    for t, h, w in grid_thw.tolist():
        n = t * h * w
        x = pixels[k:k + n].reshape(t, h // m, w // m, m, m, -1)  # [t, h/m, w/m, m, m, D]
        parts.append(x.permute(0, 1, 3, 2, 4, 5).reshape(n, -1))  # [t, h/m, m, w/m, m, D] -> [n, D] raster
        k += n
    return torch.cat(parts)


@dataclass(frozen=True)
class NoMergeMedia(CourseMedia):
    """``no_merge``: the same pixels and grids, patches in raster order and one pad per patch."""

    spatial_merge_size: int = 1

    @property
    def merge_size(self) -> int:
        return self.spatial_merge_size

    def vision_inputs(self, messages: list[dict]) -> dict[str, torch.Tensor]:
        out = super().vision_inputs(messages)  # processor order: 2x2 groups adjacent
        for key, grid in (("pixel_values", "image_grid_thw"), ("pixel_values_videos", "video_grid_thw")):
            if key in out:
                out[key] = merge_to_raster(out[key], out[grid])
        return out


def variant_media(variant: str, media: CourseMedia = COURSE_MEDIA) -> CourseMedia:
    """The variant's pixel pipeline, from the course model's budget ``media``."""
    _check_variant(variant)
    budget = {f.name: getattr(media, f.name) for f in dataclasses.fields(CourseMedia)}
    if variant == "fixed_224":
        return FixedSizeMedia(**budget)
    if variant == "no_merge":
        return NoMergeMedia(**budget)
    return media


# ---------------------------------------------------------------------------------------------
# Variants: models
# ---------------------------------------------------------------------------------------------
def positions_1d(attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain 1D RoPE written as M-RoPE ids: real token k of a row gets k on all three rows, masked places 1,
    ``deltas = real count - L`` (so generation's ``cache_position + delta`` continues the count), as
    ``rope.mrope_position_ids`` would give a text-only batch: ``([3, B, L], [B, 1])``."""
    mask = attention_mask.long()
    B, L = mask.shape
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # [B, L]
    deltas = mask.sum(-1, keepdim=True) - L  # [B, 1]
    return pos[None].expand(3, B, L).clone(), deltas


class Rope1DQwen2VL(CourseQwen2VL):
    """``rope1d``: the course model with its LLM positions replaced by ``positions_1d``."""

    def positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  image_grid_thw: torch.Tensor | None = None, video_grid_thw: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        return positions_1d(attention_mask)


class NoRotary(nn.Module):
    """The ViT's rotary tables switched off: cos = 1, sin = 0, so ``apply_rotary_vision`` returns q, k unchanged."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.head_dim = head_dim

    def forward(self, grid_thw: torch.Tensor, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        n = int(torch.as_tensor(grid_thw).reshape(-1, 3).prod(-1).sum())
        return torch.ones(n, self.head_dim, device=device), torch.zeros(n, self.head_dim, device=device)


class AbsPosVisionTransformer(VisionTransformer):
    """``vit_abs_pos``: Qwen2-VL's ViT with 2D-RoPE off and a learned absolute position table instead.

    ``pos_embed [S*S, d]`` (S = ``table_side``) is read as an S x S grid, bicubic-interpolated to each
    image's (h, w) patch grid (``F.interpolate``, ``align_corners=False``: an S x S grid gets the table
    itself) and added to the patch embeddings in the ViT's row order (each temporal slice of a video
    gets the same grid: no temporal position, as Qwen-VL / CLIP). Everything else is the base tower.
    """

    def __init__(self, config: VisionConfig, table_side: int = ABS_TABLE_SIDE, attn_backend: str = "auto") -> None:
        super().__init__(config, attn_backend=attn_backend)
        self.rotary_pos_emb = NoRotary(config.head_dim)
        self.table_side = table_side
        self.pos_embed = nn.Parameter(torch.empty(table_side * table_side, config.embed_dim))
        self.reset_table(0)

    def reset_table(self, seed: int, std: float = 0.02) -> None:
        """N(0, std) from its own generator (so the other weights' init is the baseline's)."""
        with torch.no_grad():
            self.pos_embed.normal_(0.0, std, generator=torch.Generator().manual_seed(seed))

    def grid_embeddings(self, grid: torch.Tensor) -> torch.Tensor:
        """``grid [n, 3]`` -> ``[N, d]``: the interpolated table at every patch, in the ViT's row order."""
        S, d = self.table_side, self.pos_embed.shape[1]
        table = self.pos_embed.view(S, S, d).permute(2, 0, 1)[None]  # [1, d, S, S]
        out, sized = [], {}
        for t, h, w in grid.tolist():
            if (h, w) not in sized:  # one interpolation per grid size in the batch
                sized[h, w] = table[0] if (h, w) == (S, S) else F.interpolate(
                    table, size=(h, w), mode="bicubic", align_corners=False)[0]  # [d, h, w]
            rc = vision_position_ids([[t, h, w]], self.spatial_merge_size)  # [t*h*w, 2] (row, col) in row order
            out.append(sized[h, w][:, rc[:, 0], rc[:, 1]].T)  # [d, t*h*w] -> [t*h*w, d]
        return torch.cat(out)

    def forward(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor, *,
                return_hidden_states: bool = False) -> torch.Tensor | VisionOutput:
        grid = check_vision_inputs(pixel_values, grid_thw, self.spatial_merge_size, self.config.patch_dim)
        cu_seqlens = cu_seqlens_from_grid(grid).to(pixel_values.device)
        x = self.patch_embed(pixel_values)  # [N, 1176] -> [N, d]
        x = x + self.grid_embeddings(grid).to(x.device, x.dtype)  # + absolute positions [N, d]
        cos, sin = self.rotary_pos_emb(grid, device=x.device)  # identity rotation
        hidden = [x]
        for block in self.blocks:
            x = block(x, cu_seqlens, cos, sin, self.attn_backend)
            hidden.append(x)
        merged = self.merger(x)  # [N, d] -> [N/4, hidden]
        return VisionOutput(merged, x, tuple(hidden)) if return_hidden_states else merged


class AbsPosQwen2VL(CourseQwen2VL):
    """``vit_abs_pos``: the course model with ``AbsPosVisionTransformer`` as ``visual`` (``visual.pos_embed``)."""

    def __init__(self, config, vocab: CourseVocab, media: CourseMedia = COURSE_MEDIA, attn_backend: str = "auto",
                 table_side: int = ABS_TABLE_SIDE) -> None:
        super().__init__(config, vocab, media, attn_backend=attn_backend)
        self.visual = AbsPosVisionTransformer(config.vision, table_side, attn_backend=attn_backend)


def build_variant(variant: str, vocab: CourseVocab, config: TrainConfig) -> CourseQwen2VL:
    """The variant's model, initialised as ``loop.build_model`` (same seed, same module order: every
    weight a variant shares in shape with the baseline starts from the baseline's value, except
    after ``no_merge``'s narrower merger, which shifts the random stream of the LLM's init)."""
    _check_variant(variant)
    cfg = course_config(vocab, **config.model)
    media = config.media
    if variant == "rope1d":
        model: CourseQwen2VL = Rope1DQwen2VL(cfg, vocab, media)
    elif variant == "vit_abs_pos":
        model = AbsPosQwen2VL(cfg, vocab, media)
    elif variant == "no_merge":
        model = CourseQwen2VL(replace(cfg, vision=replace(cfg.vision, spatial_merge_size=1)), vocab, media)
    else:
        model = CourseQwen2VL(cfg, vocab, media)
    if model.config.vision.spatial_merge_size != media.merge_size:
        raise ValueError(f"{variant}: the model merges {model.config.vision.spatial_merge_size}x"
                         f"{model.config.vision.spatial_merge_size} patches but its media "
                         f"({type(media).__name__}) expands pads for {media.merge_size}x{media.merge_size}: "
                         f"use variant_media({variant!r})")
    init_weights(model, config.seed)
    if variant == "vit_abs_pos":
        model.visual.reset_table(config.seed)
    return model


# ---------------------------------------------------------------------------------------------
# Variants: stages and the run's config
# ---------------------------------------------------------------------------------------------
# The stage data kinds a variant never reads differently from the baseline (see the module docstring).
_UNTOUCHED: dict[str, frozenset[str]] = {
    "baseline": frozenset({"text", "dense", "vision"}),
    "rope1d": frozenset({"text", "dense"}),  # text only: 1D == M-RoPE; dense: the LLM does not run
    "vit_abs_pos": frozenset(),  # another parameter set
    "fixed_224": frozenset({"text"}),  # stage 0 never sees a pixel
    "no_merge": frozenset(),  # another merger
    "no_video": frozenset({"text", "dense"}),  # only the vision stages' mixes change
}


def variant_stages(variant: str, stages: Sequence[Stage] = ABLATION_STAGES, *, seed: int = 0, steps_scale: float = 1.0,
                   batch_size: int | None = None) -> tuple[Stage, ...]:
    """The recipe's stages for one run: steps scaled together (``max(1, round(steps * scale))``; a curriculum
    lead and the rest of its stage each scaled), the run seed's data (stage seed + 1000 s for s > 0),
    ``no_video``'s mixes without ``direction`` (and a direction lead's steps become steps of that mix: the same
    number of steps, images only)."""
    _check_variant(variant)
    out = []
    for s in stages:
        changes: dict[str, Any] = {"steps": max(1, round(s.steps * steps_scale))}
        if s.lead_steps:
            lead = max(1, round(s.lead_steps * steps_scale))
            changes["steps"] = lead + max(1, round((s.steps - s.lead_steps) * steps_scale))
            changes["lead_steps"] = lead
            if variant == "no_video" and s.lead == "direction":
                changes.update(lead="", lead_steps=0)
        if seed:
            changes["seed"] = stage_seed(s.index, s.seed) + SEED_STRIDE * seed
        if batch_size is not None:
            changes.update(batch_size=batch_size, warmup=1)
        if variant == "no_video" and s.mix:
            changes["mix"] = {k: v for k, v in s.mix.items() if k != "direction"}
        out.append(replace(s, **changes))
    return tuple(out)


@dataclass
class AblationConfig(TrainConfig):
    """``TrainConfig`` for one variant: ``build`` makes the variant's model; ``fingerprint`` is the
    baseline's for the leading stages the variant does not change (``shared_stages``), else it adds
    the variant's name."""

    variant: str = "baseline"
    base_media: CourseMedia = COURSE_MEDIA  # the budget the variant's media derive from

    def build(self, vocab: CourseVocab) -> CourseQwen2VL:
        return build_variant(self.variant, vocab, self)

    def baseline(self) -> TrainConfig:
        """The same run with no switch: a plain ``TrainConfig`` (its fingerprints are ``make train``'s rule)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)}
        fields["media"] = self.base_media
        return TrainConfig(**fields)

    def fingerprint(self, upto: int) -> str:
        if upto < len(shared_stages(self.variant, self.stages)):
            return self.baseline().fingerprint(upto)
        own = super().fingerprint(upto)
        return hashlib.sha256(f"{own}:{self.variant}".encode()).hexdigest()[:16]


def shared_stages(variant: str, stages: Sequence[Stage]) -> list[str]:
    """Keys of the leading stages whose weights equal the baseline's (same fingerprint)."""
    untouched, keys = _UNTOUCHED[variant], []
    for s in stages:
        if s.data not in untouched:
            break
        keys.append(s.key)
    return keys


def ablation_config(variant: str, seed: int, out: str | Path, *, steps_scale: float = 1.0, smoke: bool = False,
                    stages: Sequence[Stage] = ABLATION_STAGES, media: CourseMedia = COURSE_MEDIA, threads: int | None = 1,
                    workers: int = 1, progress: bool = True) -> AblationConfig:
    """One run's config: the recipe (``stages``, scaled), no LoRA, no per-stage scoring (the splits are
    scored once at the end). ``smoke``: the tiny width of ``loop.SMOKE_MODEL`` and batches of 4 (tests)."""
    return AblationConfig(out=str(out), seed=seed, lora=None, eval_n=0, threads=threads,
                          workers=0 if smoke else workers, progress=progress,
                          model=dict(SMOKE_MODEL) if smoke else {},
                          stages=variant_stages(variant, stages, seed=seed, steps_scale=steps_scale,
                                                batch_size=4 if smoke else None),
                          media=variant_media(variant, media), variant=variant, base_media=media)


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


# ---------------------------------------------------------------------------------------------
# Scoring on the splits
# ---------------------------------------------------------------------------------------------
def split_samples(split: Split, task: str, n: int) -> list:
    from .data import make_sample

    k = split.tasks.index(task)
    return [make_sample(split.seed + k, i, task, **split.ranges()) for i in range(n)]


def visual_tokens(media: CourseMedia, samples: Iterable) -> list[int]:
    """LLM tokens of each sample's image / video under ``media`` (grid t*h*w / merge²)."""
    from .data import messages_for

    out = []
    for s in samples:
        vision = media.vision_inputs(messages_for(s.media, s.question, media_options=media.options(s.is_video)))
        grid = vision.get("image_grid_thw", vision.get("video_grid_thw"))
        out.append(int(grid.prod(-1).sum()) // media.merge_size ** 2)
    return out


def evaluate_splits(model: CourseQwen2VL, tokenizer: Any, n: int, splits: Mapping[str, Split] = SPLITS, *,
                    progress: bool = False) -> tuple[dict[str, dict[str, float]], float]:
    """``({split: {task: score}}, mean visual tokens per in_dist image)`` on ``n`` questions per task."""
    from .data import messages_for
    from .evaluate import generate_answers, score_answers

    base = model.media
    metrics: dict[str, dict[str, float]] = {}
    jobs = [(split, task) for split in splits.values() for task in split.tasks]
    bar = jobs
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(jobs, desc="score splits", leave=False, dynamic_ncols=True)
    tokens: list[int] = []
    try:
        for split, task in bar:
            model.media = split.media(base)
            samples = split_samples(split, task, n)
            convs = [messages_for(s.media, s.question, media_options=model.media.options(s.is_video)) for s in samples]
            answers = generate_answers(model, tokenizer, convs)
            metrics.setdefault(split.name, {})[task] = round(score_answers(samples, answers)[0], 4)
            if split.name == "in_dist" and task in ("count", "find"):
                tokens += visual_tokens(model.media, samples)
    finally:
        model.media = base
    return metrics, (sum(tokens) / len(tokens) if tokens else float("nan"))


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------
def _run_dir(out: str | Path, variant: str, seed: int) -> Path:
    return Path(out) / f"{variant}-s{seed}"


def _eval_key(config: AblationConfig, eval_n: int, splits: Mapping[str, Split]) -> str:
    payload = {"weights": config.fingerprint(len(config.stages) - 1), "eval_n": eval_n,
               "splits": [s.to_dict() for s in splits.values()]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def copy_shared(config: AblationConfig, out_root: str | Path) -> list[str]:
    """Copy the baseline run's checkpoints of the stages this variant shares (same fingerprint) into the
    variant's run directory, where ``loop.train`` resumes them. Returns the stage keys copied."""
    if config.variant == "baseline":
        return []
    src = _run_dir(out_root, "baseline", config.seed)
    dst = Path(config.out)
    copied = []
    for i, key in enumerate(shared_stages(config.variant, config.stages)):
        meta = src / f"{key}.json"
        if (dst / f"{key}.json").is_file():
            continue
        if not meta.is_file() or json.loads(meta.read_text()).get("fingerprint") != config.fingerprint(i):
            break
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / f"{key}.safetensors", dst / f"{key}.safetensors")
        shutil.copyfile(meta, dst / f"{key}.json")
        copied.append(key)
    return copied


def find_results(start: str | Path | None = None) -> Path:
    """``experiments/ablations/results.json`` of this checkout: looked for from ``start`` (default the
    working directory) upwards, then beside the package (an editable install's repository)."""
    here = Path(start or Path.cwd()).resolve()
    for root in (here, *here.parents, Path(__file__).resolve().parents[2]):
        if (root / DEFAULT_RESULTS).is_file():
            return root / DEFAULT_RESULTS
    raise FileNotFoundError(f"no {DEFAULT_RESULTS} above {here} nor beside the package: run `make ablations`")


def run_one(variant: str, seed: int, *, out: str | Path = DEFAULT_OUT, steps_scale: float = 1.0, eval_n: int = 100,
            smoke: bool = False, splits: Mapping[str, Split] = SPLITS, threads: int | None = 1, workers: int = 1,
            progress: bool = True) -> dict[str, Any]:
    """Train (resuming finished stages) and score one variant x seed; the run's record (``run.json``).
    A run whose ``run.json`` was made by the same weights and scoring is read back, not redone."""
    run_dir = _run_dir(out, variant, seed)
    config = ablation_config(variant, seed, run_dir, steps_scale=steps_scale, smoke=smoke, threads=threads,
                             workers=workers, progress=progress)
    key = _eval_key(config, eval_n, splits)
    record_path = run_dir / "run.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("key") == key:
            return record
    copied = copy_shared(config, out)
    if progress:
        print(f"== {variant} seed {seed}: {run_dir}" + (f" (stages {', '.join(copied)} from the baseline)"
                                                          if copied else ""), flush=True)
    result = train(config)
    t0 = time.perf_counter()
    metrics, tokens = evaluate_splits(result["model"], result["tokenizer"], eval_n, splits, progress=progress)
    shared = shared_stages(variant, config.stages) if variant != "baseline" else []
    record = {"variant": variant, "seed": seed, "steps": sum(s.steps for s in config.stages),
              "stage_steps": {s.key: s.steps for s in config.stages},
              "train_seconds": round(sum(result["seconds"].values()), 1),
              "stage_seconds": result["seconds"], "eval_seconds": round(time.perf_counter() - t0, 1),
              "visual_tokens_per_image": round(tokens, 3), "metrics": metrics, "shared_stages": shared,
              "parameters": sum(p.numel() for p in result["model"].parameters()), "key": key}
    run_dir.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def _order(variants: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int]]:
    """Baselines first (the other runs copy their shared stages), then variant by variant."""
    vs = sorted(variants, key=lambda v: v != "baseline")
    return [(v, s) for v in vs for s in seeds]


def run_all(variants: Sequence[str] = VARIANTS, seeds: Sequence[int] = (0, 1, 2), *, out: str | Path = DEFAULT_OUT,
            steps_scale: float = 1.0, eval_n: int = 100, smoke: bool = False, jobs: int = 1, threads: int = 1,
            workers: int = 1, progress: bool = True) -> list[dict]:
    """Every variant x seed (``run_one``). ``jobs`` > 1: that many runs at once, each its own process
    (``--one``), logging to its run directory; a run that shares stages waits for its seed's baseline."""
    for v in variants:
        _check_variant(v)
    order = _order(variants, seeds)
    kw = dict(out=out, steps_scale=steps_scale, eval_n=eval_n, smoke=smoke, threads=threads, workers=workers)
    if jobs <= 1:
        return [run_one(v, s, progress=progress, **kw) for v, s in order]
    return _run_parallel(order, jobs, kw, progress)


def _run_parallel(order: list[tuple[str, int]], jobs: int, kw: dict, progress: bool) -> list[dict]:
    pending, running, done = list(order), {}, {}
    env = {**os.environ, "OMP_NUM_THREADS": str(kw["threads"])}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(order), desc="ablation runs", dynamic_ncols=True)
    try:
        while pending or running:
            for job in list(pending):
                if len(running) >= jobs:
                    break
                v, s = job
                waits = v != "baseline" and ("baseline", s) in order and ("baseline", s) not in done \
                    and shared_stages(v, ABLATION_STAGES)
                if waits:
                    continue
                pending.remove(job)
                run_dir = _run_dir(kw["out"], v, s)
                run_dir.mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, "-m", "qwenvl_study.train.ablations", "--one", f"{v}:{s}", "--out", str(kw["out"]),
                       "--steps-scale", str(kw["steps_scale"]), "--eval-n", str(kw["eval_n"]), "--threads",
                       str(kw["threads"]), "--workers", str(kw["workers"]), "--no-progress"] + (["--smoke"] if kw["smoke"] else [])
                log = open(run_dir / "log.txt", "a")
                running[job] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
                if bar is not None:
                    bar.set_postfix_str(", ".join(f"{a}-s{b}" for a, b in running))
            time.sleep(0.5)
            for job, (proc, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[job]
                if proc.returncode:
                    raise RuntimeError(f"run {job[0]} seed {job[1]} failed (exit {proc.returncode}); see "
                                       f"{_run_dir(kw['out'], *job) / 'log.txt'}")
                done[job] = json.loads((_run_dir(kw["out"], *job) / "run.json").read_text())
                if bar is not None:
                    bar.update(1)
    finally:
        for proc, log in running.values():
            proc.terminate()
            log.close()
        if bar is not None:
            bar.close()
    return [done[j] for j in _order(sorted({v for v, _ in done}, key=VARIANTS.index), sorted({s for _, s in done}))
            if j in done]


def results_document(runs: list[dict], *, scale: float, eval_n: int, smoke: bool, notes: str = "") -> dict:
    """The results file: runs (without their cache keys), the settings, the splits, the claims, and notes."""
    text = ("fixed_224 squashes every image to 112x112, the course model's largest square (its pixel budget "
            "is 112x112 = 12,544 px), standing for the paper's 224x224; videos to 56x56. 'larger' is scored "
            "at 4x the pixel budget (grids up to twice the training side). Seeds vary the initial weights "
            "and (s > 0) the stages' data. train_seconds counts every stage, a stage shared with the "
            "baseline (same fingerprint) at the seconds it took once.")
    if smoke:
        text = ("SMOKE SCALE: a tiny model trained for a few steps to exercise the pipeline; these numbers are "
                "NOT evidence for or against any claim. " + text)
    if notes:
        text += " " + notes
    return {"scale": scale, "eval_n": eval_n, "model": "smoke" if smoke else "course",
            "notes": text, "splits": {k: s.to_dict() for k, s in SPLITS.items()},
            "claims": {k: {"changes": c, "claim": cl} for k, (c, cl) in CLAIMS.items()},
            "runs": [{k: v for k, v in r.items() if k != "key"} for r in runs]}


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------
_RUN_KEYS = ("variant", "seed", "steps", "train_seconds", "visual_tokens_per_image", "metrics")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate_results(obj: Any) -> None:
    """Check a results document (``results.json`` parsed); ValueError naming the first bad item.

    Top level: ``runs`` (a non-empty list), ``scale`` (> 0), ``eval_n`` (integer >= 1), ``notes`` (text).
    Each run: ``variant`` (one of ``VARIANTS``), ``seed`` (integer >= 0), ``steps`` (integer >= 1),
    ``train_seconds`` (>= 0), ``visual_tokens_per_image`` (> 0), ``metrics``: every split of ``SPLITS``,
    each with exactly its tasks' metrics, every value in [0, 1]; no (variant, seed) twice.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"results must be a JSON object, got {type(obj).__name__}")
    for key in ("runs", "scale", "eval_n", "notes"):
        if key not in obj:
            raise ValueError(f"results: missing top-level key {key!r}")
    if not _number(obj["scale"]) or obj["scale"] <= 0:
        raise ValueError(f"results: 'scale' must be a number > 0, got {obj['scale']!r}")
    if not isinstance(obj["eval_n"], int) or isinstance(obj["eval_n"], bool) or obj["eval_n"] < 1:
        raise ValueError(f"results: 'eval_n' must be an integer >= 1, got {obj['eval_n']!r}")
    if not isinstance(obj["notes"], str):
        raise ValueError(f"results: 'notes' must be a string, got {type(obj['notes']).__name__}")
    runs = obj["runs"]
    if not isinstance(runs, list) or not runs:
        raise ValueError("results: 'runs' must be a non-empty list")
    seen = set()
    for i, run in enumerate(runs):
        where = f"runs[{i}]"
        if not isinstance(run, dict):
            raise ValueError(f"{where}: must be an object, got {type(run).__name__}")
        for key in _RUN_KEYS:
            if key not in run:
                raise ValueError(f"{where}: missing key {key!r}")
        if run["variant"] not in VARIANTS:
            raise ValueError(f"{where}: variant {run['variant']!r} is not one of {', '.join(VARIANTS)}")
        where = f"runs[{i}] ({run['variant']}"
        seed = run["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"{where}): 'seed' must be an integer >= 0, got {seed!r}")
        where += f" seed {seed})"
        if (run["variant"], seed) in seen:
            raise ValueError(f"{where}: this variant and seed appear twice")
        seen.add((run["variant"], seed))
        if not isinstance(run["steps"], int) or isinstance(run["steps"], bool) or run["steps"] < 1:
            raise ValueError(f"{where}: 'steps' must be an integer >= 1, got {run['steps']!r}")
        if not _number(run["train_seconds"]) or run["train_seconds"] < 0:
            raise ValueError(f"{where}: 'train_seconds' must be a number >= 0, got {run['train_seconds']!r}")
        if not _number(run["visual_tokens_per_image"]) or run["visual_tokens_per_image"] <= 0:
            raise ValueError(f"{where}: 'visual_tokens_per_image' must be a number > 0, got "
                             f"{run['visual_tokens_per_image']!r}")
        metrics = run["metrics"]
        if not isinstance(metrics, dict):
            raise ValueError(f"{where}: 'metrics' must be an object of splits")
        for name, split in SPLITS.items():
            if name not in metrics:
                raise ValueError(f"{where}: metrics lack the split {name!r}")
            values = metrics[name]
            if not isinstance(values, dict) or set(values) != set(split.tasks):
                got = sorted(values) if isinstance(values, dict) else values
                raise ValueError(f"{where}: metrics.{name} must hold exactly {list(split.tasks)}, got {got!r}")
            for metric, value in values.items():
                if not _number(value) or not 0 <= value <= 1:
                    raise ValueError(f"{where}: metrics.{name}.{metric} = {value!r} is outside [0, 1]")
        extra = set(metrics) - set(SPLITS)
        if extra:
            raise ValueError(f"{where}: metrics hold unknown splits {sorted(extra)}; known: {list(SPLITS)}")


# ---------------------------------------------------------------------------------------------
# Reading the results: mean ± std over seeds, and a verdict per claim
# ---------------------------------------------------------------------------------------------
# The cells (split, metric) each claim is about.
KEY_CELLS: dict[str, tuple[tuple[str, str], ...]] = {
    "rope1d": (("in_dist", "find"), ("larger", "find"), ("aspect", "find"), ("in_dist", "direction"),
               ("longer_video", "direction")),
    "vit_abs_pos": (("larger", "count"), ("larger", "find"), ("aspect", "count"), ("aspect", "find"),
                    ("in_dist", "find")),
    "fixed_224": (("in_dist", "count"), ("in_dist", "find"), ("aspect", "count"), ("aspect", "find"),
                  ("larger", "find")),
    "no_merge": tuple((s, m) for s in ("in_dist", "larger", "aspect") for m in ("count", "find")) +
                (("in_dist", "direction"), ("longer_video", "direction")),
    "no_video": (("in_dist", "direction"), ("larger", "direction"), ("aspect", "direction"),
                 ("longer_video", "direction")),
}
# "baseline_better": the claim holds when the baseline beats the variant; "not_worse": when the
# variant (4x the tokens) does not beat the baseline (the merge costs little).
EXPECT: dict[str, str] = {"rope1d": "baseline_better", "vit_abs_pos": "baseline_better",
                          "fixed_224": "baseline_better", "no_merge": "not_worse", "no_video": "baseline_better"}


def summarize(results: Mapping[str, Any]) -> dict[str, dict]:
    """``{variant: {"n", "metrics": {split: {metric: (mean, std)}}, "tokens": (mean, std), "seconds": (mean, std)}}``;
    std is the sample standard deviation over seeds (0 for one seed)."""
    by: dict[str, list[dict]] = {}
    for run in results["runs"]:
        by.setdefault(run["variant"], []).append(run)

    def ms(xs: list[float]) -> tuple[float, float]:
        return (statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)

    out = {}
    for v in sorted(by, key=VARIANTS.index):
        runs = by[v]
        metrics = {split: {m: ms([r["metrics"][split][m] for r in runs]) for m in runs[0]["metrics"][split]}
                   for split in runs[0]["metrics"]}
        out[v] = {"n": len(runs), "seeds": sorted(r["seed"] for r in runs), "metrics": metrics,
                  "tokens": ms([r["visual_tokens_per_image"] for r in runs]),
                  "seconds": ms([r["train_seconds"] for r in runs])}
    return out


def margin(std_a: float, std_b: float, mean: float, eval_n: int) -> float:
    """A difference is real when it exceeds 2 x the larger of (the pooled seed std, the evaluation's
    sampling error of a difference between two scores on ``eval_n`` questions, sqrt(2 p (1 - p) / n))."""
    pooled = math.sqrt((std_a ** 2 + std_b ** 2) / 2)
    sampling = math.sqrt(2 * max(mean * (1 - mean), 0.0) / eval_n)
    return 2 * max(pooled, sampling)


def compare(results: Mapping[str, Any], variant: str) -> list[dict]:
    """One row per key cell of ``variant``'s claim: baseline and variant mean ± std, the difference
    (baseline - variant), the margin, whether both score at or below chance (+ the margin)."""
    summary = summarize(results)
    if "baseline" not in summary or variant not in summary:
        return []
    b, v = summary["baseline"]["metrics"], summary[variant]["metrics"]
    rows = []
    for split, metric in KEY_CELLS[variant]:
        (bm, bs), (vm, vs) = b[split][metric], v[split][metric]
        m = margin(bs, vs, (bm + vm) / 2, results["eval_n"])
        chance = CHANCE[metric]
        rows.append({"split": split, "metric": metric, "baseline": bm, "baseline_std": bs, "variant": vm,
                     "variant_std": vs, "diff": bm - vm, "margin": m,
                     "at_chance": bm <= chance + m and vm <= chance + m})
    return rows


def verdict(results: Mapping[str, Any], variant: str) -> tuple[str, str]:
    """``(verdict, reason)`` for the claim ``variant`` tests; verdict is "reproduced at this scale",
    "not reproduced" or "inconclusive".

    Rule, on the claim's key cells (``KEY_CELLS``), a difference counting only beyond ``margin``:
    inconclusive when fewer than 2 seeds of either model, or both models score at or below chance
    (+ the margin) in every key cell (neither has learned what the claim is about); otherwise, for "the baseline is better" claims: reproduced when the
    baseline is better in at least one cell and the variant in none, not reproduced when the variant
    is better in some cell, inconclusive when no cell differs. For no_merge ("little cost"):
    reproduced when the 4x-token variant is better in no cell, not reproduced when it is in any.
    """
    summary = summarize(results)
    if "baseline" not in summary or variant not in summary:
        return "inconclusive", f"no runs of {'baseline' if 'baseline' not in summary else variant}"
    n = min(summary["baseline"]["n"], summary[variant]["n"])
    if n < 2:
        return "inconclusive", f"{n} seed(s): no spread over seeds to judge a difference by"
    rows = compare(results, variant)
    if all(r["at_chance"] for r in rows):
        return "inconclusive", "both models score at or below chance in every key cell"
    better = [r for r in rows if r["diff"] > r["margin"]]
    worse = [r for r in rows if -r["diff"] > r["margin"]]

    def cells(rs: list[dict]) -> str:
        return ", ".join(f"{r['split']}/{r['metric']} {r['baseline']:.2f} vs {r['variant']:.2f} "
                         f"(margin {r['margin']:.2f})" for r in rs)

    if EXPECT[variant] == "not_worse":
        if worse:
            return "not reproduced", f"without the merge the model is better: {cells(worse)}"
        return "reproduced at this scale", ("4x the tokens buys nothing beyond the margin in any key cell"
                                            + (f"; the merged baseline is even better: {cells(better)}" if better else ""))
    if worse:
        return "not reproduced", f"the variant is better: {cells(worse)}"
    if better:
        return "reproduced at this scale", f"the baseline is better: {cells(better)}"
    return "inconclusive", "no key cell differs beyond its margin"


def claim_table(results: Mapping[str, Any], variant: str) -> str:
    """The claim's table as text: every split x metric, baseline and variant mean ± std over seeds,
    the difference (baseline - variant) and its margin; ``*`` marks the claim's key cells and ``>``
    a difference beyond the margin."""
    summary = summarize(results)
    if "baseline" not in summary or variant not in summary:
        return f"(no runs of {'baseline' if 'baseline' not in summary else variant})"
    b, v = summary["baseline"], summary[variant]
    head = (f"{'split':<13} {'metric':<10} {'baseline':>14} {variant:>14} {'diff':>7} {'margin':>7}\n"
            f"{'-' * 13} {'-' * 10} {'-' * 14} {'-' * 14} {'-' * 7} {'-' * 7}")
    lines = [head]
    for split, s in SPLITS.items():
        for metric in s.tasks:
            (bm, bs), (vm, vs) = b["metrics"][split][metric], v["metrics"][split][metric]
            m = margin(bs, vs, (bm + vm) / 2, results["eval_n"])
            key = "*" if (split, metric) in KEY_CELLS[variant] else " "
            beyond = ">" if abs(bm - vm) > m else " "
            lines.append(f"{split:<13} {metric + key:<10} {bm:>6.3f} ± {bs:<4.3f} {vm:>6.3f} ± {vs:<4.3f} "
                         f"{bm - vm:>+7.3f} {m:>6.3f}{beyond}")
    lines.append(f"{'visual tokens / image':<24} {b['tokens'][0]:>14.1f} {v['tokens'][0]:>14.1f}")
    lines.append(f"{'training minutes':<24} {b['seconds'][0] / 60:>14.1f} {v['seconds'][0] / 60:>14.1f}")
    lines.append(f"seeds: baseline {b['seeds']}, {variant} {v['seeds']}; eval_n = {results['eval_n']} per task; "
                 f"* key cell of the claim, > difference beyond the margin")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [n for n in names if n not in VARIANTS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {bad}; choose from {', '.join(VARIANTS)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwenvl_study.train.ablations",
                                     description="The paper's claims in miniature (issue 13): every variant x seed, "
                                                 "trained with the course recipe and scored on four splits.")
    parser.add_argument("--variants", type=_names, default=list(VARIANTS), help="comma-separated (default: all six)")
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="comma-separated run seeds (default 0,1,2)")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every stage's steps, all variants alike")
    parser.add_argument("--eval-n", type=int, default=100, help="questions per task per split")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="run directories (checkpoints, run.json)")
    parser.add_argument("--results", default=str(DEFAULT_RESULTS), help="the results file to write")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each its own process (2 on 2 cores)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--workers", type=int, default=1, help="data worker processes per run")
    parser.add_argument("--smoke", action="store_true", help="tiny width, batches of 4: exercises the pipeline (tests)")
    parser.add_argument("--notes", default="", help="text appended to the results' notes")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # VARIANT:SEED, one run (--jobs children)
    args = parser.parse_args(argv)
    if not args.steps_scale > 0:
        parser.error(f"--steps-scale must be > 0, got {args.steps_scale}")
    if args.eval_n < 1:
        parser.error(f"--eval-n must be >= 1, got {args.eval_n}")
    kw = dict(out=args.out, steps_scale=args.steps_scale, eval_n=args.eval_n, smoke=args.smoke, threads=args.threads,
              workers=args.workers)
    if args.one:
        variant, seed = args.one.split(":")
        run_one(variant, int(seed), progress=not args.no_progress, **kw)
        return 0
    t0 = time.perf_counter()
    runs = run_all(args.variants, args.seeds, jobs=args.jobs, progress=not args.no_progress, **kw)
    doc = results_document(runs, scale=args.steps_scale, eval_n=args.eval_n, smoke=args.smoke, notes=args.notes)
    doc["wall_seconds"] = round(time.perf_counter() - t0, 1)
    validate_results(doc)
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(runs)} runs in {doc['wall_seconds']:.0f} s; results in {path}")
    for v in args.variants:
        if v != "baseline":
            print(f"{v}: {verdict(doc, v)[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
