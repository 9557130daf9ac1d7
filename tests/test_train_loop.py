"""The training loop through the same code as ``make train``: a smoke run, resuming, and 2 processes (DDP).

The 2-process run (``torchrun --nproc_per_node 2``, gloo) must give the 1-process loss curve for the
same global batch: each rank divides its summed loss by the global token count, so the gradients
are the same up to float rounding; tolerance 1e-5 relative per step.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qwenvl_study.train.loop import smoke_config, train
from qwenvl_study.train.recipe import STAGES, VISUAL

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("train1")
    return out, train(smoke_config(out))


def _curve(history):
    return [r["loss"] for key in sorted(history) for r in history[key]]


def test_smoke_run_trains_every_stage(one_process):
    out, result = one_process
    assert sorted(result["history"]) == ["stage0", "stage0v", "stage1", "stage2", "stage3", "stage3a", "stage3b", "stage3c",
                                         "stage3d"]
    curve = _curve(result["history"])
    assert len(curve) == 2 * len(STAGES) and all(math.isfinite(v) and v > 0 for v in curve)
    assert curve[-1] < curve[0]  # it learns something even in 14 tiny steps
    for k in ("0", "0v", "1", "2", "3a", "3b", "3c", "3d", "3"):
        assert (out / f"stage{k}.safetensors").is_file() and (out / f"stage{k}.json").is_file()
    # the trainable parameters per stage follow the recipe
    t = {k: {r["module"]: r["trainable"] for r in rows} for k, rows in result["trainable"].items()}
    assert t["stage1"]["model.layers"] == 0 and t["stage1"]["visual.blocks"] == 0  # the recipe: the merger alone
    assert t["stage1"]["visual.merger"] > 0
    for k in ("stage3a", "stage3b", "stage3c", "stage3d", "stage3"):  # stage 3's curriculum: the ViT frozen throughout
        assert t[k]["visual.blocks"] == 0 and t[k]["visual.merger"] == 0 and t[k]["model.layers"] > 0
    assert t["stage0"]["visual.blocks"] == 0
    assert t["stage0v"]["visual.blocks"] > 0 and t["stage0v"]["visual.merger"] > 0 and t["stage0v"]["model.layers"] == 0
    lora = {r["module"]: r["trainable"] for r in result["lora"]["trainable"]}
    assert lora["lora"] > 0 and sum(v for k, v in lora.items() if k != "lora") == 0


def test_lora_adapters_are_seeded(one_process, tmp_path):
    """The LoRA variant starts from the same adapters whatever ran before it (stages trained or resumed): two
    steps from two different global RNG states give the same losses (one step would not tell: B starts at 0)."""
    from dataclasses import replace

    from qwenvl_study.train.loop import train_lora
    from qwenvl_study.train.vocab import build_vocab, course_tokenizer

    _, result = one_process
    tok = course_tokenizer()
    config = smoke_config(tmp_path)
    config = replace(config, lora=replace(config.lora, steps=2))
    runs = []
    for state in (1, 2):
        torch.manual_seed(state)
        runs.append([r["loss"] for r in train_lora(result["model"], config, tok, build_vocab(tok))["lora"]["history"]])
    assert len(runs[0]) == 2 and runs[0] == runs[1]


def test_resume_skips_finished_stages(one_process, capsys):
    out, result = one_process
    again = train(smoke_config(out))
    assert _curve(again["history"]) == _curve(result["history"])
    assert capsys.readouterr().out.count("resumed from") == len(STAGES)
    sd1, sd2 = result["model"].state_dict(), again["model"].state_dict()
    assert all((sd1[k] == sd2[k]).all() for k in sd1)


def _torchrun_smoke(out, *extra):
    """``make train``'s command at smoke scale on 2 processes (gloo); returns its history.json."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "qwenvl_study.train", "--smoke", "--no-progress", *extra, "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "history.json").read_text())


def test_two_processes_give_the_one_process_curve(one_process, tmp_path):
    _, result = one_process
    summary = _torchrun_smoke(tmp_path)
    assert summary["world_size"] == 2
    ddp, single = _curve(summary["history"]), _curve(result["history"])
    assert len(ddp) == len(single)
    worst = max(abs(a - b) / b for a, b in zip(ddp, single))
    print(f"2-process vs 1-process loss curve: worst relative difference {worst:.2e}")
    assert worst <= 1e-5, (worst, ddp, single)


def test_micro_batches_on_two_processes_give_the_one_process_curve(one_process, tmp_path):
    """``--micro-batch 1``: each rank's chats one at a time, DDP's all-reduce on the last (``no_sync`` before it),
    against one process with one padded batch per step: the same curve to float rounding."""
    _, result = one_process
    summary = _torchrun_smoke(tmp_path, "--micro-batch", "1")
    assert [s.get("micro_batch") for s in summary["stages"]] == [1, None, 1, 1, 1, 1, 1, 1, 1]  # 0v: dense
    ddp, single = _curve(summary["history"]), _curve(result["history"])
    assert len(ddp) == len(single)
    worst = max(abs(a - b) / b for a, b in zip(ddp, single))
    print(f"micro-batches of 1, 2-process vs 1-process: worst relative difference {worst:.2e}")
    assert worst <= 1e-5, (worst, ddp, single)


def test_two_processes_give_the_one_process_curve_with_the_answer_loss(tmp_path):
    """The re-weighted loss (``--loss answer``) divides by the global number of answers: same curve too."""
    from qwenvl_study.train.loop import with_loss

    single = train(with_loss(smoke_config(tmp_path / "one"), "answer", 0.25))
    summary = _torchrun_smoke(tmp_path / "two", "--loss", "answer", "--digit-weight", "0.25")
    assert summary["stages"][0]["loss"] == "answer" and summary["stages"][1].get("loss") is None  # 0v: dense
    ddp, one = _curve(summary["history"]), _curve(single["history"])
    assert len(ddp) == len(one)
    worst = max(abs(a - b) / b for a, b in zip(ddp, one))
    print(f"answer loss, 2-process vs 1-process: worst relative difference {worst:.2e}")
    assert worst <= 1e-5, (worst, ddp, one)
    plain = _curve(train(smoke_config(tmp_path / "plain"))["history"])
    assert max(abs(a - b) for a, b in zip(plain, one)) > 1e-3  # the option changes the loss


def test_deterministic_from_nothing(one_process, tmp_path):
    _, result = one_process
    cfg = smoke_config(tmp_path)
    cfg.lora = None
    again = train(cfg)
    assert _curve(again["history"]) == _curve(result["history"])  # bit for bit
    sd1, sd2 = result["model"].state_dict(), again["model"].state_dict()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)


def test_a_stage_after_evaluation_trains_on_row_major_weights(tmp_path):
    """Evaluation's ``generate`` stores wide matrices column-major (the decode layout) on rank 0 only;
    DDP then refused the next stage ("params[63] ... appears not to match strides" in a real 2-process
    run). Each stage starts from row-major parameters again, on every rank."""
    from dataclasses import replace

    from qwenvl_study.language import use_decode_layout
    from qwenvl_study.train.loop import train_stage
    from qwenvl_study.train.recipe import set_trainable
    from qwenvl_study.train.vocab import build_vocab, course_tokenizer

    cfg = smoke_config(tmp_path)
    tokenizer = course_tokenizer()
    vocab = build_vocab(tokenizer)
    model = cfg.build(vocab)
    assert use_decode_layout(model) > 0  # what generate() does
    assert not all(p.is_contiguous() for p in model.parameters())
    stage = replace(cfg.stages[-1], steps=1)
    set_trainable(model, stage.trainable, verbose=False)
    train_stage(model, stage, tokenizer, vocab, cfg)
    assert all(p.is_contiguous() for p in model.parameters())


def test_parameter_groups_per_part_scale_the_vit_step(tmp_path):
    """``Stage.visual_lr_scale``: the ViT + merger in their own optimiser group at that multiple of the stage's
    learning rate. Adam's first step moves a parameter by ~lr (its gradient's sign), so after one step the
    ViT's largest move is ~0.1x the LLM's at scale 0.1 and comparable at scale 1; 1.0 keeps one group."""
    from dataclasses import replace

    from qwenvl_study.train.loop import parameter_groups, train_stage
    from qwenvl_study.train.recipe import set_trainable
    from qwenvl_study.train.vocab import build_vocab, course_tokenizer

    cfg = smoke_config(tmp_path)
    tokenizer = course_tokenizer()
    vocab = build_vocab(tokenizer)
    stage2 = next(s for s in cfg.stages if s.key == "stage2")
    moves = {}
    for scale in (1.0, 0.1):
        stage = replace(stage2, steps=1, warmup=1, visual_lr_scale=scale, visual_lr_on=VISUAL)  # all of visual.*
        model = cfg.build(vocab)
        set_trainable(model, stage.trainable, verbose=False)
        groups = parameter_groups(model, stage)
        trainable = [p for p in model.parameters() if p.requires_grad]
        assert sum(len(g["params"]) for g in groups) == len(trainable)
        if scale == 1.0:
            assert len(groups) == 1 and groups[0]["lr_scale"] == 1.0 and groups[0]["params"] == trainable
        else:
            visual = {id(p) for n, p in model.named_parameters() if n.startswith("visual.")}
            assert [g["lr_scale"] for g in groups] == [1.0, 0.1]
            assert {id(p) for p in groups[1]["params"]} == visual
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        train_stage(model, stage, tokenizer, vocab, cfg)
        step = {n: (p.detach() - before[n]).abs().max().item() for n, p in model.named_parameters()}
        moves[scale] = (max(v for n, v in step.items() if n.startswith("visual.")),
                        max(v for n, v in step.items() if not n.startswith("visual.")))
    ratio_1, ratio_01 = (moves[s][0] / moves[s][1] for s in (1.0, 0.1))
    assert 0.5 < ratio_1 < 2.0, moves
    assert 0.05 < ratio_01 < 0.2, moves


def test_visual_lr_on_narrows_the_slow_group_to_its_prefixes(tmp_path):
    """``Stage.visual_lr_on``: only the parameters under those prefixes take ``visual_lr_scale`` (the ViT blocks,
    the patch embedding and merger at 1x with the LLM); its default leaves a stage's dict, hence its fingerprint,
    as before the field existed."""
    from dataclasses import replace

    from qwenvl_study.train.loop import parameter_groups
    from qwenvl_study.train.recipe import set_trainable
    from qwenvl_study.train.vocab import build_vocab, course_tokenizer

    cfg = smoke_config(tmp_path)
    stage2 = replace(next(s for s in cfg.stages if s.key == "stage2"), visual_lr_scale=1.0, visual_lr_on=VISUAL)
    assert "visual_lr_on" not in stage2.to_dict() and "visual_lr_scale" not in stage2.to_dict()
    stage = replace(stage2, visual_lr_scale=0.1, visual_lr_on=("visual.blocks",))
    assert stage.to_dict()["visual_lr_on"] == ("visual.blocks",)
    model = cfg.build(build_vocab(course_tokenizer()))
    set_trainable(model, stage.trainable, verbose=False)
    groups = parameter_groups(model, stage)
    assert [g["lr_scale"] for g in groups] == [1.0, 0.1]
    slow = {id(p) for n, p in model.named_parameters() if n.startswith("visual.blocks.")}
    assert slow and {id(p) for p in groups[1]["params"]} == slow
    fast = {id(p) for p in groups[0]["params"]}
    assert all(id(p) in fast for n, p in model.named_parameters() if n.startswith(("visual.merger", "visual.patch_embed")))


def test_where_target_and_rope_theta_flags_reach_the_run(one_process, tmp_path):
    """``--where W`` gives stage 0v (only) the "where" target and its loss term (``--where-on shape``: on every
    patch of a shape), ``--rope-theta`` the LLM's rotary base: the stage-0v and stage-0 curves differ from the
    plain run's, and so does the fingerprint."""
    from qwenvl_study.train.loop import main

    assert main(["--smoke", "--no-progress", "--out", str(tmp_path), "--where", "5", "--where-on", "shape",
                 "--rope-theta", "1e6"]) == 0
    summary = json.loads((tmp_path / "history.json").read_text())
    assert [s.get("where_weight") for s in summary["stages"]] == [5.0 if s.key == "stage0v" else None for s in STAGES]
    assert [s.get("where_on") for s in summary["stages"]] == ["shape" if s.key == "stage0v" else None for s in STAGES]
    plain = one_process[1]["history"]
    assert summary["history"]["stage0v"][0]["loss"] > plain["stage0v"][0]["loss"]  # the extra term adds to the loss
    assert abs(summary["history"]["stage0"][-1]["loss"] - plain["stage0"][-1]["loss"]) > 1e-6  # another rotary base
    cfg = json.loads((tmp_path / "stage0.json").read_text())
    assert cfg["fingerprint"] != json.loads((one_process[0] / "stage0.json").read_text())["fingerprint"]
