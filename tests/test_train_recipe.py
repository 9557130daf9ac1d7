"""The recipe's pieces: the trimmed vocabulary, the label mask, the freeze helper (and its trap), LoRA targets."""

import pytest
import torch

from qwenvl_study.train.course import IGNORE, CourseQwen2VL, course_config, encode_sample
from qwenvl_study.train.data import make_sample, make_text_sample, all_course_text
from qwenvl_study.train.loop import SMOKE_MODEL, init_weights
from qwenvl_study.train.recipe import (LORA_TARGET_REGEX, STAGES, check_freeze_trap, lora_model, set_trainable,
                                       trainable_table)
from qwenvl_study.train.vocab import REAL_VOCAB_SIZE, build_vocab, course_tokenizer
from qwenvl_study.chat import SPECIAL_TOKENS


@pytest.fixture(scope="module")
def tv():
    tok = course_tokenizer()
    return tok, build_vocab(tok)


@pytest.fixture()
def model(tv):
    _, vocab = tv
    m = CourseQwen2VL(course_config(vocab, **SMOKE_MODEL), vocab)
    init_weights(m, 0)
    return m


def test_vocab_keeps_real_ids_and_specials(tv):
    tok, vocab = tv
    assert vocab.size < 200 and vocab.unk == vocab.size - 1
    for token, real in SPECIAL_TOKENS.items():
        assert vocab.real_ids[vocab.special(token)] == real
    for text in all_course_text():
        real = tok.encode(text)
        local = vocab.to_local(real)
        assert (local != vocab.unk).all(), text
        assert vocab.to_real(local).tolist() == real  # round trip: the boundary loses nothing
        assert tok.decode(vocab.to_real(local).tolist()) == text
    assert int(vocab.to_local([tok.encode(" elephant")[0]])[0]) == vocab.unk
    with pytest.raises(ValueError, match="real token ids"):
        vocab.to_local([REAL_VOCAB_SIZE])
    with pytest.raises(ValueError, match="local token ids"):
        vocab.to_real([vocab.size])


def test_the_real_tokenizer_ids():
    tok = course_tokenizer()
    assert tok.encode("<|im_start|>assistant\n") == [151644, 77091, 198]  # Qwen2-VL-Instruct's ids
    assert tok.encode("(12,3)") == [7, 16, 17, 11, 18, 8]  # one token per digit


def test_label_mask_is_the_answer_and_im_end(tv):
    tok, vocab = tv
    for sample in (make_sample(2, 0, "find"), make_sample(2, 1, "direction"), make_text_sample(2, 2)):
        ex = encode_sample(sample, tok, vocab)
        sup = ex.labels != IGNORE
        assert tok.decode(vocab.to_real(ex.input_ids[sup]).tolist()) == sample.answer + "<|im_end|>"
        assert (ex.labels[sup] == ex.input_ids[sup]).all()
        # the supervised tokens are the last ones (the sequence ends at the answer's <|im_end|>)
        assert sup[-1] and int(ex.input_ids[-1]) == vocab.special("<|im_end|>")
        for pad in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|im_start|>"):
            assert not sup[ex.input_ids == vocab.special(pad)].any()


def test_label_mask_covers_every_turn(tv):
    tok, vocab = tv
    sample = next(s for s in (make_sample(3, i, "count", max_turns=4) for i in range(50)) if len(s.extra_turns) >= 2)
    ex = encode_sample(sample, tok, vocab)
    text = tok.decode(vocab.to_real(ex.input_ids[ex.labels != IGNORE]).tolist())
    want = "".join(a + "<|im_end|>" for a in [sample.answer] + [a for _, a in sample.extra_turns])
    assert text == want


def test_separate_and_joint_encoding_agree(tv):
    tok, _ = tv
    prompt = "<|im_start|>assistant\n"
    for answer in ("3", "red circle, blue square", "<|object_ref_start|>the red circle<|object_ref_end|>"):
        assert tok.encode(prompt + answer) == tok.encode(prompt) + tok.encode(answer)


def test_freeze_helper_per_stage(model, capsys):
    for stage in STAGES:
        table = {r["module"]: r for r in set_trainable(model, stage.trainable, title=f"stage {stage.index}")}
        vis = sum(table[m]["trainable"] for m in ("visual.patch_embed", "visual.blocks", "visual.merger"))
        llm = sum(table[m]["trainable"] for m in ("model.embed_tokens", "model.layers", "model.norm"))
        assert (vis > 0) == any(t.startswith("visual.") for t in stage.trainable)
        assert (llm > 0) == ("model." in stage.trainable)
        for p_name, p in model.named_parameters():
            assert p.requires_grad == any(p_name.startswith(x) for x in stage.trainable)
    out = capsys.readouterr().out
    assert "stage 1" in out and "visual.blocks" in out and "% trainable" in out


def test_the_requires_grad_attribute_trap(model):
    model.visual.requires_grad = False  # the official fine-tune script's line: freezes nothing
    assert all(p.requires_grad for p in model.visual.parameters())
    with pytest.raises(ValueError, match="freezes nothing"):
        set_trainable(model, ("model.",))
    with pytest.raises(ValueError, match="visual"):
        check_freeze_trap(model)
    del model.visual.requires_grad
    model.visual.requires_grad_(False)  # the real thing
    check_freeze_trap(model)
    assert not any(p.requires_grad for p in model.visual.parameters())


def test_lora_wraps_llm_attention_only(model):
    layers = model.config.text.num_hidden_layers
    peft_model = lora_model(model, r=4, alpha=8)
    wrapped = [n for n, m in peft_model.named_modules() if hasattr(m, "lora_A")]
    assert len(wrapped) == 4 * layers
    assert all("visual" not in n and n.split(".")[-1] in ("q_proj", "k_proj", "v_proj", "o_proj") for n in wrapped)
    table = {r["module"]: r for r in set_trainable(peft_model, ("lora_",), verbose=False)}
    assert table["lora"]["trainable"] == table["lora"]["total"] > 0
    assert sum(r["trainable"] for k, r in table.items() if k != "lora") == 0
    # the usual LLM list as bare names catches the ViT too on a Qwen2.5-VL-like tree; on Qwen2-VL's
    # ViT the names differ (qkv/proj/fc1/fc2): list what bare names would hit in ours
    import re

    hits = {n for n, _ in model.named_modules() if re.fullmatch(r".*\.(qkv|proj|fc1|fc2)", n)}
    assert hits and all(n.startswith("visual.") for n in hits)


def test_trainable_table_counts_tied_weights_once(model):
    set_trainable(model, ("model.",), verbose=False)
    total = sum(r["total"] for r in trainable_table(model))
    assert total == sum(p.numel() for p in model.parameters())
