"""Visual grounding: boxes as text, in a resolution-free [0, 1000) frame.

Paper §2 (Visual Grounding, "Positional & reference"): a bounding box is written as
``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` — top-left and bottom-right corners — with every
coordinate normalised to integers in [0, 1000) regardless of the image's size; the phrase it refers
to is wrapped in ``<|object_ref_start|>…<|object_ref_end|>``. Because the frame is relative, the
same text describes a box on the original image and on the smart-resized image the model sees.

Conventions here (the paper fixes only the [0, 1000) range): pixel → normalised is
``round(1000 * x / size)`` clamped to [0, 999]; normalised → pixel is ``n * size / 1000`` (what
Qwen2-VL's cookbook does with a model's answer). A round trip is off by at most ``size / 2000``
pixels (half a step), and by up to ``size / 1000`` at the far edge where 1000 is clamped to 999 —
within 1 px for images up to 1000 px on a side.

Reference: the special tokens and ids of the published tokenizer (``chat.SPECIAL_TOKENS``);
the true boxes of the sample image (``samples.SAMPLE_OBJECTS``) for the round trip.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from PIL import Image, ImageDraw

from .chat import BOX_END, BOX_START, OBJECT_REF_END, OBJECT_REF_START
from .resolution import MAX_PIXELS, MIN_PIXELS, smart_resize

__all__ = [
    "GRID",
    "Box",
    "GroundedBox",
    "BadBox",
    "to_normalized",
    "from_normalized",
    "rescale_box",
    "box_on_resized",
    "format_box",
    "format_grounding",
    "parse_grounding",
    "draw_boxes",
]

GRID = 1000  # coordinates live in [0, GRID)
Box = tuple[int, int, int, int]  # (x1, y1, x2, y2)


@dataclass(frozen=True)
class GroundedBox:
    """A referred phrase (or None) and its box in [0, 1000) coordinates."""

    phrase: str | None
    box: Box


def _is_pair_like(value: object, n: int) -> bool:
    return not isinstance(value, (str, bytes)) and hasattr(value, "__len__") and len(value) == n


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if not _is_pair_like(size, 2) or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1
                                         for v in size):
        raise ValueError(f"image size must be (width, height) with positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def _is_number(v: object) -> bool:
    return not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(v)


def _check_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    if not _is_pair_like(box, 4) or not all(_is_number(v) for v in box):
        raise ValueError(f"a box is four finite numbers (x1, y1, x2, y2), got {box!r}")
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        raise ValueError(f"box {tuple(box)!r}: need x1 <= x2 and y1 <= y2 (top-left, bottom-right)")
    return x1, y1, x2, y2


def _to_grid(value: float, extent: int) -> int:
    return min(GRID - 1, max(0, round(GRID * value / extent)))


def to_normalized(box: Sequence[float], size: Sequence[int]) -> Box:
    """Pixel box on an image of ``size`` = (width, height) → integers in [0, 1000)."""
    w, h = _check_size(size)
    x1, y1, x2, y2 = _check_box(box)
    if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        raise ValueError(f"box {tuple(box)!r} lies outside the {w}x{h} image")
    return _to_grid(x1, w), _to_grid(y1, h), _to_grid(x2, w), _to_grid(y2, h)


def from_normalized(box: Sequence[int], size: Sequence[int]) -> tuple[float, float, float, float]:
    """[0, 1000) box → pixel box (floats) on an image of ``size`` = (width, height)."""
    w, h = _check_size(size)
    x1, y1, x2, y2 = _check_box(box)
    if min(box) < 0 or max(box) >= GRID:
        raise ValueError(f"normalised box {tuple(box)!r} must lie in [0, {GRID})")
    return x1 * w / GRID, y1 * h / GRID, x2 * w / GRID, y2 * h / GRID


def rescale_box(box: Sequence[float], from_size: Sequence[int], to_size: Sequence[int]) -> tuple[float, ...]:
    """A pixel box on an image of ``from_size`` expressed on the same image resized to ``to_size``."""
    fw, fh = _check_size(from_size)
    tw, th = _check_size(to_size)
    x1, y1, x2, y2 = _check_box(box)
    return x1 * tw / fw, y1 * th / fh, x2 * tw / fw, y2 * th / fh


def box_on_resized(box: Sequence[float], size: Sequence[int], *, min_pixels: int = MIN_PIXELS,
                   max_pixels: int = MAX_PIXELS, rule: str = "transformers") -> tuple[tuple[float, ...], tuple[int, int]]:
    """A pixel box on the original image → (the box on the smart-resized image, its (width, height))."""
    w, h = _check_size(size)
    rh, rw = smart_resize(h, w, min_pixels=min_pixels, max_pixels=max_pixels, rule=rule)
    return rescale_box(box, (w, h), (rw, rh)), (rw, rh)


def format_box(box: Sequence[int]) -> str:
    """``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` for a [0, 1000) box."""
    x1, y1, x2, y2 = (int(v) for v in _check_box(box))
    if min(x1, y1) < 0 or max(x2, y2) >= GRID:
        raise ValueError(f"normalised box {tuple(box)!r} must lie in [0, {GRID})")
    return f"{BOX_START}({x1},{y1}),({x2},{y2}){BOX_END}"


def format_grounding(items: Iterable[GroundedBox | tuple[str | None, Box]]) -> str:
    """Phrases and boxes as the model writes them: ``<|object_ref_start|>p<|object_ref_end|><|box_start|>…``.

    Consecutive items with the same phrase share one reference (several boxes for one phrase). A
    box without a phrase that follows a phrased one gets an empty reference, so that
    ``parse_grounding`` does not hand it the previous phrase: ``parse(format(x)) == x``.
    """
    out, last = [], None
    for item in items:
        phrase, box = (item.phrase, item.box) if isinstance(item, GroundedBox) else item
        phrase = phrase or None
        if phrase is not None and any(t in phrase for t in (OBJECT_REF_START, OBJECT_REF_END, BOX_START, BOX_END)):
            raise ValueError(f"phrase {phrase!r} contains a grounding special token")
        if phrase != last:
            out.append(f"{OBJECT_REF_START}{phrase or ''}{OBJECT_REF_END}")
        out.append(format_box(box))
        last = phrase
    return "".join(out)


@dataclass(frozen=True)
class BadBox:
    """A box ``parse_grounding(..., strict=False)`` could not read: its text, where, and why."""

    text: str  # what stood between <|box_start|> and <|box_end|> (or after an unclosed <|box_start|>)
    start: int  # character offset of its <|box_start|>
    reason: str


_NUM = r"\s*(\d+)\s*"
_BOX_BODY = re.compile(r"\s*\(" + _NUM + "," + _NUM + r"\)\s*,\s*\(" + _NUM + "," + _NUM + r"\)\s*")
_BARE_RE = re.compile(r"\(" + _NUM + "," + _NUM + r"\)\s*,\s*\(" + _NUM + "," + _NUM + r"\)")
_SPECIAL_RE = re.compile("|".join(re.escape(t) for t in (OBJECT_REF_START, OBJECT_REF_END, BOX_START, BOX_END)))


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _read_box(body: str, start: int) -> Box | str:
    """The box written in ``body`` (the text inside the box tokens), or why it is not one."""
    match = _BOX_BODY.fullmatch(body)
    if match is None:
        return (f"box {_shown(body)} at character {start}: expected (x1,y1),(x2,y2) — four non-negative integers "
                f"in [0, {GRID})")
    return _in_range(tuple(int(g) for g in match.groups()), start)


def _in_range(box: Box, start: int) -> Box | str:
    if max(box) >= GRID or box[2] < box[0] or box[3] < box[1]:
        return f"box {box} at character {start}: coordinates must lie in [0, {GRID}) with x1 <= x2, y1 <= y2"
    return box


def _events(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, payload) of each reference and box, in order — one linear pass.

    The special tokens are found once; a reference is an ``<|object_ref_start|>`` whose next special
    token is ``<|object_ref_end|>``, a box likewise; anything else (a stray or unclosed token) is text,
    except an unclosed ``<|box_start|>``, which is a bad box.
    """
    tokens = [(m.start(), m.end(), m.group()) for m in _SPECIAL_RE.finditer(text)]
    events = []
    for k, (start, end, token) in enumerate(tokens):
        after = tokens[k + 1] if k + 1 < len(tokens) else None
        if token == OBJECT_REF_START and after is not None and after[2] == OBJECT_REF_END:
            events.append((start, after[1], "ref", text[end:after[0]]))
        elif token == BOX_START and after is not None and after[2] == BOX_END:
            events.append((start, after[1], "box", text[end:after[0]]))
        elif token == BOX_START:
            stop = after[0] if after is not None else len(text)
            events.append((start, stop, "unclosed", text[end:stop]))
    return events


def parse_grounding(text: str, *, strip_phrases: bool = False, strict: bool = True):
    """Every (phrase, box) in a model answer, in order.

    A box takes the phrase of the ``<|object_ref_start|>…<|object_ref_end|>`` right before it
    (only whitespace or other boxes in between: several boxes for one phrase); otherwise — or
    after an empty reference — the phrase is None. Whitespace inside the box syntax is tolerated.
    If the answer has no box tokens at all (decoded with ``skip_special_tokens=True``), bare
    ``(x1,y1),(x2,y2)`` pairs are read with no phrase.

    Bad boxes — inside box tokens anything but four integers in [0, 1000) with corners in order
    (negative, float, three numbers, text), or a ``<|box_start|>`` never closed:
    ``strict=True`` (default) raises ValueError naming the box text; ``strict=False`` returns
    ``(boxes, errors)``: the good boxes and a list of :class:`BadBox` (text, position, reason).
    Linear time: the special tokens are found in one pass (20,000 stray tokens parse in ms).
    """
    if not isinstance(text, str):
        raise ValueError(f"parse_grounding needs the model's answer as a str, got {type(text).__name__}")
    events = _events(text)
    if BOX_START not in text:  # decoded without special tokens: bare pairs, no phrases
        events = [(m.start(), m.end(), "bare", m) for m in _BARE_RE.finditer(text)]
    items, errors, phrase, last_end = [], [], None, 0
    for start, end, kind, payload in events:
        gap = text[last_end:start]
        last_end = end
        if kind == "ref":
            phrase = (payload.strip() if strip_phrases else payload) or None
            continue
        if gap.strip():  # text between the reference (or previous box) and this box: no phrase
            phrase = None
        if kind == "bare":
            box = _in_range(tuple(int(g) for g in payload.groups()), start)
            payload = payload.group()
        elif kind == "box":
            box = _read_box(payload, start)
        else:
            box = f"box {_shown(payload)} at character {start}: {BOX_START} is never closed by {BOX_END}"
        if isinstance(box, str):
            if strict:
                raise ValueError(box)
            errors.append(BadBox(payload, start, box))
        else:
            items.append(GroundedBox(phrase, box))
    return (items, errors) if not strict else items


def draw_boxes(image: Image.Image, items: Iterable[GroundedBox | tuple[str | None, Box]], *,
               colours: Sequence[str] = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd"),
               width: int = 3) -> Image.Image:
    """A copy of ``image`` with each [0, 1000) box drawn (mapped to its pixels) and labelled with its phrase."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    for k, item in enumerate(items):
        phrase, box = (item.phrase, item.box) if isinstance(item, GroundedBox) else item
        x1, y1, x2, y2 = from_normalized(box, out.size)
        colour = colours[k % len(colours)]
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        if phrase:
            tx, ty = x1 + 2, max(0, y1 - 14)
            left, top, right, bottom = draw.textbbox((tx, ty), phrase)
            draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=colour)
            draw.text((tx, ty), phrase, fill="white")
    return out
