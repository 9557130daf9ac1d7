"""chat.py: the published chat template, pad expansion and the full model input — equal to transformers.

The template is rendered by transformers' own Jinja code; the full input (text, input_ids,
mm_token_type_ids, pixel_values, grids, pixel_values_videos) is compared with the seed's pipeline:
qwen-vl-utils' process_vision_info → the template → ``Qwen2VLProcessor(text, images, videos)``
(``reference.hf_prepare_inputs``; its video processor is assembled from transformers' parts, see
reference.py). The tokenizer is the real Qwen2-VL one (``qwenvl_study.tokenizer``); the tiny learnt Qwen2 BPE
written by ``reference.write_tiny_qwen2_tokenizer`` is tested here too (it serves the tiny random models).
"""

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.chat import (CHAT_TEMPLATE, IMAGE_PAD, SPECIAL_TOKENS, VIDEO_PAD, build_prompt, expand_vision_pads,
                               load_tokenizer, prepare_inputs, split_special_tokens)
from qwenvl_study.config import Qwen2VLConfig
from qwenvl_study.course.samples import sample_path

MP4, GIF, PNG = str(sample_path("sample.mp4")), str(sample_path("sample.gif")), str(sample_path("sample.png"))


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return ref.write_tiny_qwen2_tokenizer(tmp_path_factory.mktemp("tiny_tokenizer"))


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return load_tokenizer(tokenizer_dir)


# --- the template ---------------------------------------------------------------------------------
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_item = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, _text),
    st.just({"type": "image", "image": "a.png"}),
    st.just({"type": "video", "video": "v.mp4"}),
    st.just({"image": "b.png"}),  # no "type" key: the template still sees an image
    st.just({"image_url": "http://x/y.png"}),
    st.just({"type": "video", "video": ["f0.png", "f1.png"]}),
    st.builds(lambda t: {"text": t}, _text),
    st.just({"type": "text"}),  # no text: renders nothing
)
_message = st.builds(lambda role, content: {"role": role, "content": content},
                     st.one_of(st.sampled_from(["system", "user", "assistant"]), _text),
                     st.one_of(_text, st.lists(_item, max_size=5)))


@given(messages=st.lists(_message, min_size=1, max_size=5), add_generation_prompt=st.booleans(),
       add_vision_id=st.booleans())
def test_build_prompt_equals_the_jinja_template(messages, add_generation_prompt, add_vision_id):
    check = checks.chat_template(messages, add_generation_prompt=add_generation_prompt, add_vision_id=add_vision_id)
    assert check.ours == check.reference


def test_the_seed_prompt_is_pinned():
    messages = [{"role": "user", "content": [{"type": "image", "image": PNG}, {"type": "video", "video": MP4},
                                             {"type": "text", "text": "Describe."}]}]
    assert build_prompt(messages, add_vision_id=True) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nPicture 1: <|vision_start|><|image_pad|><|vision_end|>"
        "Video 1: <|vision_start|><|video_pad|><|vision_end|>Describe.<|im_end|>\n<|im_start|>assistant\n")
    assert build_prompt(messages) == ref.hf_render_chat(messages)


def test_special_token_ids_agree_with_the_model_config():
    cfg, hf = Qwen2VLConfig(), ref.hf_config(Qwen2VLConfig())
    for token, name in [("<|vision_start|>", "vision_start_token_id"), ("<|vision_end|>", "vision_end_token_id"),
                        ("<|image_pad|>", "image_token_id"), ("<|video_pad|>", "video_token_id")]:
        assert SPECIAL_TOKENS[token] == getattr(cfg, name) == getattr(hf, name)
    assert SPECIAL_TOKENS["<|im_end|>"] == cfg.eos_token_id and SPECIAL_TOKENS["<|endoftext|>"] == cfg.bos_token_id
    # pinned: the published added_tokens_decoder is 151643 … 151656, in this order
    assert list(SPECIAL_TOKENS.values()) == list(range(151643, 151657))
    assert list(SPECIAL_TOKENS)[5:7] == ["<|box_start|>", "<|box_end|>"]


def test_bad_messages():
    with pytest.raises(ValueError, match="message 0 must be a dict with 'role' and 'content'"):
        build_prompt([{"content": "hi"}])
    with pytest.raises(ValueError, match="message 1: content must be a string or a list"):
        build_prompt([{"role": "user", "content": "hi"}, {"role": "user", "content": None}])


# --- pad expansion ----------------------------------------------------------------------------------
@given(grids=st.lists(st.tuples(st.integers(1, 4), st.sampled_from([2, 4, 6]), st.sampled_from([2, 4, 8])),
                      min_size=1, max_size=3))
def test_expand_vision_pads_counts(grids):
    text = "".join(f"x{IMAGE_PAD}y{VIDEO_PAD}" for _ in grids)
    out = expand_vision_pads(text, [(1, h, w) for _, h, w in grids], grids)
    assert out.count(IMAGE_PAD) == sum(h * w // 4 for _, h, w in grids)
    assert out.count(VIDEO_PAD) == sum(t * h * w // 4 for t, h, w in grids)
    runs = [(p, s) for p, s in split_special_tokens(out) if p.startswith(VIDEO_PAD)]
    assert [len(p) // len(VIDEO_PAD) for p, _ in runs] == [t * h * w // 4 for t, h, w in grids]


def test_expand_vision_pads_needs_one_grid_per_pad():
    with pytest.raises(ValueError, match=r"1 <\|image_pad\|> placeholders but 2 image grids"):
        expand_vision_pads(f"a{IMAGE_PAD}", [(1, 2, 2), (1, 2, 2)])


# --- the full model input vs transformers' processor --------------------------------------------------
CONVERSATIONS = {
    "image + mp4": [{"role": "user", "content": [{"type": "image", "image": PNG}, {"type": "video", "video": MP4},
                                                 {"type": "text", "text": "Describe."}]}],
    "gif as image and as video, frame list, two turns": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image", "image": GIF}, {"type": "video", "video": GIF, "fps": 4.0},
                                     {"type": "text", "text": "Same?"}]},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": [
            {"type": "video", "video": [Image.open(PNG), Image.open(PNG), Image.open(PNG)], "max_pixels": 40_000},
            {"type": "image", "image": PNG, "resized_height": 200, "resized_width": 300}]},
    ],
}


@pytest.mark.parametrize("name", list(CONVERSATIONS))
@pytest.mark.parametrize("add_vision_id", [False, True])
def test_prepare_inputs_equals_the_processor(name, add_vision_id):
    """With the real Qwen2-VL tokenizer (prepare_inputs' default; the processor is given the same one)."""
    from qwenvl_study.tokenizer import qwen2_tokenizer

    tokenizer = qwen2_tokenizer()
    check = checks.prepare_inputs(CONVERSATIONS[name], add_vision_id=add_vision_id)
    ours, theirs = check.ours, check.reference
    assert set(theirs) <= set(ours)
    for key, value in theirs.items():
        assert ours[key].dtype == value.dtype, key
        assert torch.equal(ours[key], value), key  # ids bit-equal; pixel values: max |diff| = 0.0
    assert tokenizer.decode(ours["input_ids"][0]) == ours["text"]


def test_prepare_inputs_without_tokenizer_and_from_a_directory(tokenizer_dir, tokenizer):
    messages = CONVERSATIONS["image + mp4"]
    text_only = prepare_inputs(messages, tokenizer=False)
    assert "input_ids" not in text_only
    grid_i, grid_v = text_only["image_grid_thw"], text_only["video_grid_thw"]
    assert text_only["text"].count(IMAGE_PAD) == int(grid_i.prod()) // 4 == 391  # 644x476 → 46x34 patches
    assert text_only["text"].count(VIDEO_PAD) == int(grid_v.prod()) // 4 == 560  # 4 x 20 x 28 / 4
    from_dir = prepare_inputs(messages, tokenizer_dir)
    assert torch.equal(from_dir["input_ids"], prepare_inputs(messages, tokenizer)["input_ids"])
    types = from_dir["mm_token_type_ids"][0]
    assert int((types == 1).sum()) == 391 and int((types == 2).sum()) == 560


def test_prepare_inputs_gives_the_real_ids_of_the_course_prompt():
    """No tokenizer given: the real Qwen2-VL one; the course's prompt keeps its own ids inside the chat."""
    from qwenvl_study.tokenizer import qwen2_tokenizer

    messages = [{"role": "user", "content": [{"type": "image", "image": PNG, "max_pixels": 16 * 28 * 28},
                                             {"type": "text", "text": "描述一下这张图片。"}]}]
    ours = prepare_inputs(messages)
    ids = ours["input_ids"][0].tolist()
    assert ids == qwen2_tokenizer()(ours["text"])["input_ids"] and qwen2_tokenizer().decode(ids) == ours["text"]
    start, end = ids.index(SPECIAL_TOKENS["<|vision_end|>"]) + 1, len(ids) - 5  # text, <|im_end|> \n <|im_start|> assistant \n
    assert ids[start:end] == qwen2_tokenizer()("描述一下这张图片。")["input_ids"]
    assert ids.count(SPECIAL_TOKENS[IMAGE_PAD]) == int(ours["image_grid_thw"].prod()) // 4


def test_load_tokenizer_falls_back_to_the_real_one(tmp_path):
    from qwenvl_study.tokenizer import qwen2_tokenizer

    assert load_tokenizer(tmp_path) is qwen2_tokenizer()  # a checkpoint directory without tokenizer files
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {"vocab_size": 151936}}))
    assert load_tokenizer(tmp_path) is qwen2_tokenizer()
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 512}))
    with pytest.raises(ValueError, match="vocab_size 512 < the 151657 ids"):
        load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="tokenizer directory not found"):
        load_tokenizer(tmp_path / "missing")


# --- the tiny tokenizer --------------------------------------------------------------------------------
def test_tiny_tokenizer_is_deterministic_and_loads_everywhere(tokenizer_dir, tmp_path):
    again = ref.write_tiny_qwen2_tokenizer(tmp_path / "again")
    for name in ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"):
        assert (again / name).read_bytes() == (tokenizer_dir / name).read_bytes(), name
    from transformers import AutoTokenizer, Qwen2Tokenizer, Qwen2TokenizerFast

    for cls in (AutoTokenizer, Qwen2Tokenizer, Qwen2TokenizerFast):
        tok = cls.from_pretrained(str(tokenizer_dir))
        assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(SPECIAL_TOKENS.values())
        assert tok.eos_token == "<|im_end|>" and tok.pad_token_id == 151643
    # vocab.json + merges.txt alone (no tokenizer.json) give the same ids
    slow_dir = tmp_path / "slow"
    slow_dir.mkdir()
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        (slow_dir / name).write_bytes((tokenizer_dir / name).read_bytes())
    text = "<|im_start|>user\nHello wörld 你好 🙂<|image_pad|><|im_end|>"
    assert Qwen2Tokenizer.from_pretrained(str(slow_dir))(text)["input_ids"] == \
        AutoTokenizer.from_pretrained(str(tokenizer_dir))(text)["input_ids"]
    assert json.loads((tokenizer_dir / "tokenizer_config.json").read_text())["chat_template"] == CHAT_TEMPLATE


@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_tiny_tokenizer_round_trips_any_text(tokenizer, text):
    import unicodedata

    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == unicodedata.normalize("NFC", text)  # Qwen2 normalises to NFC


def test_tiny_tokenizer_special_tokens_and_template(tokenizer):
    text = build_prompt([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}])
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == SPECIAL_TOKENS["<|im_start|>"] and ids.count(SPECIAL_TOKENS[IMAGE_PAD]) == 1
    assert tokenizer.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}],
                                         tokenize=False, add_generation_prompt=True) == text
    assert tokenizer.decode([SPECIAL_TOKENS[VIDEO_PAD]]) == VIDEO_PAD
    assert max(tokenizer.get_vocab().values()) == 151656
