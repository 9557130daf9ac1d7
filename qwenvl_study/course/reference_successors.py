"""The transformers counterparts of ``qwenvl_study.successors`` (lesson 13): Qwen2.5-VL and Qwen3-VL.

A separate file beside ``reference.py`` (same role, same conventions: transformers imported lazily,
tiny random configs, every tensor random so a missing one cannot pass a parity check).

Reference files: transformers/models/qwen2_5_vl/{configuration,modeling}_qwen2_5_vl.py,
transformers/models/qwen3_vl/{configuration,modeling,processing,video_processing}_qwen3_vl.py,
transformers/models/qwen2_vl/image_processing_pil_qwen2_vl.py, transformers/vision_utils.py.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Sequence

import torch

from ..resolution import PRESETS
from ..rope import IMAGE_TOKEN_ID, VIDEO_TOKEN_ID
from .reference import quiet, video_processor_self

__all__ = [
    "randomize",
    "hf25_vision_model",
    "hf25_window_index",
    "hf25_rope_index",
    "hf3_vision_model",
    "hf3_text_rotary_cos_sin",
    "hf3_rope_index",
    "hf3_timestamps",
    "hf3_video_placeholder",
    "hf_image_tokens",
    "hf_image_patch_count",
    "hf_video_tokens",
]


def randomize(module: torch.nn.Module, *, seed: int = 0, std: float = 0.1) -> torch.nn.Module:
    """Every parameter N(0, std²), norm weights 1 + that (transformers' init leaves biases 0, norms 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * std
            p.copy_(noise + 1 if ("norm" in name or "ln_q" in name) and name.endswith("weight") else noise)
    return module.eval()


# --- Qwen2.5-VL -----------------------------------------------------------------------------------
def hf25_vision_model(*, depth: int = 4, hidden_size: int = 32, intermediate_size: int = 48, num_heads: int = 2,
                      out_hidden_size: int = 24, fullatt_block_indexes: Sequence[int] = (1, 3), window_size: int = 112,
                      seed: int = 0, attn_implementation: str = "eager") -> Any:
    """A tiny random ``Qwen2_5_VisionTransformerPretrainedModel`` (eval)."""
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    with quiet():
        cfg = Qwen2_5_VLVisionConfig(depth=depth, hidden_size=hidden_size, intermediate_size=intermediate_size,
                                     num_heads=num_heads, out_hidden_size=out_hidden_size,
                                     fullatt_block_indexes=list(fullatt_block_indexes), window_size=window_size)
        cfg._attn_implementation = attn_implementation
        torch.manual_seed(seed)
        return randomize(Qwen2_5_VisionTransformerPretrainedModel._from_config(cfg), seed=seed)


def hf25_window_index(grid_thw: torch.Tensor, *, window_size: int = 112, patch_size: int = 14,
                      spatial_merge_size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """``vision_utils.get_vision_window_index`` (what Qwen2.5-VL's ViT calls)."""
    from transformers.vision_utils import get_vision_window_index

    return get_vision_window_index(torch.as_tensor(grid_thw), spatial_merge_size=spatial_merge_size,
                                   window_size=window_size, patch_size=patch_size)


@functools.lru_cache(maxsize=8)
def _hf25_model(spatial_merge_size: int, tokens_per_second: int) -> Any:
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

    with quiet():
        cfg = Qwen2_5_VLConfig(vision_config=dict(depth=1, hidden_size=32, num_heads=2, intermediate_size=32,
                                                  out_hidden_size=32, spatial_merge_size=spatial_merge_size,
                                                  tokens_per_second=tokens_per_second),
                               text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                num_key_value_heads=1, intermediate_size=32, vocab_size=151936,
                                                rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                                 "mrope_section": [2, 3, 3]}))
        with torch.device("meta"):
            return Qwen2_5_VLModel(cfg).eval()


def hf25_rope_index(input_ids: torch.Tensor, image_grid_thw=None, video_grid_thw=None, second_per_grid_ts=None,
                    attention_mask=None, *, spatial_merge_size: int = 2, tokens_per_second: int = 2
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers 5.x ``Qwen2_5_VLModel.get_rope_index`` (meta-device model, tiny config)."""
    from ..chat import mm_token_type_ids

    model = _hf25_model(spatial_merge_size, tokens_per_second)
    spg = None if second_per_grid_ts is None else torch.as_tensor(second_per_grid_ts, dtype=torch.float32)
    with torch.no_grad():
        return model.get_rope_index(input_ids, mm_token_type_ids(input_ids, IMAGE_TOKEN_ID, VIDEO_TOKEN_ID),
                                    image_grid_thw=image_grid_thw, video_grid_thw=video_grid_thw,
                                    second_per_grid_ts=spg, attention_mask=attention_mask)


# --- Qwen3-VL -------------------------------------------------------------------------------------
def hf3_vision_model(*, depth: int = 4, hidden_size: int = 32, intermediate_size: int = 48, num_heads: int = 2,
                     out_hidden_size: int = 24, num_position_embeddings: int = 36,
                     deepstack_visual_indexes: Sequence[int] = (0, 2), seed: int = 0,
                     attn_implementation: str = "eager") -> Any:
    """A tiny random ``Qwen3VLVisionModel`` (eval)."""
    from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLVisionConfig
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLVisionModel

    with quiet():
        cfg = Qwen3VLVisionConfig(depth=depth, hidden_size=hidden_size, intermediate_size=intermediate_size,
                                  num_heads=num_heads, out_hidden_size=out_hidden_size,
                                  num_position_embeddings=num_position_embeddings,
                                  deepstack_visual_indexes=list(deepstack_visual_indexes))
        cfg._attn_implementation = attn_implementation
        torch.manual_seed(seed)
        return randomize(Qwen3VLVisionModel._from_config(cfg), seed=seed)


@functools.lru_cache(maxsize=8)
def _hf3_text_rotary(head_dim: int, theta: float, section: tuple[int, int, int]) -> Any:
    from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLTextConfig
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextRotaryEmbedding

    with quiet():
        cfg = Qwen3VLTextConfig(head_dim=head_dim, hidden_size=2 * head_dim, num_attention_heads=2,
                                rope_parameters={"rope_type": "default", "rope_theta": theta,
                                                 "mrope_section": list(section), "mrope_interleaved": True})
        return Qwen3VLTextRotaryEmbedding(cfg)


def hf3_text_rotary_cos_sin(position_ids: torch.Tensor, head_dim: int = 128, theta: float = 5e6,
                            mrope_section: Sequence[int] = (24, 20, 20)) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin [B, L, head_dim]`` from transformers' ``Qwen3VLTextRotaryEmbedding`` for ``[3, B, L]`` ids."""
    return _hf3_text_rotary(head_dim, float(theta), tuple(mrope_section))(torch.zeros(1), position_ids)


@functools.lru_cache(maxsize=4)
def _hf3_model(spatial_merge_size: int) -> Any:
    from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLConfig
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLModel

    with quiet():
        cfg = Qwen3VLConfig(vision_config=dict(depth=1, hidden_size=32, num_heads=2, intermediate_size=32,
                                               out_hidden_size=32, spatial_merge_size=spatial_merge_size,
                                               deepstack_visual_indexes=[0]),
                            text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                             num_key_value_heads=1, head_dim=16, intermediate_size=32,
                                             rope_parameters={"rope_type": "default", "rope_theta": 5e6,
                                                              "mrope_section": [4, 2, 2],
                                                              "mrope_interleaved": True}))
        with torch.device("meta"):
            return Qwen3VLModel(cfg).eval()


def hf3_rope_index(input_ids: torch.Tensor, image_grid_thw=None, video_grid_thw=None, attention_mask=None, *,
                   spatial_merge_size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers 5.x ``Qwen3VLModel.get_rope_index`` (meta-device model, tiny config)."""
    from ..chat import mm_token_type_ids

    model = _hf3_model(spatial_merge_size)
    vg = None if video_grid_thw is None else torch.as_tensor(video_grid_thw).clone()  # it writes into its copy
    with torch.no_grad():
        return model.get_rope_index(input_ids=input_ids,
                                    mm_token_type_ids=mm_token_type_ids(input_ids, IMAGE_TOKEN_ID, VIDEO_TOKEN_ID),
                                    image_grid_thw=image_grid_thw, video_grid_thw=vg, attention_mask=attention_mask)


def hf3_timestamps(frame_indices: Sequence[int], fps: float, temporal_patch_size: int = 2) -> list[float]:
    """``Qwen3VLProcessor._calculate_timestamps`` (unbound: the processor needs a tokenizer)."""
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

    return Qwen3VLProcessor._calculate_timestamps(None, list(frame_indices), fps, temporal_patch_size)


def hf3_video_placeholder(grid_thw: Sequence[int], frame_indices: Sequence[int], fps: float) -> str:
    """``Qwen3VLProcessor.replace_video_token`` for one video (unbound, with the published special tokens)."""
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor
    from transformers.video_utils import VideoMetadata

    meta = VideoMetadata(total_num_frames=max(frame_indices) + 1, fps=fps, frames_indices=list(frame_indices))
    fake = types.SimpleNamespace(video_processor=types.SimpleNamespace(merge_size=2, temporal_patch_size=2),
                                 video_token="<|video_pad|>", vision_start_token="<|vision_start|>",
                                 vision_end_token="<|vision_end|>")
    fake._calculate_timestamps = functools.partial(Qwen3VLProcessor._calculate_timestamps, fake)
    inputs = {"video_grid_thw": torch.tensor([list(grid_thw)]), "video_metadata": [meta]}
    with quiet():
        return Qwen3VLProcessor.replace_video_token(fake, inputs, 0)


# --- token counts: the processors configured with each model's defaults ----------------------------
@functools.lru_cache(maxsize=8)
def _hf_image_processor(model: str) -> Any:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    p = PRESETS[model]
    with quiet():
        return Qwen2VLImageProcessorPil(patch_size=p.patch_size, merge_size=p.merge_size,
                                        size={"shortest_edge": p.min_pixels, "longest_edge": p.max_pixels},
                                        image_mean=list(p.image_mean), image_std=list(p.image_std))


def hf_image_tokens(height: int, width: int, model: str) -> int:
    """Merged tokens of one image from transformers' ``Qwen2VLImageProcessorPil`` (what ``AutoImageProcessor``
    picks for qwen2_vl, qwen2_5_vl and qwen3_vl) configured with ``model``'s defaults: its resize and patch grid
    on a real image of that size."""
    import numpy as np
    from PIL import Image

    proc = _hf_image_processor(model)
    with quiet():
        out = proc(images=[Image.fromarray(np.zeros((height, width, 3), np.uint8))], return_tensors="pt")
    return int(out["image_grid_thw"].prod()) // proc.merge_size**2


def hf_image_patch_count(height: int, width: int, model: str) -> int:
    """``Qwen2VLImageProcessorPil.get_number_of_image_patches`` with ``model``'s defaults (arithmetic only)."""
    return _hf_image_processor(model).get_number_of_image_patches(height, width, {})


def hf_video_tokens(num_frames: int, height: int, width: int, model: str) -> int:
    """Merged tokens of a video: ``Qwen2VLVideoProcessor`` / ``Qwen3VLVideoProcessor.get_num_of_video_patches``
    (unbound: instances need torchvision) with ``model``'s defaults, divided by merge²."""
    from .reference import hf_video_processing_module

    p = PRESETS[model]
    fake = video_processor_self(size={"shortest_edge": p.video_min_pixels, "longest_edge": p.video_max_pixels},
                                patch_size=p.patch_size, merge_size=p.merge_size, temporal_patch_size=2,
                                cap_pixels_per_frame=None, max_video_tokens=768)
    if model == "qwen3-vl":
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor as cls
    else:
        cls = hf_video_processing_module().Qwen2VLVideoProcessor
    return cls.get_num_of_video_patches(fake, num_frames, height, width, {}) // p.merge_size**2
