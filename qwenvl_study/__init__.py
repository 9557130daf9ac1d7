"""qwenvl-study: how Qwen2-VL sees, built from scratch and proven against transformers.

The public API (what notebooks and outside checks import). Each block names the lesson and the
module that holds the code; this file only re-exports.
"""

__version__ = "0.1.0"

# -- lesson 01: configs, dynamic resolution, patching ------------------------------------------
from .config import (
    QWEN2_VL_2B,
    QWEN2_VL_7B,
    QWEN2_VL_72B,
    Qwen2VLConfig,
    TextConfig,
    VisionConfig,
    count_parameters,
    load_config,
    model_structure,
    tiny_config,
)
from .patching import PatchEmbed, patchify, preprocess_image, preprocess_video
from .resolution import count_image_tokens, count_video_tokens, smart_resize

# -- lessons 02-03: positions (rope.py) ---------------------------------------------------------
from .rope import mrope_position_ids, vision_position_ids

# -- lesson 04: the vision encoder (attention.py, vision.py) ------------------------------------
from .attention import block_diagonal_mask, cu_seqlens_from_grid  # attention() itself: qwenvl_study.attention.attention
from .vision import VisionTransformer

# -- lessons 05-06: the language model, the whole model, checkpoints ---------------------------
from .checkpoint import load_pretrained
from .model import Qwen2VL

# -- lessons 07-08: media, chat, grounding (media.py, chat.py, grounding.py) ---------------------
from .chat import CHAT_TEMPLATE, SPECIAL_TOKENS, build_prompt, expand_vision_pads, load_tokenizer, prepare_inputs
from .tokenizer import qwen2_tokenizer  # the real 151,643-token BPE (+14 specials), from a pinned package
from .grounding import GroundedBox, draw_boxes, format_grounding, from_normalized, parse_grounding, to_normalized
from .media import (
    MEDIA_PRESETS,
    MediaDefaults,
    VideoPlan,
    fetch_image,
    fetch_video,
    plan_video,
    process_vision_info,
    smart_nframes,
)
# -- lessons 09-10: the VLM family (family/) ---------------------------------------------------
from .family import clip_loss, format_budget, internvl_tile_grid, pixel_shuffle, token_budget

# -- lesson 11: the trained course model (train/) ----------------------------------------------
from .train.evaluate import ask
from .train.shipped import load_course_model

__all__ = [
    "QWEN2_VL_2B",
    "QWEN2_VL_7B",
    "QWEN2_VL_72B",
    "Qwen2VLConfig",
    "TextConfig",
    "VisionConfig",
    "count_parameters",
    "load_config",
    "model_structure",
    "tiny_config",
    "PatchEmbed",
    "patchify",
    "preprocess_image",
    "count_image_tokens",
    "count_video_tokens",
    "smart_resize",
    "vision_position_ids",
    "mrope_position_ids",
    "preprocess_video",
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "build_prompt",
    "expand_vision_pads",
    "load_tokenizer",
    "prepare_inputs",
    "qwen2_tokenizer",
    "GroundedBox",
    "draw_boxes",
    "format_grounding",
    "from_normalized",
    "parse_grounding",
    "to_normalized",
    "MEDIA_PRESETS",
    "MediaDefaults",
    "VideoPlan",
    "fetch_image",
    "fetch_video",
    "plan_video",
    "process_vision_info",
    "smart_nframes",
    "clip_loss",
    "format_budget",
    "internvl_tile_grid",
    "pixel_shuffle",
    "token_budget",
    "block_diagonal_mask",
    "cu_seqlens_from_grid",
    "VisionTransformer",
    "Qwen2VL",
    "load_pretrained",
    "ask",
    "load_course_model",
]
