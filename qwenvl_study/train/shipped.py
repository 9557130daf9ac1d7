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

__all__ = ["COURSE_MODEL_DIR", "load_course_model", "course_model_history", "write_card"]

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


def write_card(directory: str | Path, summary: dict) -> Path:
    """``card.md``: what the model is, the data spec, the recipe, steps, wall time and held-out scores."""
    from .course import COURSE_MEDIA
    from .evaluate import GOALS, HELDOUT_SEEDS
    from .loop import stage_seed
    from .recipe import VISUAL

    directory = Path(directory)
    raw = json.loads((directory / "config.json").read_text())
    size = (directory / "model.safetensors").stat().st_size
    tasks = ["count", "find", "describe", "direction"]
    scores = dict(summary["scores"])
    if summary.get("lora", {}).get("scores"):
        scores["stage3 LoRA"] = summary["lora"]["scores"]
    rows = ["| after | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for key, sc in scores.items():
        if not any(t in sc for t in tasks):  # stage 0v: the ViT's own scores (below)
            continue
        rows.append(f"| {key} | " + " | ".join(f"{sc.get(t, float('nan')):.2f}" for t in tasks) + " |")
    rows.append("| goal | " + " | ".join(f"{GOALS[t]:.2f}" for t in tasks) + " |")
    lead = next((st for st in summary["stages"] if st.get("lead_steps")), None)  # stage 3's curriculum lead
    easy = [st for st in summary["stages"] if st["index"] == 3 and st.get("max_shapes")]  # its one-task curriculum
    parts = []  # consecutive one-task stages as one phrase: "descriptions alone, of one shape, then 1-2 shapes (...)"
    for st in easy:
        task = next(iter(st["mix"]))
        shapes = "one shape" if st["max_shapes"] == 1 else f"1-{st['max_shapes']} shapes"
        if parts and parts[-1][0] == task:
            parts[-1][1].append(shapes), parts[-1][2].append(str(st["steps"]))
        else:
            parts.append((task, [shapes], [str(st["steps"])]))
    alone = {"describe": "descriptions", "find": "find questions", "count": "counts", "direction": "directions"}
    easy_text = ", then ".join(f"{alone.get(t, t)} alone, of " + ", then ".join(sh) + f" ({' + '.join(n)} steps)"
                               for t, sh, n in parts)
    if lead and lead.get("lead_weight"):
        lead_words = (f"{lead['lead_steps']} steps of one-question chats of every task, {lead['lead']} weighted "
                      f"{lead['lead_weight']:g} (the others as in the mix; a curriculum lead), then the chats")
    elif lead:
        lead_words = f"{lead['lead_steps']} steps of one-question {lead['lead']} chats alone (a curriculum lead), then the chats"
    lead_text = ((" throughout: first " + easy_text if easy else "")
                 + (f"{', then' if easy else ' and starts with'} {lead_words}" if lead else ""))
    chats = sum(st["steps"] * st["batch_size"] for st in summary["stages"] if st["index"] >= 1)
    seeds = sorted({stage_seed(st["index"], st.get("seed")) for st in summary["stages"]})

    def key(st: dict) -> str:  # Stage.key, on a stage's dict
        return st.get("label") or f"stage{st['index']}"

    stages = "\n".join(f"| {(s.get('label') or '').replace('stage', '') or s['index']} | {s['name']} | {s['steps']} | {s['batch_size']} | {s['lr']:g} | "
                       f"{', '.join(s['trainable'])} | {summary['seconds'].get(key(s), '')} |"
                       for s in summary["stages"])
    vit = summary["scores"].get("stage0v") or {}
    vit_line = (f"After stage 0v the ViT's dense head (dropped afterwards) names the class of a held-out shape at its "
                f"centre patch {vit.get('class_at_centre', float('nan')):.2f} of the time and counts the shapes of "
                f"{vit.get('count_from_centres', float('nan')):.2f} of the images from its centre flags."
                if vit else "")
    lora = summary.get("lora", {})

    def star(prefixes) -> str:  # name prefixes as the card writes them: "visual." -> `visual.*`
        return ", ".join(f"`{t}*`" if t.endswith(".") else f"`{t}`" for t in prefixes)

    by_key = {key(st): st for st in summary["stages"]}
    s1, s2 = by_key.get("stage1", {}), by_key.get("stage2", {})
    stage1_text = ("Stage 1 trains the merger alone (`visual.merger`), the ViT and the LLM frozen: the "
                   "tower keeps what stage 0v taught it (the kind)" if tuple(s1.get("trainable", ())) == ("visual.merger",)
                   else f"Stage 1 trains {star(s1.get('trainable', ()))} with the LLM frozen")
    scale = s2.get("visual_lr_scale", 1.0)
    stage2_text = "everything on images + videos" + (
        f" ({star(s2.get('visual_lr_on', VISUAL))} at {scale:g}x the stage's learning rate, the rest at 1x)"
        if scale != 1.0 else "")
    m = COURSE_MEDIA
    text = f"""# qwenvl-study course model

A tiny **Qwen2-VL** (the project's `Qwen2VL`: 2x14x14 tubes, 2D-RoPE ViT, 2x2 merger, M-RoPE, GQA), trained
from nothing on 2 CPU cores by `make train` on the synthetic shapes world of issue 12. It is a teaching model:
it answers the four course questions about images and videos drawn to the data contract, nothing else.

- Parameters: {summary.get('parameters', 0):,}; `model.safetensors` {size / 2**20:.1f} MiB (fp32).
- ViT: width {raw['vision_config']['embed_dim']}, {raw['vision_config']['depth']} blocks; LLM: width
  {raw['hidden_size']}, {raw['num_hidden_layers']} layers, {raw['num_attention_heads']} query / {raw['num_key_value_heads']} key-value heads,
  MLP {raw['intermediate_size']}, mrope_section {raw['rope_scaling']['mrope_section']}, rope_theta {raw['rope_theta']:g}
  (Qwen2-VL: 1e6; at 1e6 the width axis's 6 lowest frequencies rotate < 2e-4 rad per merged cell,
  `course.COURSE_ROPE_THETA`); tied embeddings.
- Vocabulary trimmed to {raw['vocab_size']} rows (`vocab.json`: local row -> real Qwen2 id, the last row is `unk`);
  the tokenizer is the real Qwen2 one, ids are mapped at the boundary (`qwenvl_study.train.vocab`).
- Pixel budget (small, so training is cheap): images {m.image_min_pixels}-{m.image_max_pixels} pixels (<= 16 merged
  tokens), video frames {m.video_min_pixels}-{m.video_max_pixels} pixels (4 merged tokens per 2-frame tube);
  `ask` applies it. Videos follow the paper's M-RoPE rule (transformers 5.x differs once t > max(h', w')).

## Data (the contract: `qwenvl_study/train/data.py`)
Canvas 56-336 px per side, aspect <= 3, solid background (channels 200-255); 1-5 circles / squares / triangles in
red, green, blue, yellow, box sides in [max(14, 0.15 short side), 0.4 short side], >= 4 px apart. Videos: 4-12
frames, one shape moving left / right / up / down by >= 30% of the canvas, 0-2 static shapes. Questions: "How many
shapes are there?", "Find the {{colour}} {{shape}}." (a [0, 1000) box), "Describe the image." (left to right),
"Which way does the {{colour}} {{shape}} move?". Training seeds {', '.join(map(str, seeds))}; held-out
{', '.join(map(str, sorted(HELDOUT_SEEDS.values())))}.

## Recipe (paper §2.2, adapted)
| stage | what | steps | batch | lr | trains | seconds |
|---|---|---|---|---|---|---|
{stages}

Stage 0 (text-only chats stating the scene as text) stands for the pretrained Qwen2 LLM; stage 0v (ViT + merger
on dense per-patch labels through a linear head that is then dropped, `dense.py`) stands for the pretrained DFN
ViT the paper starts from (§2.1). {vit_line} {stage1_text}; stage 2 {stage2_text}, chats of
1-4 questions; stage 3 freezes `visual.*`{lead_text}. LoRA
variant (peft, LLM q/k/v/o, r=16, from the weights stage 3 starts from; 30 steps of the chats, no lead): {lora.get('seconds', '-')} s. Loss on
the assistant answers and their `<|im_end|>` only. AdamW (0.9, 0.95), weight decay 0.01, warm-up + cosine,
clip 1.0. {summary['world_size']} processes (DDP, gloo) x {summary['threads']} thread.

## Held-out scores (100 questions per task after each stage)
{chr(10).join(rows)}

Wall time of the run: {summary['wall_seconds'] / 60:.1f} min{' = ' + summary['wall_note'] if summary.get('wall_note') else ''}
(load average at the end {tuple(summary.get('load_average') or ()) or None}: the machine was shared with other jobs).
"""
    final = summary["scores"].get("stage3", {})
    missed = [f"{t} {final.get(t, 0):.2f} < {GOALS[t]:.2f}" for t in tasks if final.get(t, 0) < GOALS[t]]
    if missed:
        text += ("\n## Status: goals not reached\n" + "; ".join(missed) + ". What it has learned: the answer language "
                 "(digits 1-5, one box after a 'the colour kind' phrase, lists of shape names, direction words: see "
                 "`tests/test_train_shipped.py`), to count, mostly which way a video's shape moves — stage 3 leads with "
                 "one-question chats in which the videos weigh five times as much, because in the mix the direction "
                 "words were 2% of the loss and the model said 'left' or 'up' to 194 of 200 videos (a lead of videos "
                 "alone wiped the other tasks) — and to describe one or two shapes and, less often, three "
                 "(notebook 11, Going deeper). Stage 2 once "
                 "trained at a peak learning rate of 2e-3 and every answer settled on its slot's prior (count 0.58); at "
                 "3e-4 the same ViT features can be read (notebook 11, Going deeper: trained on one-shape images alone, 2e-3 names the "
                 "colour and guesses the kind, 0.28-0.40 held-out, 5e-4 both, 0.97). The boxes are where "
                 "the architecture is hardest at this budget: Qwen2-VL's ViT has no absolute position (2D-RoPE only; on "
                 "a blank canvas every token is equal), so a shape's token says what it is, not where; the coordinates "
                 "are computed by the LLM from M-RoPE. It reads a shape's column that way (notebook 11) and, after "
                 "stage 3d, places a lone shape's box roughly (its hundreds digits, not its tens), but 4 layers and "
                 f"~{chats / 1000:.0f}k chats (stages 1-3) rarely pass IoU 0.5. A description is trapped behind the same column: its first colour word is the leftmost shape's, "
                 "and trained on 1-5 shapes at once (the recipe before this one) the LLM kept its prior ('yellow' for 119 of "
                 "120 one-shape images) "
                 "although the colour reaches its state; hence stage 3's descriptions of one, then 1-2, then 1-3 shapes "
                 "(notebook 11, Going deeper). Treat it as a demonstration of the mechanics (data, masks, stages, "
                 "freezing, LoRA, DDP) and of a model that has learned to count, to follow a motion and to describe a "
                 "small scene, not as a working VLM.\n")
    path = directory / "card.md"
    path.write_text(text)
    return path
