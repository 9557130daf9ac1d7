"""Held-out scores of the course model, and ``ask``: one question about one image or video.

Scores (issue 12's goals), each on its own held-out seed (never a training or validation seed):

- count: exact match of the digits;
- find (grounding): the first box ``parse_grounding`` reads from the answer, mapped to pixels, has
  IoU >= 0.5 with the true box (the score is the fraction of questions that do);
- describe: exact match of the ordered list;
- direction (video): exact match of the word.

Generation is greedy (``Qwen2VL.generate``), batched with left padding; answers are decoded with the
special tokens kept (grounding needs them) and cut at the first ``<|im_end|>``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..grounding import from_normalized, parse_grounding
from .course import COURSE_MEDIA, Example, encode_messages
from .data import Sample, make_sample, messages_for

__all__ = ["HELDOUT_SEEDS", "GOALS", "heldout_set", "generate_answers", "score_answers", "evaluate", "ask", "iou",
           "format_scores", "answer_boxes", "answer_iou", "well_formed"]

HELDOUT_SEEDS = {"count": 9001, "find": 9002, "describe": 9003, "direction": 9004}
GOALS = {"count": 0.95, "find": 0.85, "describe": 0.80, "direction": 0.95}
MAX_NEW_TOKENS = 32


def heldout_set(task: str, n: int, seed: int | None = None) -> list[Sample]:
    """``n`` held-out questions of one task (the set ``HELDOUT_SEEDS[task]`` unless ``seed`` is given)."""
    seed = HELDOUT_SEEDS[task] if seed is None else seed
    return [make_sample(seed, i, task) for i in range(n)]


def _left_pad(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    L = max(e.input_ids.shape[0] for e in examples)
    ids = torch.full((len(examples), L), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, e in enumerate(examples):
        n = e.input_ids.shape[0]
        ids[b, L - n:], mask[b, L - n:] = e.input_ids, 1
    batch = {"input_ids": ids, "attention_mask": mask}
    for key, grid in (("pixel_values", "image_grid_thw"), ("pixel_values_videos", "video_grid_thw")):
        parts = [(getattr(e, key), getattr(e, grid)) for e in examples if getattr(e, key) is not None]
        if parts:
            batch[key], batch[grid] = torch.cat([p for p, _ in parts]), torch.cat([g for _, g in parts])
    return batch


def _decode(tokenizer: Any, vocab: Any, new_local: torch.Tensor) -> str:
    real = vocab.to_real(new_local).tolist()
    end = vocab.real_ids[vocab.special("<|im_end|>")]
    if end in real:
        real = real[:real.index(end)]
    pad = vocab.real_ids[vocab.special("<|endoftext|>")]
    return tokenizer.decode([t for t in real if t != pad], skip_special_tokens=False)


@torch.no_grad()
def generate_answers(model: Any, tokenizer: Any, conversations: Sequence[list[dict]], *, batch_size: int = 32,
                     max_new_tokens: int = MAX_NEW_TOKENS, progress: bool = False) -> list[str]:
    """Greedy answers to each conversation's last user turn (batched, left-padded)."""
    vocab, media = model.vocab, getattr(model, "media", COURSE_MEDIA)
    was_training = model.training
    model.eval()
    answers: list[str] = []
    starts = range(0, len(conversations), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="evaluate", leave=False)
    for start in starts:
        chunk = conversations[start:start + batch_size]
        examples = [encode_messages(m, tokenizer, vocab, add_generation_prompt=True, media=media) for m in chunk]
        batch = _left_pad(examples, vocab.special("<|endoftext|>"))
        new = model.generate(**batch, max_new_tokens=max_new_tokens)
        answers += [_decode(tokenizer, vocab, row) for row in new]
    model.train(was_training)
    return answers


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def answer_boxes(answer: str) -> list:
    """The well-formed boxes of a model answer (``parse_grounding(strict=False)``: malformed ones skipped)."""
    boxes, _errors = parse_grounding(answer, strict=False)
    return boxes


def answer_iou(sample: Sample, answer: str) -> float:
    """IoU (pixels) of the first well-formed box in ``answer`` with the sample's true box; 0 when none."""
    boxes = answer_boxes(answer)
    if not boxes:
        return 0.0
    return iou(from_normalized(boxes[0].box, sample.scene.size), sample.target.box)


def well_formed(sample: Sample, answer: str) -> bool:
    """Is ``answer`` in the task's answer language (right or wrong)? count: a digit 1-5; find: one parsable
    box after a "the colour kind" phrase; describe: 1-5 known "colour kind" names; direction: one of the 4 words."""
    from .data import COLOURS, DIRECTIONS, KINDS, MAX_SHAPES

    a = answer.strip()
    if sample.task == "count":
        return a in {str(k) for k in range(1, MAX_SHAPES + 1)}
    if sample.task == "direction":
        return a in DIRECTIONS
    if sample.task == "describe":
        names = {f"{c} {k}" for c in COLOURS for k in KINDS}
        items = a.split(", ")
        return 1 <= len(items) <= MAX_SHAPES and all(i in names for i in items)
    boxes = answer_boxes(a)
    names = {f"the {c} {k}" for c in COLOURS for k in KINDS}
    return len(boxes) == 1 and boxes[0].phrase in names


def score_answers(samples: Sequence[Sample], answers: Sequence[str]) -> tuple[float, list[bool]]:
    """(score, per-sample success) for one task's samples."""
    ok = []
    for s, a in zip(samples, answers):
        if s.task == "find":
            ok.append(answer_iou(s, a) >= 0.5)
        else:
            ok.append(a.strip() == s.answer)
    return (sum(ok) / len(ok) if ok else float("nan")), ok


def evaluate(model: Any, tokenizer: Any, n: int = 100, *, tasks: Sequence[str] = ("count", "find", "describe",
             "direction"), seeds: dict[str, int] | None = None, batch_size: int = 32,
             progress: bool = False, return_details: bool = False) -> Any:
    """``{task: score}`` on ``n`` held-out questions per task (and the samples / answers if asked)."""
    scores, details = {}, {}
    media = getattr(model, "media", COURSE_MEDIA)
    for task in tasks:
        samples = heldout_set(task, n, (seeds or {}).get(task))
        convs = [messages_for(s.media, s.question, media_options=media.options(s.is_video)) for s in samples]
        answers = generate_answers(model, tokenizer, convs, batch_size=batch_size, progress=progress)
        scores[task], ok = score_answers(samples, answers)
        details[task] = (samples, answers, ok)
        details[task + "_well_formed"] = sum(well_formed(s, a) for s, a in zip(samples, answers)) / max(1, len(samples))
    return (scores, details) if return_details else scores


def format_scores(scores: dict[str, float]) -> str:
    return "  ".join(f"{t} {v:.3f}{'' if v >= GOALS.get(t, 0) else ' (<' + str(GOALS[t]) + ')'}"
                     for t, v in scores.items())


def ask(model: Any, tokenizer: Any, media: Any, question: str, max_new_tokens: int = 64) -> str:
    """One user turn (a PIL image or path; a video as a list of PIL frames or a path) -> the greedy answer.

    Grounding tokens stay in the text, so ``parse_grounding(answer)`` reads the boxes."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-empty str, got {question!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if media is None:
        raise ValueError("ask needs an image (PIL image or path) or a video (list of PIL frames or path)")
    m = getattr(model, "media", COURSE_MEDIA)
    from .data import _looks_like_video

    is_video = isinstance(media, (list, tuple)) or (isinstance(media, str) and _looks_like_video(media))
    conv = messages_for(media, question, media_options=m.options(is_video))
    return generate_answers(model, tokenizer, [conv], batch_size=1, max_new_tokens=max_new_tokens)[0]
