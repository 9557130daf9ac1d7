"""The course model's training loss: every answer weighs 1 (``course.answer_weights``), a box's digit
``digit_weight`` inside its answer (``course.box_digit_weights``), DDP-safe as (sum, number of answers).

Checked against a plain per-answer loop on random label masks (hypothesis), against transformers'
per-token mean where the two must agree (answers of equal length, weights 1), and on the real vocabulary.
"""

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenvl_study.train import data as D
from qwenvl_study.train.course import (IGNORE, answer_loss, answer_weights, box_digit_weights, encode_sample,
                                       weighted_answer_loss)
from qwenvl_study.train.loop import box_digits
from qwenvl_study.train.vocab import build_vocab, course_tokenizer


@st.composite
def label_batches(draw):
    """Labels [B, L] with runs of supervised tokens (answers) separated by -100, and logits [B, L, V]."""
    B, L, V = draw(st.integers(1, 3)), draw(st.integers(2, 24)), draw(st.integers(2, 9))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    sup = torch.rand(B, L, generator=g) < draw(st.floats(0.1, 0.9))
    labels = torch.where(sup, torch.randint(0, V, (B, L), generator=g), torch.full((B, L), IGNORE))
    return labels, torch.randn(B, L, V, generator=g), torch.rand(B, L - 1, generator=g) + 0.1


def _answers(row):
    """Index lists of the runs of supervised targets in one shifted label row."""
    runs, cur = [], []
    for k, t in enumerate(row.tolist()):
        if t != IGNORE:
            cur.append(k)
        elif cur:
            runs.append(cur)
            cur = []
    return runs + ([cur] if cur else [])


@settings(max_examples=60, deadline=None)
@given(label_batches())
def test_weights_sum_to_one_per_answer(batch):
    labels, _, _ = batch
    w = answer_weights(labels)
    runs = [_answers(row) for row in labels[:, 1:]]
    for b, rb in enumerate(runs):
        covered = set()
        for run in rb:
            assert torch.allclose(w[b, run].sum(), torch.tensor(1.0), atol=1e-6)
            assert torch.allclose(w[b, run], w[b, run[0]].expand(len(run)))  # equal inside an answer
            covered |= set(run)
        outside = [k for k in range(w.shape[1]) if k not in covered]
        assert (w[b, outside] == 0).all()
    assert round(float(w.sum())) == sum(len(rb) for rb in runs)


@settings(max_examples=60, deadline=None)
@given(label_batches())
def test_weighted_loss_equals_a_per_answer_loop(batch):
    labels, logits, tw = batch
    total, n = weighted_answer_loss(logits, labels, tw)
    want, count = 0.0, 0
    lp = F.log_softmax(logits[:, :-1].float(), -1)
    for b, row in enumerate(labels[:, 1:]):
        for run in _answers(row):
            want += sum(-lp[b, k, row[k]].item() * tw[b, k].item() for k in run) / len(run)
            count += 1
    assert int(n) == count
    assert abs(total.item() - want) <= 1e-5 * max(1.0, abs(want))


def test_equal_length_answers_give_transformers_mean():
    g = torch.Generator().manual_seed(0)
    labels = torch.full((3, 12), IGNORE)
    labels[:, 2:5] = torch.randint(0, 7, (3, 3), generator=g)  # one 3-token answer per row
    labels[1, 7:10] = torch.randint(0, 7, (3,), generator=g)  # and a second one in row 1
    logits = torch.randn(3, 12, 7, generator=g)
    total, n = weighted_answer_loss(logits, labels)
    assert int(n) == 4
    assert torch.allclose(total / n, answer_loss(logits, labels), atol=1e-6)
    # unequal lengths: a 1-token answer now weighs as much as a 5-token one (the per-token mean differs)
    labels[2, 5:7] = torch.randint(0, 7, (2,), generator=g)
    total, n = weighted_answer_loss(logits, labels)
    assert not torch.allclose(total / n, answer_loss(logits, labels), atol=1e-4)


def test_box_digits_weigh_less_a_counts_digit_does_not():
    tok = course_tokenizer()
    vocab = build_vocab(tok)
    digits, start, end = box_digits(vocab, tok)
    assert len(set(digits.tolist())) == 10
    chat = D.make_sample(5, 3, "find", max_turns=3)  # a box answer, then a description, then a count
    ex = encode_sample(chat, tok, vocab)
    f = box_digit_weights(ex.labels[None], digits, start, end, 0.25)[0]  # [L-1]
    t = ex.labels[1:]
    words = [(tok.decode(vocab.to_real(t[k:k + 1]).tolist()), float(f[k])) for k in range(len(t)) if t[k] != IGNORE]
    box = [w for w, _ in words].index("<|box_start|>"), [w for w, _ in words].index("<|box_end|>")
    inside = words[box[0] + 1:box[1]]
    assert sum(w.isdigit() for w, _ in inside) >= 8
    assert all(fw == (0.25 if w.isdigit() else 1.0) for w, fw in inside)
    assert all(fw == 1.0 for w, fw in words[:box[0] + 1] + words[box[1]:])
    assert words[-2][0].isdigit() and words[-2][1] == 1.0  # the count's digit keeps weight 1
    # the answers' totals: a box 16/25, the description and the count 1
    w = answer_weights(ex.labels[None])[0] * f
    assert abs(float(w.sum()) - (16 / 25 + 1 + 1)) < 1e-5


def test_a_default_stage_keeps_its_fingerprint_fields():
    from dataclasses import replace

    from qwenvl_study.train.recipe import STAGES

    plain = STAGES[3].to_dict()
    assert "loss" not in plain and "digit_weight" not in plain  # fingerprints of runs before the option stay valid
    weighted = replace(STAGES[3], loss="answer", digit_weight=0.25).to_dict()
    assert weighted["loss"] == "answer" and weighted["digit_weight"] == 0.25


def test_a_curriculum_lead_draws_one_task_alone_then_the_mix():
    import pytest

    from qwenvl_study.train.course import COURSE_MEDIA
    from qwenvl_study.train.loop import TrainConfig, stage_batch, with_lead

    tok = course_tokenizer()
    vocab = build_vocab(tok)
    cfg = with_lead(TrainConfig(), "find", 5)
    stage = next(s for s in cfg.stages if s.key == "stage2")
    plain = next(s for s in TrainConfig().stages if s.key == "stage2")
    assert stage.lead == "find" and stage.lead_steps == 5 and stage.steps == plain.steps + 5  # the lead adds its steps
    assert stage.to_dict()["lead"] == "find"
    assert [s.steps for s in cfg.stages if s.key != "stage2"] == [s.steps for s in TrainConfig().stages if s.key != "stage2"]
    first = stage_batch(stage, 4, tok, vocab, COURSE_MEDIA)  # the lead's last step
    later = stage_batch(stage, 5, tok, vocab, COURSE_MEDIA)  # the mix's first
    texts = [tok.decode(vocab.to_real(row).tolist()) for row in first["input_ids"]]
    assert all(t.count("Find the") == 1 for t in texts)  # one find question per chat
    assert round(float(answer_weights(first["labels"]).sum())) == stage.batch_size
    later_texts = [tok.decode(vocab.to_real(row).tolist()) for row in later["input_ids"]]
    assert any("How many shapes" in t or "Describe" in t or "Which way" in t for t in later_texts)  # the mix
    with pytest.raises(ValueError, match="TASK:STEPS"):
        with_lead(TrainConfig(), "finds", 5)


def test_a_weighted_lead_draws_one_question_chats_of_every_task():
    """``Stage.lead_weight``: the lead's chats hold one question each, of every task of the mix, the lead's task the
    most often; at 0 (the default) the lead is its task alone and the stage's dict (its fingerprint) has no key."""
    from collections import Counter
    from dataclasses import replace

    from qwenvl_study.train.course import COURSE_MEDIA
    from qwenvl_study.train.loop import stage_batch
    from qwenvl_study.train.recipe import STAGES

    tok = course_tokenizer()
    vocab = build_vocab(tok)
    base = replace(next(s for s in STAGES if s.key == "stage3"), batch_size=32, lead="direction", lead_steps=2)
    assert "lead_weight" not in replace(base, lead_weight=0.0).to_dict()
    kinds = {"How many shapes": "count", "Find the": "find", "Describe": "describe", "Which way": "direction"}

    def asked(stage, step):
        texts = [tok.decode(vocab.to_real(row).tolist()) for row in stage_batch(stage, step, tok, vocab, COURSE_MEDIA)["input_ids"]]
        per_chat = [[k for q, k in kinds.items() for _ in range(t.count(q))] for t in texts]
        assert all(len(q) == 1 for q in per_chat), per_chat  # one question per chat in the lead
        return Counter(q[0] for q in per_chat)

    weighted = replace(base, lead_weight=6.0)
    assert weighted.to_dict()["lead_weight"] == 6.0
    got = asked(weighted, 0) + asked(weighted, 1)
    assert set(got) == {"count", "find", "describe", "direction"}, got  # every task of the mix
    assert got["direction"] == max(got.values()) and got["direction"] > 64 / 3, got  # ~6 / 10.6 of 64
    assert asked(replace(base, lead_weight=0.0), 0) == Counter(direction=32)  # the task alone


@settings(max_examples=6, deadline=None)
@given(micro=st.integers(1, 8), step=st.integers(0, 50), rank=st.integers(0, 1))
def test_micro_batches_give_the_one_batch_loss_and_gradient(micro, step, rank):
    """``Stage.micro_batch``: a rank's chats sorted by length in batches of ``micro`` give the one padded batch's summed
    loss and gradient (float rounding: padding changes no real token's value)."""
    from dataclasses import replace

    from qwenvl_study.train.course import COURSE_MEDIA
    from qwenvl_study.train.loop import SMOKE_MODEL, TrainConfig, build_model, stage_batch, stage_micro_batches
    from qwenvl_study.train.recipe import STAGES

    tok = course_tokenizer()
    vocab = build_vocab(tok)
    model = build_model(vocab, TrainConfig(model=SMOKE_MODEL))
    stage = replace(next(s for s in STAGES if s.key == "stage2"), micro_batch=micro)

    def summed(batches):
        model.zero_grad(set_to_none=True)
        total = 0.0
        for b in batches:
            b = dict(b)
            labels = b.pop("labels")
            part = answer_loss(model(**b), labels, reduction="sum")
            part.backward()
            total += float(part.detach())
        return total, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    parts = stage_micro_batches(stage, step, tok, vocab, COURSE_MEDIA, rank, 2)
    assert len(parts) == -(-8 // micro)  # 8 chats per rank (batch 16, two ranks)
    lengths = [int(b["attention_mask"].sum(1).max()) for b in parts]
    assert lengths == sorted(lengths)  # shortest first
    loss_micro, grad_micro = summed(parts)
    loss_one, grad_one = summed([stage_batch(stage, step, tok, vocab, COURSE_MEDIA, rank, 2)])
    assert abs(loss_micro - loss_one) <= 1e-6 * abs(loss_one)  # measured <= 9.7e-8
    assert grad_micro.keys() == grad_one.keys()
    worst = max(float((grad_micro[n] - grad_one[n]).abs().max() / grad_one[n].abs().max().clamp_min(1e-12)) for n in grad_one)
    assert worst <= 1e-5, worst  # of each tensor's largest entry; measured <= 9.1e-7


def test_micro_batches_refuse_the_answer_loss(tmp_path):
    from dataclasses import replace

    import pytest

    from qwenvl_study.train.loop import SMOKE_MODEL, TrainConfig, build_model, train_stage
    from qwenvl_study.train.recipe import STAGES

    tok = course_tokenizer()
    vocab = build_vocab(tok)
    config = TrainConfig(out=str(tmp_path), model=SMOKE_MODEL, workers=0, progress=False)
    stage = replace(next(s for s in STAGES if s.key == "stage2"), loss="answer", micro_batch=4, steps=1, batch_size=4)
    with pytest.raises(ValueError, match="stage2: micro_batch=4 needs loss='token'"):
        train_stage(build_model(vocab, config), stage, tok, vocab, config)
