"""The chat format: messages → the published ChatML prompt → pad-expanded text → the model's inputs.

Paper §2 (model input): vision content sits between ``<|vision_start|>`` and ``<|vision_end|>``;
inside, each merged visual token (a 2x2 group of 14x14 patches, one 28x28 square; for videos a
2-frame tube of it) takes one ``<|image_pad|>`` / ``<|video_pad|>`` position in the LLM sequence.
Dialogues use ChatML (``<|im_start|>role\\n … <|im_end|>\\n``) with the default system prompt
"You are a helpful assistant." when the conversation does not start with a system message.

- ``build_prompt``: renders the Qwen2-VL-Instruct chat template (``CHAT_TEMPLATE``, the published
  value) in plain Python, including ``add_vision_id`` ("Picture 1: " / "Video 1: ").
- ``expand_vision_pads``: one pad per merged token, ``grid_thw.prod() // merge_size**2``.
- ``prepare_inputs``: messages → ``process_vision_info`` → pixel values and grids → expanded
  text → token ids (by default with the real Qwen2-VL tokenizer, ``tokenizer.qwen2_tokenizer``).

Reference: the template rendered by transformers' own Jinja machinery
(``transformers.utils.chat_template_utils.render_jinja_template``) and ``Qwen2VLProcessor``
(``processing_qwen2_vl.py``: ``replace_image_token`` / ``replace_video_token``) with its PIL image
processor — built in ``reference.py`` (``hf_render_chat``, ``hf_processor``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from .resolution import MAX_PIXELS, MERGE_SIZE, MIN_PIXELS, grid_tokens

__all__ = [
    "tokenizer_config",
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "DEFAULT_SYSTEM_PROMPT",
    "IM_START",
    "IM_END",
    "VISION_START",
    "VISION_END",
    "IMAGE_PAD",
    "VIDEO_PAD",
    "BOX_START",
    "BOX_END",
    "OBJECT_REF_START",
    "OBJECT_REF_END",
    "ENDOFTEXT",
    "build_prompt",
    "expand_vision_pads",
    "split_special_tokens",
    "load_tokenizer",
    "prepare_inputs",
    "mm_token_type_ids",
    "model_inputs",
]

# The published Qwen2-VL-Instruct special tokens (tokenizer_config.json ``added_tokens_decoder``).
SPECIAL_TOKENS: dict[str, int] = {
    "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|object_ref_start|>": 151646,
    "<|object_ref_end|>": 151647, "<|box_start|>": 151648, "<|box_end|>": 151649, "<|quad_start|>": 151650,
    "<|quad_end|>": 151651, "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655, "<|video_pad|>": 151656,
}
# The published chat template of Qwen2-VL-*-Instruct (its tokenizer_config.json / chat_template.json
# value, also printed by the original lesson). ``build_prompt`` below renders the same text in plain
# Python; the tests render this template with transformers' Jinja machinery and compare.
CHAT_TEMPLATE: str = (
    '{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}'
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    '{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}'
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    '{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}'
    "<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    '{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}'
)


def tokenizer_config() -> dict[str, Any]:
    """The Qwen2-VL-Instruct tokenizer settings that matter here (for writing a tokenizer directory)."""
    return {
        "tokenizer_class": "Qwen2Tokenizer",
        "added_tokens_decoder": {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                          "single_word": False, "special": True} for t, i in SPECIAL_TOKENS.items()},
        "additional_special_tokens": [t for t in SPECIAL_TOKENS if t != "<|endoftext|>"],
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
        "model_max_length": 32768,
        "padding_side": "left",
        "split_special_tokens": False,
        "chat_template": CHAT_TEMPLATE,
    }


DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

ENDOFTEXT = "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
OBJECT_REF_START, OBJECT_REF_END = "<|object_ref_start|>", "<|object_ref_end|>"
BOX_START, BOX_END = "<|box_start|>", "<|box_end|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"


def _is_image_item(item: dict) -> bool:
    return item.get("type") == "image" or "image" in item or "image_url" in item


def _is_video_item(item: dict) -> bool:
    return item.get("type") == "video" or "video" in item


def build_prompt(messages: list[dict], *, add_generation_prompt: bool = True, add_vision_id: bool = False) -> str:
    """The Qwen2-VL-Instruct chat template, rendered in Python (equal to the Jinja rendering).

    Per message: ``<|im_start|>{role}\\n`` + content + ``<|im_end|>\\n``; a string content is
    copied, a list is rendered item by item: an image item (``type == "image"`` or an ``image`` /
    ``image_url`` key) → ``<|vision_start|><|image_pad|><|vision_end|>``, a video item →
    ``<|vision_start|><|video_pad|><|vision_end|>`` (each prefixed "Picture k: " / "Video k: " when
    ``add_vision_id``), a text item → its text. The default system prompt opens a conversation
    whose first message is not a system message; ``add_generation_prompt`` appends
    ``<|im_start|>assistant\\n``.
    """
    if not isinstance(messages, (list, tuple)):
        raise ValueError(f"messages must be a list of {{'role': ..., 'content': ...}} dicts, got "
                         f"{type(messages).__name__}")
    parts: list[str] = []
    images = videos = 0
    for m, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"message {m} must be a dict with 'role' and 'content' keys, got {message!r:.80}")
        role, content = message["role"], message["content"]
        if m == 0 and role != "system":
            parts.append(f"{IM_START}system\n{DEFAULT_SYSTEM_PROMPT}{IM_END}\n")
        parts.append(f"{IM_START}{role}\n")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, (list, tuple)):
            for i, item in enumerate(content):
                if not isinstance(item, dict):
                    raise ValueError(f"message {m}, content item {i}: expected a dict, got {item!r:.80}")
                if _is_image_item(item):
                    images += 1
                    parts.append((f"Picture {images}: " if add_vision_id else "") + VISION_START + IMAGE_PAD + VISION_END)
                elif _is_video_item(item):
                    videos += 1
                    parts.append((f"Video {videos}: " if add_vision_id else "") + VISION_START + VIDEO_PAD + VISION_END)
                elif "text" in item:
                    parts.append(str(item["text"]))
        else:
            raise ValueError(f"message {m}: content must be a string or a list of items, got "
                             f"{type(content).__name__}")
        parts.append(f"{IM_END}\n")
    if add_generation_prompt:
        parts.append(f"{IM_START}assistant\n")
    return "".join(parts)


def _counts(grid_thw: Any, merge_size: int) -> list[int]:
    if grid_thw is None:
        return []
    grid = torch.as_tensor(grid_thw).reshape(-1, 3)
    return [grid_tokens(row.tolist(), merge_size=merge_size) for row in grid]


def expand_vision_pads(text: str, image_grid_thw: Any = None, video_grid_thw: Any = None, *,
                       merge_size: int = MERGE_SIZE) -> str:
    """Repeat the k-th ``<|image_pad|>`` (``<|video_pad|>``) ``grid_thw[k].prod() // merge_size**2`` times.

    The counts must match: as many pads in the text as grids given (else ValueError naming both).
    """
    out = text
    for pad, counts, kind in ((IMAGE_PAD, _counts(image_grid_thw, merge_size), "image"),
                              (VIDEO_PAD, _counts(video_grid_thw, merge_size), "video")):
        pieces = out.split(pad)
        if len(pieces) - 1 != len(counts):
            raise ValueError(f"the text has {len(pieces) - 1} {pad} placeholders but {len(counts)} {kind} "
                             f"grids were given")
        expanded = [pieces[0]]
        for n, piece in zip(counts, pieces[1:]):
            expanded.append(pad * n + piece)
        out = "".join(expanded)
    return out


def split_special_tokens(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into ``(piece, is_special)`` runs; consecutive identical pads stay one piece."""
    pattern = "(" + "|".join(re.escape(t) for t in sorted(SPECIAL_TOKENS, key=len, reverse=True)) + ")"
    pieces: list[tuple[str, bool]] = []
    for piece in re.split(pattern, text):
        if not piece:
            continue
        if piece in (IMAGE_PAD, VIDEO_PAD) and pieces and pieces[-1][1] and pieces[-1][0].endswith(piece) \
                and not pieces[-1][0].replace(piece, ""):
            pieces[-1] = (pieces[-1][0] + piece, True)  # <|image_pad|> x n: one run
        else:
            pieces.append((piece, piece in SPECIAL_TOKENS))
    return pieces


def load_tokenizer(path: str | os.PathLike):
    """The tokenizer of a local checkpoint directory (``AutoTokenizer``, local files only, no remote code).

    A directory without tokenizer files (``tokenizer.json``, ``vocab.json``, ``tokenizer_config.json``)
    gets the real Qwen2-VL tokenizer (:func:`qwenvl_study.tokenizer.qwen2_tokenizer`) — unless its
    ``config.json`` declares fewer embedding rows than that tokenizer's 151,657 ids (then a ValueError).
    """
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory not found: {path}")
    if not any((path / f).is_file() for f in ("tokenizer.json", "vocab.json", "tokenizer_config.json")):
        from .tokenizer import qwen2_tokenizer

        tokenizer = qwen2_tokenizer()
        rows = _declared_vocab_size(path / "config.json")
        if rows is not None and rows < len(tokenizer):
            raise ValueError(f"{path} holds no tokenizer files and its config.json has vocab_size {rows} < the "
                             f"{len(tokenizer)} ids of the Qwen2-VL tokenizer: add the checkpoint's own tokenizer files")
        return tokenizer
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)


def _declared_vocab_size(config_file: Path) -> int | None:
    """``vocab_size`` of a checkpoint's config.json (top level or ``text_config``), None when absent."""
    if not config_file.is_file():
        return None
    import json

    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    size = config.get("vocab_size", (config.get("text_config") or {}).get("vocab_size"))
    return int(size) if isinstance(size, int) else None


def prepare_inputs(
    messages: list[dict],
    tokenizer: Any = None,
    *,
    add_generation_prompt: bool = True,
    add_vision_id: bool = False,
    defaults: Any = None,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    progress: bool = False,
) -> dict[str, Any]:
    """Everything the model takes, from qwen-vl-utils-style messages — as ``process_vision_info`` + the processor.

    Returns a dict with ``text`` (the prompt, pads expanded), ``prompt`` (before expansion) and,
    where the messages have them, ``pixel_values`` [N, 1176] float32 + ``image_grid_thw`` [n, 3]
    int64, ``pixel_values_videos`` + ``video_grid_thw``; and ``input_ids`` [1, L] int64,
    ``attention_mask`` [1, L] and ``mm_token_type_ids`` [1, L] (0 text, 1 image pad, 2 video pad —
    what transformers 5's Qwen2-VL needs for M-RoPE). ``tokenizer``: an object, a local checkpoint
    directory, None (the default: the real Qwen2-VL tokenizer, ``tokenizer.qwen2_tokenizer()``) or
    False (no token ids: text, grids and pixels only). ``defaults`` is the media preset (``"0.0.8"`` by default);
    ``min_pixels``/``max_pixels`` are the processor's bounds (the published preprocessor config).
    """
    from .media import process_vision_info
    from .patching import preprocess_image, preprocess_video

    images, videos = process_vision_info(messages, defaults=defaults, progress=progress)
    prompt = build_prompt(messages, add_generation_prompt=add_generation_prompt, add_vision_id=add_vision_id)
    out: dict[str, Any] = {"prompt": prompt}
    if images:
        pv, grids = zip(*(preprocess_image(image, min_pixels=min_pixels, max_pixels=max_pixels) for image in images))
        out["pixel_values"] = torch.cat(pv)  # n x [N_i, 1176] -> [N, 1176]
        out["image_grid_thw"] = torch.cat(grids)  # [n, 3]
    if videos:
        pv, grids = zip(*(preprocess_video(video, min_pixels=min_pixels, max_pixels=max_pixels) for video in videos))
        out["pixel_values_videos"] = torch.cat(pv)  # [N, 1176]
        out["video_grid_thw"] = torch.cat(grids)  # [n, 3]
    out["text"] = expand_vision_pads(prompt, out.get("image_grid_thw"), out.get("video_grid_thw"))
    if tokenizer is not False:
        if tokenizer is None:
            from .tokenizer import qwen2_tokenizer

            tokenizer = qwen2_tokenizer()
        elif isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = load_tokenizer(tokenizer)
        encoded = tokenizer(out["text"], return_tensors="pt")
        ids = encoded["input_ids"]  # [1, L]
        out["input_ids"] = ids
        out["attention_mask"] = encoded.get("attention_mask", torch.ones_like(ids))
        out["mm_token_type_ids"] = mm_token_type_ids(ids)  # [1, L]
    return out


MODEL_INPUT_KEYS = ("input_ids", "attention_mask", "pixel_values", "image_grid_thw", "pixel_values_videos",
                    "video_grid_thw")


def model_inputs(inputs: dict[str, Any], device: Any = None, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """The keyword arguments of ``Qwen2VL.forward / generate`` from :func:`prepare_inputs`' dict, on
    ``device``; pixel values cast to ``dtype`` (the model's), ids and grids kept as integers."""
    out = {}
    for key in MODEL_INPUT_KEYS:
        if key in inputs:
            value = inputs[key]
            out[key] = value.to(device=device, dtype=dtype) if value.is_floating_point() and dtype else value.to(device)
    return out


def mm_token_type_ids(input_ids: torch.Tensor, image_token_id: int = SPECIAL_TOKENS[IMAGE_PAD],
                      video_token_id: int = SPECIAL_TOKENS[VIDEO_PAD]) -> torch.Tensor:
    """0 text, 1 image pad, 2 video pad, per position: what transformers 5's processor returns beside
    ``input_ids`` and its Qwen2-VL needs for M-RoPE (ours finds the pads in ``input_ids`` itself)."""
    return (input_ids == image_token_id).long() + 2 * (input_ids == video_token_id).long()
