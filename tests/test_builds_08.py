"""Notebook 08's inline builds equal the package: the prompt builder, the pad expansion, the box conversion
and the grounding parser (bit-equal text, ints and floats, on hypothesis-drawn inputs)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nbbuild import notebook_build

import qwenvl_study as qs

STEM = "08_chat_and_grounding"
NS = notebook_build(STEM, "parse_grounding")  # runs every build cell of the notebook, in order

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_item = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, _text),
    st.builds(lambda t: {"text": t}, _text),
    st.just({"type": "image", "image": "a.png"}), st.just({"image": "b.png"}), st.just({"image_url": "http://x/y.png"}),
    st.just({"type": "video", "video": "v.mp4"}), st.just({"video": ["f0.png", "f1.png"]}),
    st.just({"type": "text"}),  # no text: renders nothing
)
_message = st.builds(lambda role, content: {"role": role, "content": content},
                     st.one_of(st.sampled_from(["system", "user", "assistant"]), _text),
                     st.one_of(_text, st.lists(_item, max_size=5)))


@given(messages=st.lists(_message, min_size=1, max_size=4), add_generation_prompt=st.booleans(),
       add_vision_id=st.booleans())
def test_build_prompt_equals_the_package(messages, add_generation_prompt, add_vision_id):
    options = dict(add_generation_prompt=add_generation_prompt, add_vision_id=add_vision_id)
    assert NS["build_prompt"](messages, **options) == qs.build_prompt(messages, **options)


_grid = st.tuples(st.integers(1, 4), st.sampled_from([2, 4, 6, 8]), st.sampled_from([2, 4, 6]))


@given(images=st.lists(_grid, max_size=3), videos=st.lists(_grid, max_size=2), text=_text)
def test_expand_vision_pads_equals_the_package(images, videos, text):
    content = [{"type": "text", "text": text}] + [{"image": "x"}] * len(images) + [{"video": "v"}] * len(videos)
    prompt = qs.build_prompt([{"role": "user", "content": content}])
    grids = (images or None), (videos or None)
    assert NS["expand_vision_pads"](prompt, images, videos) == qs.expand_vision_pads(prompt, *grids)
    with pytest.raises(ValueError):
        NS["expand_vision_pads"](prompt, images + [(1, 2, 2)], videos)


@st.composite
def _box_on_image(draw, max_side=8000):
    w, h = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    xs = sorted(draw(st.lists(st.one_of(st.integers(0, w), st.floats(0, w)), min_size=2, max_size=2)))
    ys = sorted(draw(st.lists(st.one_of(st.integers(0, h), st.floats(0, h)), min_size=2, max_size=2)))
    return (xs[0], ys[0], xs[1], ys[1]), (w, h)


@given(case=_box_on_image())
def test_box_conversion_equals_the_package(case):
    box, size = case
    norm = NS["to_normalized"](box, size)
    assert norm == qs.to_normalized(box, size)  # ints, bit-equal
    assert NS["from_normalized"](norm, size) == qs.from_normalized(norm, size)  # floats, bit-equal


# well-formed answers: free text (no "<" or "|", so no stray special token), references and boxes, any order
_plain = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="<|"), max_size=8)
_coordinate = st.integers(0, 1100)  # some out of [0, 1000): both must refuse those
_space = st.sampled_from(["", " ", "  ", "\n"])
_box = st.builds(lambda c, s: f"<|box_start|>{s[0]}({s[1]}{c[0]},{c[1]}{s[2]}),{s[3]}({c[2]}, {c[3]}){s[4]}<|box_end|>",
                 st.lists(_coordinate, min_size=4, max_size=4), st.lists(_space, min_size=5, max_size=5))
_ref = st.builds(lambda p: f"<|object_ref_start|>{p}<|object_ref_end|>", _plain)
_bare = st.builds(lambda c: f"({c[0]},{c[1]}),({c[2]},{c[3]})", st.lists(_coordinate, min_size=4, max_size=4))


def _parse_both(text):
    results = []
    for parse in (NS["parse_grounding"], lambda t: [(g.phrase, g.box) for g in qs.parse_grounding(t)]):
        try:
            results.append(parse(text))
        except ValueError:
            results.append(ValueError)
    return results


@given(pieces=st.lists(st.one_of(_plain, _box, _ref, _bare), max_size=8))
def test_parse_grounding_equals_the_package(pieces):
    ours, package = _parse_both("".join(pieces))
    assert ours == package


def test_parse_grounding_on_the_notebook_answer():
    answer = ("Two shapes: <|object_ref_start|>the circle and the triangle<|object_ref_end|>"
              "<|box_start|>(94,354),(344,688)<|box_end|>\n<|box_start|>( 656 , 333 ),(922,688)<|box_end|>, "
              "and a bar <|box_start|>(62,792),(938,875)<|box_end|>.")
    expected = [("the circle and the triangle", (94, 354, 344, 688)),
                ("the circle and the triangle", (656, 333, 922, 688)), (None, (62, 792, 938, 875))]
    assert NS["parse_grounding"](answer) == expected == [(g.phrase, g.box) for g in qs.parse_grounding(answer)]
