"""Training: the stages of ``recipe.py``, deterministic, resumable per stage, on 1 process or under torchrun.

``python -m qwenvl_study.train`` (what ``make train`` runs) trains the course model from nothing:
stage by stage, a tqdm bar per stage; after each stage a checkpoint, the loss history and the held-out
scores go to ``--out`` (default ``outputs/train``). A rerun skips every stage whose checkpoint is
there and was made by the same recipe (the fingerprint in ``stageN.json``): resumable per stage.

Distributed (``torchrun --nproc_per_node 2 -m qwenvl_study.train``): gloo on CPU, the model wrapped
in ``DistributedDataParallel`` (re-wrapped each stage, since each stage trains other parameters).
The global batch of step ``t`` is the same samples ``[t * B, (t + 1) * B)`` of the stage's seed in
both cases; rank ``r`` takes every ``world``-th of them. Each rank's loss is its *sum* over
supervised tokens divided by the *global* count of supervised tokens (an all-reduce), times the
world size, so DDP's gradient average equals the 1-process gradient of the mean loss over the global
batch: the two loss curves agree to float rounding (tested: ``tests/test_train_loop.py``).
A stage with ``micro_batch`` runs a rank's chats sorted by length in batches of that many (less padding),
the gradients of all but the last accumulated under DDP's ``no_sync``; each micro-batch's sum is divided by the
same global count, so the step is the one batch's to float rounding.

Determinism: data are a function of (seed, index) (``data.py``); the initial weights of
``torch.manual_seed(seed)``; no dropout; same thread count on the same machine and software -> the same run, bit for bit
(not across CPUs: another AVX-512 machine, same torch, differed in stage 0's first loss at the 8th digit).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .course import (COURSE_MEDIA, CourseMedia, CourseQwen2VL, answer_loss, collate, course_config, encode_sample,
                     weighted_answer_loss, box_digit_weights)
from .data import make_sample, make_text_sample
from .dense import WHERE_ON, DenseBatch, DenseHead, dense_batch, dense_loss, dense_scores, where_rows
from .recipe import LORA_STAGE, STAGES, Stage, _matches, lora_model, set_trainable
from .vocab import CourseVocab, build_vocab, course_tokenizer

__all__ = ["TrainConfig", "init_weights", "build_model", "train", "train_stage", "stage_batch", "stage_micro_batches",
           "stage_examples", "stage_seed", "main",
           "save_course_model", "DEFAULT_OUT"]

DEFAULT_OUT = Path("outputs") / "train"
STAGE_SEED = 100  # stage k trains on the samples of seed STAGE_SEED + k


def stage_seed(index: int, seed: int | None = None) -> int:
    """The data seed of a stage: its own ``seed`` if set, else ``STAGE_SEED + index``."""
    return STAGE_SEED + index if seed is None else seed


@dataclass
class TrainConfig:
    out: str = str(DEFAULT_OUT)
    seed: int = 0
    stages: tuple[Stage, ...] = STAGES
    lora: Stage | None = LORA_STAGE
    model: dict = field(default_factory=dict)  # course_config keyword arguments
    media: CourseMedia = COURSE_MEDIA
    eval_n: int = 100  # held-out questions per task after each stage (0: no evaluation)
    grad_clip: float = 1.0
    weight_decay: float = 0.01
    threads: int | None = 1  # one thread per process: on shared cores, 2 OpenMP threads ran 20x slower
    workers: int = 1  # data worker processes per training process
    progress: bool = True
    log_every: int = 1

    def build(self, vocab: CourseVocab) -> CourseQwen2VL:
        """The run's model, initialised (``build_model``); a subclass builds a variant (``ablations.py``)."""
        return build_model(vocab, self)

    def fingerprint(self, upto: int) -> str:
        """Hash of everything that determines the weights after stage ``upto``."""
        payload = {"seed": self.seed, "world": _dist()[1], "threads": self.threads, "model": self.model, "media": asdict(self.media), "clip": self.grad_clip,
                   "wd": self.weight_decay, "stages": [s.to_dict() for s in self.stages[:upto + 1]]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
def init_weights(model: nn.Module, seed: int) -> None:
    """transformers' Qwen2-VL init (``initializer_range`` 0.02): every Linear / Conv / Embedding weight
    N(0, 0.02), biases 0, norms 1, from ``torch.manual_seed(seed)`` in module order."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv3d, nn.Embedding)):
                module.weight.normal_(0.0, 0.02)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif type(module).__name__ == "RMSNorm":
                module.weight.fill_(1.0)


def build_model(vocab: CourseVocab, config: TrainConfig) -> CourseQwen2VL:
    model = CourseQwen2VL(course_config(vocab, **config.model), vocab, config.media)
    init_weights(model, config.seed)
    return model


# ---------------------------------------------------------------------------------------------
# Distributed helpers
# ---------------------------------------------------------------------------------------------
def _dist() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce(x: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(x)
    return x


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


# ---------------------------------------------------------------------------------------------
# One stage
# ---------------------------------------------------------------------------------------------
def _indices(stage: Stage, step: int, rank: int, world: int) -> range:
    """This rank's share of the global batch of ``step``: samples ``step * B + r, + world, ...``."""
    start = step * stage.batch_size
    return range(start + rank, start + stage.batch_size, world)


def stage_batch(stage: Stage, step: int, tokenizer: Any, vocab: CourseVocab, media: CourseMedia,
                rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
    """This rank's share of the global batch of ``step`` as one padded batch."""
    if stage.data == "dense":  # stage 0v: images and their per-patch labels (dense.py)
        seed = stage_seed(stage.index, stage.seed)
        return vars(dense_batch(seed, _indices(stage, step, rank, world), media, where_on=stage.where_on))
    return collate(stage_examples(stage, step, tokenizer, vocab, media, rank, world), vocab.special("<|endoftext|>"))


def stage_micro_batches(stage: Stage, step: int, tokenizer: Any, vocab: CourseVocab, media: CourseMedia,
                        rank: int = 0, world: int = 1) -> list[dict[str, torch.Tensor]]:
    """What a training step runs on this rank: ``[stage_batch(...)]``, or with ``stage.micro_batch`` the same chats
    sorted by length (stable) in batches of that many, so that short chats are not padded to the longest."""
    if stage.data == "dense" or not stage.micro_batch:
        return [stage_batch(stage, step, tokenizer, vocab, media, rank, world)]
    examples = sorted(stage_examples(stage, step, tokenizer, vocab, media, rank, world), key=lambda e: len(e.input_ids))
    pad, m = vocab.special("<|endoftext|>"), stage.micro_batch
    return [collate(examples[i:i + m], pad) for i in range(0, len(examples), m)]


def stage_examples(stage: Stage, step: int, tokenizer: Any, vocab: CourseVocab, media: CourseMedia,
                   rank: int = 0, world: int = 1) -> list:
    """This rank's chats of ``step``, encoded (``course.Example``s, unpadded)."""
    seed = stage_seed(stage.index, stage.seed)
    indices = _indices(stage, step, rank, world)
    if stage.data == "text":
        samples = [make_text_sample(seed, i) for i in indices]
    else:  # the curriculum's lead first (one task alone, one question per chat), then the stage's mix
        mix, turns = stage.mix, stage.max_turns
        if step < stage.lead_steps:  # one question per chat: the lead task alone, or every task, the lead's weighted up
            mix, turns = ({**stage.mix, stage.lead: stage.lead_weight} if stage.lead_weight else {stage.lead: 1.0}), 1
        samples = [make_sample(seed, i, mix=mix, max_turns=turns, max_shapes=stage.max_shapes) for i in indices]
    return [encode_sample(s, tokenizer, vocab, media) for s in samples]


class _StageBatches(torch.utils.data.Dataset):
    """Step ``t`` -> this rank's (micro-)batches of step ``t`` (a pure function of the index: order-free, resumable)."""

    def __init__(self, stage: Stage, steps: int, tokenizer: Any, vocab: CourseVocab, media: CourseMedia,
                 rank: int, world: int) -> None:
        self.args = (stage, tokenizer, vocab, media, rank, world)
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> list[dict[str, torch.Tensor]]:
        stage, tokenizer, vocab, media, rank, world = self.args
        return stage_micro_batches(stage, step, tokenizer, vocab, media, rank, world)


def _prefetch(stage: Stage, steps: int, tokenizer: Any, vocab: CourseVocab, config: TrainConfig, rank: int,
              world: int):
    """The stage's batches, drawn and encoded by one worker process ahead of the training step
    (``config.workers`` = 0: in the training process)."""
    data = _StageBatches(stage, steps, tokenizer, vocab, config.media, rank, world)
    if not config.workers:
        return (data[i] for i in range(steps))
    return torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=config.workers,
                                       prefetch_factor=4, persistent_workers=False,
                                       worker_init_fn=_worker_init)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _lr(stage: Stage, step: int) -> float:
    """Linear warm-up, then cosine to 10% of the peak."""
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    t = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
    return stage.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def parameter_groups(module: nn.Module, stage: Stage) -> list[dict]:
    """The trainable parameters of ``module`` in one optimiser group per part (nanoVLM's shape): the ViT +
    merger (``visual.*``; ``stage.visual_lr_on`` narrows it, e.g. to ``visual.blocks``) at ``stage.visual_lr_scale``
    times the stage's learning rate, the rest at 1x. A group with no parameters is left out."""
    parts: dict[float, list] = {}
    for name, p in module.named_parameters():
        if p.requires_grad:
            slow = _matches(name, tuple(stage.visual_lr_on))  # set_trainable's test of a name against prefixes
            parts.setdefault(stage.visual_lr_scale if slow else 1.0, []).append(p)
    return [{"params": ps, "lr_scale": scale} for scale, ps in sorted(parts.items(), reverse=True)]


def box_digits(vocab: CourseVocab, tokenizer: Any) -> tuple[torch.Tensor, int, int]:
    """The ten digits' local ids and the local ids of ``<|box_start|>`` / ``<|box_end|>``."""
    digits = torch.tensor([vocab.local(tokenizer.encode(str(d))[0]) for d in range(10)])
    return digits, vocab.special("<|box_start|>"), vocab.special("<|box_end|>")


def dense_head(model: CourseQwen2VL, config: TrainConfig, stage: Stage | None = None) -> DenseHead:
    """Stage 0v's head for ``model`` (its initial weights from ``config.seed + 1``; the ``where`` outputs
    when ``stage.where_weight`` > 0)."""
    torch.manual_seed(config.seed + 1)
    where = stage is not None and stage.where_weight > 0
    return DenseHead(model.config.vision.hidden_size, model.config.vision.spatial_merge_size, where=where)


def train_stage(model: nn.Module, stage: Stage, tokenizer: Any, vocab: CourseVocab, config: TrainConfig,
                *, steps: int | None = None, head: DenseHead | None = None) -> list[dict]:
    """Train ``stage`` (its parameters already set trainable); returns the history, one row per step:
    ``{"step", "loss", "tokens", "lr", "time"}`` with ``loss`` the mean over the global batch.
    A ``"dense"`` stage (0v) trains ``model.visual`` together with ``head`` (default: a new ``dense_head``;
    pass one to score it afterwards; it is not part of the shipped weights)."""
    rank, world = _dist()
    # Evaluation (``generate``) stores wide matrices column-major for decoding (``use_decode_layout``) on
    # rank 0 only: back to row-major, so every rank (and a resumed run) trains on the same layout —
    # DDP refuses parameters whose strides differ across processes.
    for p in model.parameters():
        if not p.is_contiguous():
            p.data = p.data.contiguous()
    dense = stage.data == "dense"
    if stage.micro_batch and stage.loss != "token":
        raise ValueError(f"{stage.key}: micro_batch={stage.micro_batch} needs loss='token' (the 'answer' loss divides "
                         f"by the batch's answers, counted while it is computed), not loss={stage.loss!r}")
    if dense:
        module: nn.Module = _DenseNet(model.visual, dense_head(model, config, stage) if head is None else head)
    else:
        module = model
    groups = parameter_groups(module, stage)
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=stage.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay)
    net: nn.Module = module
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(module, find_unused_parameters=False)
    model.train()
    steps = stage.steps if steps is None else steps
    bar = range(steps)
    if config.progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc=stage.key.replace("stage", "stage "), leave=True, dynamic_ncols=True)
    digits = box_digits(vocab, tokenizer) if stage.loss == "answer" else None
    history, t0 = [], time.perf_counter()
    batches = iter(_prefetch(stage, steps, tokenizer, vocab, config, rank, world))
    for step in bar:
        micro = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = _lr(stage, step) * group["lr_scale"]
        if dense:
            batch = DenseBatch(**micro[0])
            counts = _all_reduce(torch.tensor([float(batch.centre.numel()), float(batch.centre.sum()),
                                               float(where_rows(batch).sum())], dtype=torch.float64))
            local_sum, _ = dense_loss(net(batch.pixel_values, batch.grid_thw), batch, tuple(counts.tolist()),
                                      where_weight=stage.where_weight)
            count = torch.ones((), dtype=torch.float64)  # local_sum is already this rank's share of the mean
            (local_sum * world).backward()
        elif stage.loss == "answer":  # one batch (micro_batch is refused above)
            batch = dict(micro[0])
            labels = batch.pop("labels")
            factor = box_digit_weights(labels, *digits, stage.digit_weight) if stage.digit_weight != 1 else None
            local_sum, n_answers = weighted_answer_loss(net(**batch), labels, factor)
            count = _all_reduce(n_answers.to(torch.float64))
            (local_sum * (world / count.to(local_sum.dtype))).backward()
        else:  # the per-token mean over the global batch: each (micro-)batch's sum / the global count of answer tokens
            count = _all_reduce(sum((b["labels"][:, 1:] != -100).sum() for b in micro).to(torch.float64))
            local_sum = torch.zeros((), dtype=torch.float32)
            for k, batch in enumerate(micro):
                batch = dict(batch)
                labels = batch.pop("labels")
                # DDP: gradients of all but the last micro-batch accumulate locally, the last backward all-reduces
                sync = contextlib.nullcontext() if world == 1 or k == len(micro) - 1 else net.no_sync()
                with sync:
                    part = answer_loss(net(**batch), labels, reduction="sum")
                    (part * (world / count.to(part.dtype))).backward()
                local_sum = local_sum + part.detach()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        total = _all_reduce(local_sum.detach().to(torch.float64).clone())
        row = {"step": step, "loss": float(total / count), "tokens": 0 if dense else int(count), "lr": _lr(stage, step),
               "time": round(time.perf_counter() - t0, 3)}
        history.append(row)
        if rank == 0 and config.progress and hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{row['loss']:.4f}")
    return history


class _DenseNet(nn.Module):
    """The ViT and the stage-0v head as one module (what DDP wraps in that stage)."""

    def __init__(self, visual: nn.Module, head: DenseHead) -> None:
        super().__init__()
        self.visual, self.head = visual, head

    def forward(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        return self.head(self.visual(pixel_values, grid_thw))  # [N, 1176] -> [N/4, h] -> [N, 29]


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------
def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def save_course_model(model: CourseQwen2VL, directory: str | Path, *, extra: dict | None = None,
                      dtype: torch.dtype = torch.float32) -> Path:
    """``model.safetensors`` (published names) + ``config.json`` (4.x layout + the course keys) + ``vocab.json``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.to(dtype) for k, v in _state(model).items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_hf_dict()
    cfg["course"] = {"media": model.media.to_dict(), "vocab": "vocab.json", **(extra or {})}
    (directory / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    model.vocab.save(directory / "vocab.json")
    return directory


def _load_state(model: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)), strict=True)


# ---------------------------------------------------------------------------------------------
# The whole recipe
# ---------------------------------------------------------------------------------------------
def train(config: TrainConfig) -> dict[str, Any]:
    """All stages (resuming finished ones), the LoRA variant; returns ``{"history", "scores", "model", ...}``."""
    from .evaluate import evaluate, format_scores

    if config.threads:
        torch.set_num_threads(config.threads)
    rank, world = _dist()
    out = Path(config.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    _barrier()
    tokenizer = course_tokenizer()
    vocab = build_vocab(tokenizer)
    model = config.build(vocab)
    history: dict[str, list] = {}
    scores: dict[str, dict] = {}
    tables: dict[str, list] = {}
    times: dict[str, float] = {}
    for stage in config.stages:
        key = stage.key
        ckpt, meta_path = out / f"{key}.safetensors", out / f"{key}.json"
        fp = config.fingerprint(config.stages.index(stage))
        tables[key] = set_trainable(model, stage.trainable, verbose=rank == 0,
                                    title=f"{key.replace('stage', 'stage ')}: {stage.name}")
        if ckpt.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()).get("fingerprint") == fp:
            _load_state(model, ckpt)
            meta = json.loads(meta_path.read_text())
            history[key], scores[key], times[key] = meta["history"], meta["scores"], meta["seconds"]
            if rank == 0:
                print(f"{key}: resumed from {ckpt} ({format_scores(scores[key])})")
            continue
        t0 = time.perf_counter()
        head = dense_head(model, config, stage) if stage.data == "dense" else None
        history[key] = train_stage(model, stage, tokenizer, vocab, config, head=head)
        times[key] = round(time.perf_counter() - t0, 1)
        scores[key] = {}
        if rank == 0:
            if config.eval_n and head is not None:
                scores[key] = dense_scores(model.visual, head, n=config.eval_n, media=config.media)
                print(f"{key} ({times[key]:.0f} s): {scores[key]}", flush=True)
            elif config.eval_n:
                scores[key] = evaluate(model, tokenizer, config.eval_n, progress=config.progress)
                print(f"{key} ({times[key]:.0f} s): {format_scores(scores[key])}", flush=True)
            from safetensors.torch import save_file

            save_file(_state(model), str(ckpt))
            meta_path.write_text(json.dumps({"fingerprint": fp, "history": history[key], "scores": scores[key],
                                             "seconds": times[key], "stage": stage.to_dict(),
                                             "trainable": tables[key]}) + "\n")
        _barrier()
    set_trainable(model, [], verbose=False)
    result = {"history": history, "scores": scores, "trainable": tables, "seconds": times, "model": model,
              "tokenizer": tokenizer, "vocab": vocab}
    if config.lora is not None:
        result.update(train_lora(model, config, tokenizer, vocab))
    return result


def train_lora(model: CourseQwen2VL, config: TrainConfig, tokenizer: Any, vocab: CourseVocab) -> dict[str, Any]:
    """The LoRA variant of stage 3, from the weights stage 3 starts from (the last stage before it: a copy;
    the shipped model is untouched)."""
    import copy

    from .evaluate import evaluate, format_scores

    out = Path(config.out)
    base = copy.deepcopy(model)
    keys = [s.key for s in config.stages]
    first3 = next((i for i, s in enumerate(config.stages) if s.index == 3), len(keys))
    if first3 > 0 and (out / f"{keys[first3 - 1]}.safetensors").is_file():
        _load_state(base, out / f"{keys[first3 - 1]}.safetensors")
    torch.manual_seed(config.seed + 2)  # the adapters' initialisation: the same whether the stages ran or resumed
    peft_model = lora_model(base)
    stage = config.lora
    table = set_trainable(peft_model, stage.trainable, verbose=_dist()[0] == 0,
                          title=f"stage 3 (LoRA): {stage.name}")
    peft_model.vocab, peft_model.media = base.vocab, base.media
    t0 = time.perf_counter()
    hist = train_stage(peft_model, stage, tokenizer, vocab, config)
    seconds = round(time.perf_counter() - t0, 1)
    sc = {}
    if _dist()[0] == 0:
        sc = evaluate(peft_model, tokenizer, config.eval_n, progress=config.progress) if config.eval_n else {}
        print(f"stage 3 LoRA ({seconds:.0f} s): {format_scores(sc)}", flush=True)
        (out / "lora.json").write_text(json.dumps({"history": hist, "scores": sc, "seconds": seconds,
                                                   "trainable": table, "stage": stage.to_dict()}) + "\n")
    _barrier()
    return {"lora": {"history": hist, "scores": sc, "seconds": seconds, "trainable": table}}


SMOKE_MODEL = dict(vision_width=32, vision_depth=1, text_width=64, text_layers=1, text_heads=4, kv_heads=2, mlp=128)


def smoke_config(out: str | Path, *, steps: int = 2, batch_size: int = 4, progress: bool = False) -> TrainConfig:
    """Every stage (and LoRA) for ``steps`` steps of ``batch_size`` at a tiny width: the CI run of this code."""
    stages = tuple(replace(s, steps=steps, batch_size=batch_size, warmup=1, lead_steps=min(s.lead_steps, steps // 2))
                   for s in STAGES)
    return TrainConfig(out=str(out), stages=stages, lora=replace(LORA_STAGE, steps=1, batch_size=batch_size, warmup=1),
                       model=SMOKE_MODEL, eval_n=0, workers=0, progress=progress)


def _with_text_stages(config: TrainConfig, **fields: Any) -> TrainConfig:
    """``config`` with ``fields`` set on every text stage (not the dense stage 0v) and on LoRA."""
    stages = tuple(s if s.data == "dense" else replace(s, **fields) for s in config.stages)
    lora = None if config.lora is None else replace(config.lora, **fields)
    return replace(config, stages=stages, lora=lora)


def with_micro_batch(config: TrainConfig, micro_batch: int) -> TrainConfig:
    """``config`` with every text stage (and LoRA) run in micro-batches of ``micro_batch`` chats (``Stage.micro_batch``)."""
    return _with_text_stages(config, micro_batch=micro_batch)


def with_loss(config: TrainConfig, loss: str, digit_weight: float) -> TrainConfig:
    """``config`` with every text stage (and LoRA) on ``loss`` / ``digit_weight`` (``Stage.loss``)."""
    return _with_text_stages(config, loss=loss, digit_weight=digit_weight)


def with_lead(config: TrainConfig, task: str, steps: int) -> TrainConfig:
    """``config`` whose stage 2 first trains ``steps`` steps on one-question ``task`` chats alone (a curriculum)."""
    from .data import TASKS

    if task not in TASKS or steps < 1:
        raise ValueError(f"--lead wants TASK:STEPS with TASK in {list(TASKS)} and STEPS >= 1, got {task}:{steps}")
    stages = tuple(replace(s, steps=s.steps + steps, lead=task, lead_steps=steps) if s.key == "stage2" else s
                   for s in config.stages)
    return replace(config, stages=stages)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwenvl_study.train",
                                     description="Train the course's tiny Qwen2-VL from nothing (issue 12).")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="outputs directory (checkpoints, history, scores)")
    parser.add_argument("--ship", default=None, help="also write the final model here (the package's course_model/)")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every stage's steps (smoke runs)")
    parser.add_argument("--eval-n", type=int, default=100, help="held-out questions per task after each stage")
    parser.add_argument("--no-lora", action="store_true", help="skip the LoRA variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    parser.add_argument("--workers", type=int, default=1, help="data worker processes per training process")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run of the same code at a tiny width (tests)")
    parser.add_argument("--lead", default=None, metavar="TASK:STEPS",
                        help="a curriculum: stage 2 first trains STEPS steps on one-question TASK chats alone "
                             "(added to its steps), then its mix")
    parser.add_argument("--loss", choices=("token", "answer"), default="token",
                        help="the text stages' loss: per-token mean (the recipe) or every answer weighing 1")
    parser.add_argument("--digit-weight", type=float, default=1.0,
                        help="with --loss answer: the factor of a box's coordinate digit inside its answer")
    parser.add_argument("--where", type=float, default=None, metavar="WEIGHT",
                        help="stage 0v's weight of the 'where' target (the shape's box as canvas fractions)")
    parser.add_argument("--where-on", choices=WHERE_ON, default=None,
                        help="which patches carry the 'where' target: each shape's centre patch (default) or every "
                             "patch it covers most")
    parser.add_argument("--rope-theta", type=float, default=None, help="the LLM's rotary base (course_config)")
    parser.add_argument("--micro-batch", type=int, default=None, metavar="N",
                        help="run each rank's chats of a step in micro-batches of N, sorted by length (less padding; "
                             "the same loss to float rounding, not bit for bit: another run)")
    args = parser.parse_args(argv)
    if args.micro_batch is not None and (args.micro_batch < 0 or args.loss != "token"):
        parser.error(f"--micro-batch {args.micro_batch}: needs N >= 0 and --loss token")

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo")
    stages = tuple(replace(s, steps=max(1, round(s.steps * args.steps_scale))) for s in STAGES)
    lora = None if args.no_lora else replace(LORA_STAGE, steps=max(1, round(LORA_STAGE.steps * args.steps_scale)))
    config = TrainConfig(out=args.out, stages=stages, lora=lora, eval_n=args.eval_n, threads=args.threads,
                         workers=args.workers, progress=not args.no_progress)
    if args.smoke:
        config = smoke_config(args.out, progress=not args.no_progress)
    if args.loss != "token" or args.digit_weight != 1.0:
        config = with_loss(config, args.loss, args.digit_weight)
    if args.micro_batch is not None:
        config = with_micro_batch(config, args.micro_batch)
    if args.rope_theta is not None:
        config = replace(config, model={**config.model, "rope_theta": args.rope_theta})
    if args.where is not None:
        config = replace(config, stages=tuple(replace(s, where_weight=args.where) if s.data == "dense" else s
                                              for s in config.stages))
    if args.where_on is not None:
        config = replace(config, stages=tuple(replace(s, where_on=args.where_on) if s.data == "dense" else s
                                              for s in config.stages))
    if args.lead:
        task, _, n = args.lead.partition(":")
        config = with_lead(config, task, int(n))
    t0 = time.perf_counter()
    result = train(config)
    rank, _ = _dist()
    if rank == 0:
        wall = round(time.perf_counter() - t0, 1)
        summary = {"scores": result["scores"], "seconds": result["seconds"], "wall_seconds": wall,
                   "lora": {k: v for k, v in result.get("lora", {}).items() if k != "history"},
                   "history": result["history"], "lora_history": result.get("lora", {}).get("history"),
                   "trainable": result["trainable"], "stages": [s.to_dict() for s in config.stages],
                   "threads": torch.get_num_threads(), "world_size": world,
                   "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
        Path(config.out, "history.json").write_text(json.dumps(summary) + "\n")
        _plot(summary, Path(config.out) / "loss_curves.png")
        if args.ship:
            from .shipped import write_card

            summary["parameters"] = sum(p.numel() for p in result["model"].parameters())
            save_course_model(result["model"], args.ship, extra={"train_seconds": wall})
            Path(args.ship, "history.json").write_text(json.dumps(summary) + "\n")
            write_card(args.ship, summary)
        print(f"done in {wall:.0f} s; outputs in {config.out}")
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


def _plot(summary: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    fig, ax = plt.subplots(figsize=(8, 4), dpi=120)
    offset = 0
    for key, rows in summary["history"].items():
        xs = [offset + r["step"] for r in rows]
        ax.plot(xs, [r["loss"] for r in rows], label=key)
        offset += len(rows)
    ax.set_yscale("log")
    ax.set_xlabel("step (stages in sequence)")
    ax.set_ylabel("loss (answer tokens)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
