"""The parity checks, each written once: build both sides, compare, return the measured numbers.

A check runs one of our pieces and its reference (transformers or qwen-vl-utils, built by
``reference.py`` from the same config, weights and inputs) and returns a :class:`Check`: what we
computed, what the reference computed, the largest absolute difference and whether it is within
the tolerance (or bit-equal, for ids, sizes and text). The tests assert on it (``tests/``), the tour
prints it (``tour.py``, ``make demo``) and the notebooks show it, so a claim and its proof cannot
drift apart. A check whose reference package is not installed raises
``reference.ReferenceUnavailable`` (a ``ModuleNotFoundError``): the tour reports the line as
"not checked: <package> is not installed" and goes on.

Module checks accept ``pair=(ours, theirs)`` when the caller has built the two models already
(a test fixture, a notebook cell that shows the state-dict load); without it they build the pair
from ``config`` with the same weights on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import reference as ref

__all__ = [
    "Check",
    "parameter_count",
    "smart_resize",
    "qwen_vl_utils_resize",
    "preprocess_image",
    "fetch_image",
    "fetch_video",
    "video_tokens",
    "vision_position_ids",
    "vision_rotary",
    "mrope_ids",
    "cu_seqlens",
    "vision_tower",
    "vision_pair",
    "model_logits",
    "greedy_generation",
    "chat_template",
    "prepare_inputs",
    "tile_grid",
    "pixel_shuffle",
    "qformer",
    "qformer_pair",
    "qwen_vl_resampler",
    "llava_projector",
    "llava_pair",
    "clip_loss",
]


@dataclass(frozen=True)
class Check:
    """One comparison of ours against the reference. ``max_abs_error`` is None where the comparison
    is exact by nature (text, sizes, counts); ``tolerance`` None means bit-equal was required."""

    name: str
    ours: Any
    reference: Any
    max_abs_error: float | None
    ok: bool
    tolerance: float | None = None
    details: dict = field(default_factory=dict)  # secondary measured numbers (a second tensor's error)

    def __str__(self) -> str:
        err = "" if self.max_abs_error is None else f", max |ours - ref| = {self.max_abs_error:.1e}"
        bound = "bit-equal" if self.tolerance is None else f"<= {self.tolerance:g}"
        return f"{'ok' if self.ok else 'FAILED'}: {self.name}{err} ({bound})"


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape:
        return float("inf")
    return (a - b).abs().max().item() if a.numel() else 0.0


def _close(name: str, ours: torch.Tensor, theirs: torch.Tensor, tolerance: float, **details) -> Check:
    err = _max_err(ours, theirs)
    return Check(name, ours, theirs, err, err <= tolerance, tolerance, details)


def _exact(name: str, ours: Any, theirs: Any, **details) -> Check:
    if isinstance(ours, torch.Tensor):
        same = isinstance(theirs, torch.Tensor) and ours.shape == theirs.shape and torch.equal(ours, theirs)
        err = _max_err(ours, theirs) if ours.is_floating_point() else None
    else:
        same, err = ours == theirs, None
    return Check(name, ours, theirs, err, bool(same), None, details)


# --- lesson 01: resolution and patching -----------------------------------------------------------
def parameter_count(config) -> Check:
    """``config.count_parameters`` (arithmetic on the config) vs the parameters of transformers' model on meta."""
    from ..config import count_parameters

    return _exact("parameters (vision + language)", count_parameters(config), ref.hf_parameter_count(config))


def smart_resize(height: int, width: int, **bounds) -> Check:
    """``resolution.smart_resize`` (transformers' rule) vs the image processor's ``smart_resize``."""
    from ..resolution import smart_resize as ours

    return _exact(f"smart_resize({height}, {width})", ours(height, width, **bounds),
                  ref.hf_smart_resize(height, width, **bounds))


def qwen_vl_utils_resize(height: int, width: int, **bounds) -> Check:
    """``smart_resize(rule="qwen-vl-utils")`` vs qwen-vl-utils 0.0.8's own ``smart_resize``."""
    from ..resolution import smart_resize as ours

    qvu = ref.qwen_vl_utils()
    return _exact(f"smart_resize({height}, {width}), qwen-vl-utils rule", ours(height, width, rule="qwen-vl-utils",
                                                                              **bounds),
                  qvu.smart_resize(height, width, **bounds))


def preprocess_image(image, *, tolerance: float = 1e-6, **bounds) -> Check:
    """``patching.preprocess_image`` vs ``Qwen2VLImageProcessorPil``: the grid bit-equal, pixel_values within
    ``tolerance``. ``image`` is a PIL image or a path (the reference gets the opened file)."""
    from PIL import Image

    from ..patching import preprocess_image as ours

    pv, grid = ours(image, **bounds)
    hpv, hgrid = ref.hf_preprocess(image if isinstance(image, Image.Image) else Image.open(image), **bounds)
    err = _max_err(pv, hpv)
    same_grid = torch.equal(grid, hgrid)
    return Check("preprocess_image: pixel_values and grid_thw", (pv, grid), (hpv, hgrid), err,
                 same_grid and pv.dtype == hpv.dtype and err <= tolerance, tolerance, {"grid_equal": same_grid})


def fetch_image(ele: dict, **options) -> Check:
    """``media.fetch_image`` vs qwen-vl-utils 0.0.8's ``fetch_image``: size, mode and pixels bit-equal."""
    from ..media import fetch_image as ours

    qvu = ref.qwen_vl_utils()
    mine, theirs = ours(ele, **options), qvu.fetch_image(ele)
    same = mine.mode == theirs.mode and mine.size == theirs.size and np.array_equal(np.asarray(mine), np.asarray(theirs))
    return Check("fetch_image vs qwen-vl-utils", mine, theirs, None, same)


def fetch_video(ele: dict) -> Check:
    """``media.fetch_video`` vs qwen-vl-utils' ``fetch_video`` (its reader swapped for PyAV): frames bit-equal."""
    from ..media import fetch_video as ours

    frames, plan = ours(ele)
    theirs = ref.qvu_fetch_video(ele)
    return _exact("fetch_video vs qwen-vl-utils", frames, theirs, plan=plan)


def video_tokens(total_frames: int, video_fps: float, height: int, width: int, *, defaults: str = "0.0.8") -> Check:
    """Merged tokens of a video (``media.plan_video``, no pixel decoded) vs qwen-vl-utils' own frame choice and
    frame size (``reference.qvu_plan_video``), counted by transformers' processor (2 frames x 2x2 patches)."""
    from ..media import plan_video

    indices, (rh, rw) = ref.qvu_plan_video(total_frames, video_fps, height, width)
    theirs = len(indices) // 2 * ref.hf_image_processor().get_number_of_image_patches(rh, rw, {}) // 4
    ours = plan_video(total_frames, video_fps, height, width, defaults=defaults).tokens
    return _exact(f"video tokens, preset {defaults}", ours, theirs)


# --- lessons 02-03: positions ---------------------------------------------------------------------
def vision_position_ids(grid_thw, spatial_merge_size: int = 2) -> Check:
    """``rope.vision_position_ids`` vs the (row, col) ids transformers' vision tower builds: bit-equal."""
    from ..rope import vision_position_ids as ours

    grid = torch.as_tensor(grid_thw).reshape(-1, 3)
    return _exact("vision (row, col) ids", ours(grid, spatial_merge_size=spatial_merge_size),
                  ref.hf_vision_position_ids(grid, spatial_merge_size))


def vision_rotary(position_ids: torch.Tensor, q: torch.Tensor, k: torch.Tensor, *, tolerance: float = 1e-6) -> Check:
    """2D-RoPE: ``vision_cos_sin`` + ``apply_rotary_vision`` vs transformers' on the same q, k. The error is the
    worst of cos, sin, rotated q and rotated k."""
    from ..rope import apply_rotary_vision, vision_cos_sin

    head_dim = q.shape[-1]
    cos, sin = vision_cos_sin(position_ids, head_dim)
    hcos, hsin = ref.hf_vision_cos_sin(position_ids, head_dim)
    ours, theirs = apply_rotary_vision(q, k, cos, sin), ref.hf_apply_rotary_vision(q, k, hcos, hsin)
    errors = {"cos": _max_err(cos, hcos), "sin": _max_err(sin, hsin),
              "q": _max_err(ours[0], theirs[0]), "k": _max_err(ours[1], theirs[1])}
    err = max(errors.values())
    return Check(f"2D-RoPE on q/k (head_dim {head_dim})", ours, theirs, err, err <= tolerance, tolerance, errors)


def mrope_ids(batch: dict) -> Check:
    """``rope.mrope_position_ids`` vs transformers' ``get_rope_index`` on the real (unpadded) tokens: bit-equal.
    ``details``: both deltas and whether ``delta_5x = ours + L - n_real`` (5.x counts from the unpadded length)."""
    from ..rope import mrope_position_ids

    ours, deltas = mrope_position_ids(**batch)
    theirs, hf_deltas = ref.hf_rope_index(**batch)
    mask = batch.get("attention_mask")
    real = torch.ones(ours.shape[1:], dtype=torch.bool) if mask is None else mask.bool()
    padding = real.shape[1] - real.sum(-1, keepdim=True)
    return _exact("M-RoPE ids on real tokens", ours[:, real], theirs[:, real], ids=ours, reference_ids=theirs,
                  deltas=deltas, reference_deltas=hf_deltas,
                  deltas_relation=torch.equal(hf_deltas.reshape(deltas.shape), deltas + padding))


# --- lesson 04: the vision encoder ----------------------------------------------------------------
def cu_seqlens(grid_thw) -> Check:
    """``attention.cu_seqlens_from_grid`` vs the segment bounds transformers' vision tower builds: bit-equal."""
    from ..attention import cu_seqlens_from_grid

    grid = torch.as_tensor(grid_thw).reshape(-1, 3)
    return _exact("cu_seqlens", cu_seqlens_from_grid(grid), ref.hf_vision_cu_seqlens(grid))


def vision_pair(vision, backend: str = "eager", *, seed: int = 0, std: float = 0.1):
    """Our tower with random weights (every tensor random, ``std``) and transformers' holding the same tensors."""
    from ..vision import VisionTransformer

    ours = VisionTransformer.random(vision, seed=seed, std=std, attn_backend=backend)
    return ours, ref.hf_vision_model(vision, ours.state_dict(), attn_implementation=backend)


def vision_tower(pixel_values: torch.Tensor, grid_thw, *, vision=None, backend: str = "eager", pair=None,
                 tolerance: float = 1e-5) -> Check:
    """The packed ViT vs ``Qwen2VisionTransformerPretrainedModel``: the merged output within ``tolerance``;
    ``details`` has the last hidden state's error and every layer's (``layer_errors``, embeddings first)."""
    ours, theirs = pair if pair is not None else vision_pair(vision, backend)
    grid = torch.as_tensor(grid_thw).reshape(-1, 3)
    with torch.no_grad():
        out = ours(pixel_values, grid, return_hidden_states=True)
        hf = ref.hf_vision_forward(theirs, pixel_values, grid, output_hidden_states=True)
    layers = [_max_err(a, b) for a, b in zip(out.hidden_states, hf.hidden_states)]
    same_depth = len(out.hidden_states) == len(hf.hidden_states)
    return _close(f"vision tower ({backend}): merged output", out.merged, hf.pooler_output, tolerance,
                  output=out, last_hidden_state=_max_err(out.last_hidden_state, hf.last_hidden_state),
                  layer_errors=layers, same_depth=same_depth)


# --- lessons 05-06: the whole model ---------------------------------------------------------------
def model_logits(pair, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 tolerance: float = 1e-4, **pixels) -> Check:
    """``Qwen2VL`` vs ``Qwen2VLForConditionalGeneration`` (``pair = reference.model_pair(config)``): logits on the
    real positions within ``tolerance``."""
    from ..chat import mm_token_type_ids

    ours, hf = pair
    cfg = ours.config
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    with torch.no_grad():
        mine = ours(input_ids, attention_mask, **pixels)
        with ref.quiet():
            theirs = hf(input_ids=input_ids, attention_mask=attention_mask, **pixels,
                        mm_token_type_ids=mm_token_type_ids(input_ids, cfg.image_token_id, cfg.video_token_id)).logits
    if mine.shape != theirs.shape:
        return Check("logits", mine, theirs, float("inf"), False, tolerance)
    return _close("logits on real positions", mine[mask.bool()], theirs[mask.bool()], tolerance,
                  logits=mine, reference_logits=theirs)


def greedy_generation(pair, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                      max_new_tokens: int = 20, **pixels) -> Check:
    """Greedy tokens of ``Qwen2VL.generate`` (KV cache) vs transformers' ``generate``: equal."""
    ours, hf = pair
    mine = ours.generate(input_ids, attention_mask, **pixels, max_new_tokens=max_new_tokens)
    theirs = ref.hf_generate(hf, ours.config, input_ids, attention_mask, **pixels, max_new_tokens=max_new_tokens,
                             do_sample=False)
    return _exact(f"greedy {max_new_tokens} tokens", mine, theirs)


# --- lessons 07-08: chat ------------------------------------------------------------------------
def chat_template(messages: list, **options) -> Check:
    """``chat.build_prompt`` vs the published template rendered by transformers' Jinja: the same text."""
    from ..chat import build_prompt

    return _exact("build_prompt vs the Jinja template", build_prompt(messages, **options),
                  ref.hf_render_chat(messages, **options))


def prepare_inputs(messages: list, tokenizer=None, **options) -> Check:
    """``chat.prepare_inputs`` vs ``Qwen2VLProcessor``: every key the processor returns, same dtype, bit-equal.
    ``tokenizer`` None: ours runs with its default (the real Qwen2-VL tokenizer) and the processor is given
    that one. ``details``: per key, the max |diff| (0 for ids)."""
    from ..chat import prepare_inputs as ours
    from ..tokenizer import qwen2_tokenizer

    mine = ours(messages, **options) if tokenizer is None else ours(messages, tokenizer, **options)
    theirs = ref.hf_prepare_inputs(messages, qwen2_tokenizer() if tokenizer is None else tokenizer, **options)
    per_key, same = {}, set(theirs) <= set(mine)
    for key, value in theirs.items():
        if key in mine:
            per_key[key] = _max_err(mine[key], value)
            same = same and mine[key].dtype == value.dtype and torch.equal(mine[key], value)
    return Check("prepare_inputs vs Qwen2VLProcessor", mine, theirs, max(per_key.values(), default=0.0), same,
                 None, per_key)


# --- lessons 09-10: the family ----------------------------------------------------------------------
def tile_grid(width: int, height: int, **options) -> Check:
    """``family.internvl.internvl_tile_grid`` vs transformers' InternVL tiling: the same (columns, rows)."""
    from ..family.internvl import internvl_tile_grid

    return _exact(f"InternVL2 tiles of {width}x{height}", internvl_tile_grid(width, height, **options),
                  ref.hf_tile_grid(width, height, **options))


def pixel_shuffle(x: torch.Tensor) -> Check:
    """InternVL's pixel shuffle vs ``InternVLModel.pixel_shuffle``: bit-equal; ``details``: the inverse is exact."""
    from ..family.internvl import pixel_shuffle as ours, pixel_unshuffle

    y = ours(x)
    return _exact("pixel shuffle", y, ref.hf_pixel_shuffle(x), inverse_exact=torch.equal(pixel_unshuffle(y), x))


def qformer_pair(config):
    """transformers' ``Blip2QFormerModel`` (its own random init) and ours holding its state dict (strict)."""
    from ..family.blip2 import QFormerModel

    theirs = ref.hf_qformer(config)
    ours = QFormerModel(config)
    ours.load_state_dict(theirs.state_dict(), strict=True)  # same names, same shapes
    return ours, theirs


def qformer(embeds: torch.Tensor, image: torch.Tensor, mask: torch.Tensor | None = None,
            query_length: int | None = None, *, config=None, pair=None, tolerance: float = 1e-5) -> Check:
    """Our Q-Former vs ``Blip2QFormerModel`` on the same weights under ``mask`` (None: queries only)."""
    ours, theirs = pair if pair is not None else qformer_pair(config)
    n_query = ours.config.num_query_tokens if query_length is None else query_length
    with torch.no_grad():
        mine = ours(embeds, image) if query_length is None and mask is None else \
            ours(embeds, image, mask, query_length=n_query)
        hf = ref.hf_qformer_forward(theirs, embeds, image, mask, n_query)
    return _close("Q-Former vs Blip2QFormerModel", mine, hf, tolerance)


def qwen_vl_resampler(x: torch.Tensor, *, config=None, resampler=None, tolerance: float = 1e-5) -> Check:
    """Our Qwen-VL resampler vs the published ``Resampler.forward`` recomputed for its weights;
    ``details['pos_embed']``: the sin-cos table's error against the published numpy one."""
    from ..family.qwen_vl import QwenVLResampler

    resampler = resampler if resampler is not None else QwenVLResampler(config)
    with torch.no_grad():
        ours = resampler(x)
        theirs, published_pos = ref.qwen_vl_resampler_reference(resampler, x)
    return _close("Qwen-VL resampler vs the published forward", ours, theirs, tolerance,
                  pos_embed=_max_err(resampler.pos_embed, published_pos))


def llava_pair(config):
    """transformers' ``LlavaMultiModalProjector`` and ours holding its state dict (strict)."""
    from ..family.llava import LlavaMultiModalProjector

    theirs = ref.hf_llava_projector(config)
    ours = LlavaMultiModalProjector(config)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs


def llava_projector(x: torch.Tensor, *, config=None, pair=None, tolerance: float = 1e-5) -> Check:
    """The LLaVA-1.5 MLP projector vs ``LlavaMultiModalProjector`` on the same weights."""
    ours, theirs = pair if pair is not None else llava_pair(config)
    with torch.no_grad():
        return _close("LLaVA-1.5 projector vs LlavaMultiModalProjector", ours(x), theirs(x), tolerance)


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: float, *,
              tolerance: float = 1e-5) -> Check:
    """The symmetric InfoNCE loss vs ``CLIPModel``'s loss on the same features and scale."""
    from ..family.clip import clip_loss as ours

    a = ours(image_features, text_features, logit_scale).item()
    b = ref.hf_clip_loss(image_features, text_features, logit_scale).item()
    return Check("CLIP InfoNCE vs CLIPModel's loss", a, b, abs(a - b), abs(a - b) <= tolerance, tolerance)
