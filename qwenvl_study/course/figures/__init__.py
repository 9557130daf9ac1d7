"""The course's figures, one module per lesson in course order (matplotlib; each returns its Figure).

Every figure is computed from the package's own functions — a drawing never restates a number by
hand; every axis is labelled and every figure titled. ``from qwenvl_study.course import figures as
viz`` gives every public name below; the lesson modules say which core module each figure draws from.

``_style``: ``savefig`` (at ``DPI``) and the shared colours. Lessons: 01 resolution, 02 vision RoPE,
03 M-RoPE, 04 vision encoder (also lesson 06's layer errors), 05 language model, 07 video, 08 chat
and grounding, 09 the VLM family, 10 CLIP, 12 the ablations (``qwenvl_study.train.ablations``),
13 after Qwen2-VL (``qwenvl_study.successors``).
"""

from __future__ import annotations

from ._style import DPI, savefig
from .lesson01_resolution import (draw_patch_grid, draw_patch_order, plot_tokens_vs_resolution,
                                  draw_two_frames, explain_image)
from .lesson02_vision_rope import draw_vision_position_ids, plot_vision_rotary_angles, plot_relative_scores
from .lesson03_mrope import plot_mrope_ids, plot_position_budget, plot_rope_drift, plot_mrope_sections
from .lesson04_vision import (draw_block_mask, toy_video, draw_temporal_slices, plot_attention_memory,
                              layer_labels, plot_layer_errors)
from .lesson05_language import draw_embedding_merge, draw_gqa, plot_next_token_filters
from .lesson07_video import (draw_frame_timeline, moving_patch, draw_video_tubes, explain_video,
                             plot_video_tokens_vs_duration, plot_video_context, draw_gif_modes)
from .lesson08_chat import draw_chat_tokens, plot_input_composition, draw_grounding
from .lesson09_family import (draw_connectors, draw_qformer_masks, draw_internvl_tiles, draw_token_grouping,
                              plot_token_budget, draw_training_stages)
from .lesson10_clip import (draw_infonce_example, plot_clip_training, draw_similarity_matrices,
                            plot_temperature_effect)
from .lesson11_training import draw_course_answers
from .lesson12_ablations import plot_claim, plot_ablation_overview
from .lesson13_successors import (draw_windows, draw_vit_blocks, plot_temporal_ids, draw_frequency_bands,
                                  draw_deepstack, plot_token_costs, draw_three_groundings)

__all__ = [
    "draw_course_answers",
    "DPI",
    "savefig",
    "draw_patch_grid",
    "draw_patch_order",
    "plot_tokens_vs_resolution",
    "draw_two_frames",
    "explain_image",
    "draw_vision_position_ids",
    "plot_vision_rotary_angles",
    "plot_relative_scores",
    "plot_mrope_ids",
    "plot_position_budget",
    "plot_rope_drift",
    "plot_mrope_sections",
    "draw_block_mask",
    "toy_video",
    "draw_temporal_slices",
    "plot_attention_memory",
    "layer_labels",
    "plot_layer_errors",
    "draw_embedding_merge",
    "draw_gqa",
    "plot_next_token_filters",
    "draw_frame_timeline",
    "moving_patch",
    "draw_video_tubes",
    "explain_video",
    "plot_video_tokens_vs_duration",
    "plot_video_context",
    "draw_gif_modes",
    "draw_chat_tokens",
    "plot_input_composition",
    "draw_grounding",
    "draw_connectors",
    "draw_qformer_masks",
    "draw_internvl_tiles",
    "draw_token_grouping",
    "plot_token_budget",
    "draw_training_stages",
    "draw_infonce_example",
    "plot_clip_training",
    "draw_similarity_matrices",
    "plot_temperature_effect",
    "plot_claim",
    "plot_ablation_overview",
    "draw_windows",
    "draw_vit_blocks",
    "plot_temporal_ids",
    "draw_frequency_bands",
    "draw_deepstack",
    "plot_token_costs",
    "draw_three_groundings",
]
