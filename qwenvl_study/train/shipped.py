"""The trained course model shipped inside the package: ``load_course_model()`` -> (model, tokenizer).

``qwenvl_study/train/course_model/`` holds ``model.safetensors`` (fp32, published state-dict names over
the trimmed vocabulary), ``config.json`` (the published 4.x layout with local special-token ids, plus a
``course`` section: the pixel budgets), ``vocab.json`` (local row -> real Qwen2 id), ``history.json``
(the training run's losses, scores and times) and ``card.md``. ``make train`` rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

__all__ = ["COURSE_MODEL_DIR", "load_course_model", "course_model_history"]

COURSE_MODEL_DIR = Path(__file__).resolve().parent / "course_model"


def load_course_model(path: str | Path | None = None, *, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """(model, tokenizer): the trained tiny Qwen2-VL (eval mode) and the real Qwen2 tokenizer.

    ``path``: a directory written by ``make train`` (default: the one inside the package). Loading is
    strict (missing / unexpected / mis-shaped tensors raise); safetensors only.
    """
    from safetensors.torch import load_file

    from ..config import load_config
    from .course import CourseMedia, CourseQwen2VL
    from .vocab import CourseVocab, build_vocab, course_tokenizer

    directory = Path(path) if path is not None else COURSE_MODEL_DIR
    weights = directory / "model.safetensors"
    for needed in (weights, directory / "config.json", directory / "vocab.json"):
        if not needed.is_file():
            raise FileNotFoundError(f"course model file missing: {needed} (run `make train` to rebuild it)")
    raw = json.loads((directory / "config.json").read_text())
    config = load_config(raw)
    vocab = CourseVocab.load(directory / "vocab.json")
    media = CourseMedia(**raw.get("course", {}).get("media", {}))
    model = CourseQwen2VL(config, vocab, media)
    state = load_file(str(weights))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{weights}: missing tensors {missing[:10]}, unexpected tensors {unexpected[:10]}")
    tokenizer = course_tokenizer()
    expected = build_vocab(tokenizer)
    if not set(expected.real_ids) <= set(vocab.real_ids):
        raise ValueError(f"{directory / 'vocab.json'} does not cover this tokenizer's ids for the course text: "
                         f"a different tokenizer than the one the model was trained with")
    return model.to(dtype).eval(), tokenizer


def course_model_history(path: str | Path | None = None) -> dict:
    """The shipped run's logged history (losses per step and stage, scores, times)."""
    directory = Path(path) if path is not None else COURSE_MODEL_DIR
    return json.loads((directory / "history.json").read_text())
