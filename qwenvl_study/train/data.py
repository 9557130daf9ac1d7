"""The course's synthetic world: shapes on a canvas, one shape moving in a video, and questions about them.

This is a *contract* (issue 12): outside checks draw their own images to it, so every rule below
is a rule of the data, not a detail of this generator.

- Canvas: width and height each an integer in [56, 336], long side / short side <= 3; a solid
  background, each RGB channel in [200, 255].
- 1-5 filled shapes, kind in {circle, square, triangle}, colour in {red (220,40,40), green (40,170,60),
  blue (40,80,220), yellow (230,200,30)}. Each shape's box is a square of side s in
  [max(14, 0.15 * short side), 0.4 * short side]; circle inscribed in it, square filling it,
  triangle apex-up with its base on the box's bottom edge. Boxes at least 4 px apart; all inside.
- Video: 4-12 frames (even), canvas as above; one shape moves in a straight line at constant speed
  left, right, up or down by >= 30% of the canvas extent along that axis; 0-2 static shapes off
  its path. Given as a list of PIL frames (the qwen-vl-utils frame-list form).
- Questions (user turn: the image or video, then the text; default system prompt):
  "How many shapes are there?" -> "3"; "Find the {colour} {shape}." (only when exactly one shape has
  that colour and kind) -> ``<|object_ref_start|>the red circle<|object_ref_end|><|box_start|>(x1,y1),
  (x2,y2)<|box_end|>`` in the [0, 1000) grid (``grounding.to_normalized`` of the pixel box);
  "Describe the image." -> the shapes left to right by box centre x (ties: by y), "red circle, blue
  square"; video: "Which way does the {colour} {shape} move?" -> left | right | up | down.

Everything is a pure function of ``(seed, index)``: sample ``i`` of a set is drawn from its own
``random.Random(f"{seed}:{i}")``, so a data set needs no storage, any rank of a distributed run
draws exactly the samples of its share, and training / validation / held-out sets differ by seed.

Paper §2.2 trains on image-text pairs, OCR, grounding (boxes in [0, 1000)) and video QA; this world
keeps one task of each kind that a 10M-parameter model can learn in minutes on a CPU.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from PIL import Image, ImageDraw

from ..grounding import format_grounding, to_normalized

__all__ = [
    "COLOURS",
    "KINDS",
    "DIRECTIONS",
    "CANVAS_MIN",
    "CANVAS_MAX",
    "MAX_RATIO",
    "SIDES",
    "RATIO",
    "FRAMES",
    "check_ranges",
    "Shape",
    "Scene",
    "Sample",
    "TASKS",
    "COUNT_Q",
    "DESCRIBE_Q",
    "find_question",
    "direction_question",
    "draw_shape",
    "render",
    "random_canvas",
    "random_scene",
    "random_video",
    "describe",
    "unique_shapes",
    "make_sample",
    "scene_text",
    "make_text_sample",
    "messages_for",
    "all_course_text",
]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}
KINDS: tuple[str, ...] = ("circle", "square", "triangle")
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
CANVAS_MIN, CANVAS_MAX, MAX_RATIO = 56, 336, 3
MIN_SIDE_PX, SIDE_LO, SIDE_HI, GAP_PX = 14, 0.15, 0.4, 4
MAX_SHAPES = 5
FRAMES_MIN, FRAMES_MAX = 4, 12
MIN_TRAVEL = 0.3  # the moving shape travels >= 30% of the canvas extent along its axis
# The contract's ranges as (lo, hi) pairs: the defaults of every generator below. Other ranges draw
# the evaluation splits beyond training (``ablations.SPLITS``: larger canvases, extreme aspects,
# longer videos); the rest of the contract (backgrounds, shapes, sizes relative to the short side,
# gaps, motion) holds in every split.
SIDES: tuple[int, int] = (CANVAS_MIN, CANVAS_MAX)  # canvas width and height, pixels
RATIO: tuple[float, float] = (1, MAX_RATIO)  # long side / short side
FRAMES: tuple[int, int] = (FRAMES_MIN, FRAMES_MAX)  # video frames (even counts)

COUNT_Q = "How many shapes are there?"
DESCRIBE_Q = "Describe the image."
TASKS: tuple[str, ...] = ("count", "find", "describe", "direction")


def find_question(colour: str, kind: str) -> str:
    return f"Find the {colour} {kind}."


def direction_question(colour: str, kind: str) -> str:
    return f"Which way does the {colour} {kind} move?"


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    x: int  # box top-left, pixels
    y: int
    side: int  # the box is [x, x + side) x [y, y + side)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The pixel box (x1, y1, x2, y2) = (x, y, x + side, y + side)."""
        return self.x, self.y, self.x + self.side, self.y + self.side

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    background: tuple[int, int, int]
    shapes: tuple[Shape, ...]

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


@dataclass
class Sample:
    """One question about one image (``media`` a PIL image) or video (``media`` a list of PIL frames)."""

    task: str
    media: Any
    question: str
    answer: str
    scene: Scene | None = None  # images: the scene; videos: the first frame's scene
    target: Any = None  # count: int; find: the Shape; describe: list of names; direction: the word
    extra_turns: list[tuple[str, str]] = field(default_factory=list)  # more (question, answer) turns

    @property
    def is_video(self) -> bool:
        return isinstance(self.media, (list, tuple))


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------
def draw_shape(draw: ImageDraw.ImageDraw, shape: Shape, fill: Any = None) -> None:
    """Fill ``shape`` into its box: circle inscribed, square filling, triangle apex-up on the bottom edge
    (in its colour, or in ``fill``: ``dense.label_map`` draws class ids with the same geometry)."""
    x1, y1 = shape.x, shape.y
    x2, y2 = x1 + shape.side - 1, y1 + shape.side - 1  # last pixel inside the box
    fill = COLOURS[shape.colour] if fill is None else fill
    if shape.kind == "circle":
        draw.ellipse((x1, y1, x2, y2), fill=fill)
    elif shape.kind == "square":
        draw.rectangle((x1, y1, x2, y2), fill=fill)
    elif shape.kind == "triangle":
        draw.polygon([(x1, y2), (x2, y2), ((x1 + x2) / 2, y1)], fill=fill)
    else:
        raise ValueError(f"unknown shape kind {shape.kind!r}; choose one of {KINDS}")


def render(scene: Scene) -> Image.Image:
    """The scene as an RGB PIL image."""
    image = Image.new("RGB", scene.size, scene.background)
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        draw_shape(draw, shape)
    return image


# ---------------------------------------------------------------------------------------------
# Random scenes
# ---------------------------------------------------------------------------------------------
def check_ranges(sides: tuple[int, int] = SIDES, ratio: tuple[float, float] = RATIO,
                 frames: tuple[int, int] = FRAMES) -> None:
    """The ranges of a set (``sides``, ``ratio``, ``frames``) must be drawable: ValueError naming the
    range and the limit otherwise (a canvas no draw can satisfy would loop forever)."""
    lo, hi = _pair("sides", sides)
    if not (isinstance(lo, int) and isinstance(hi, int)) or not MIN_SIDE_PX / SIDE_HI <= lo <= hi:
        raise ValueError(f"sides={sides!r}: need integers lo <= hi with lo >= {math.ceil(MIN_SIDE_PX / SIDE_HI)} "
                         f"(a {MIN_SIDE_PX}-px shape must fit 0.4 of the short side)")
    r_lo, r_hi = _pair("ratio", ratio)
    if not 1 <= r_lo <= r_hi:
        raise ValueError(f"ratio={ratio!r}: need 1 <= lo <= hi (long side / short side)")
    if hi < r_lo * lo:
        raise ValueError(f"ratio={ratio!r} cannot be met with sides={sides!r}: the long side would need "
                         f">= {r_lo} x {lo} > {hi}")
    f_lo, f_hi = _pair("frames", frames)
    if not (isinstance(f_lo, int) and isinstance(f_hi, int)) or f_lo < 2 or f_lo % 2 or f_hi < f_lo:
        raise ValueError(f"frames={frames!r}: need integers lo <= hi, lo even and >= 2 (frames come in pairs)")


def _pair(name: str, value: Any) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != 2 or any(isinstance(v, bool) for v in value):
        raise ValueError(f"{name} must be a (lo, hi) pair, got {value!r}")
    return tuple(value)


def random_canvas(rng: random.Random, *, sides: tuple[int, int] = SIDES, ratio: tuple[float, float] = RATIO
                  ) -> tuple[int, int, tuple[int, int, int]]:
    """(width, height, background): sides uniform in ``sides`` (default [56, 336]) subject to
    ``ratio[0] <= long / short <= ratio[1]`` (default [1, 3]; rejection sampling)."""
    while True:
        w, h = rng.randint(*sides), rng.randint(*sides)
        if ratio[0] * min(w, h) <= max(w, h) <= ratio[1] * min(w, h):
            break
    background = tuple(rng.randint(200, 255) for _ in range(3))
    return w, h, background


def side_range(width: int, height: int) -> tuple[int, int]:
    """Integer box sides allowed on this canvas: [ceil(max(14, 0.15 short)), floor(0.4 short)]."""
    short = min(width, height)
    return math.ceil(max(MIN_SIDE_PX, SIDE_LO * short)), math.floor(SIDE_HI * short)


def _apart(a: tuple[float, float, float, float], b: tuple[float, float, float, float], gap: int = GAP_PX) -> bool:
    """Boxes (x1, y1, x2, y2) at least ``gap`` pixels apart (along x or along y)."""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def _place(rng: random.Random, width: int, height: int, n: int, avoid: Sequence[tuple] = (),
           tries: int = 200) -> list[tuple[int, int, int]]:
    """Up to ``n`` boxes (x, y, side), each >= 4 px from the others and from the ``avoid`` boxes."""
    lo, hi = side_range(width, height)
    boxes: list[tuple[int, int, int]] = []
    for _ in range(tries):
        if len(boxes) == n:
            break
        s = rng.randint(lo, hi)
        x, y = rng.randint(0, width - s), rng.randint(0, height - s)
        box = (x, y, x + s, y + s)
        if all(_apart(box, (bx, by, bx + bs, by + bs)) for bx, by, bs in boxes) and all(_apart(box, a) for a in avoid):
            boxes.append((x, y, s))
    return boxes


def random_scene(rng: random.Random, n_shapes: int | None = None, *, sides: tuple[int, int] = SIDES,
                 ratio: tuple[float, float] = RATIO) -> Scene:
    """A canvas with 1-5 shapes (``n_shapes`` if given); a placement that cannot fit redraws the canvas.
    ``sides`` / ``ratio``: the canvas ranges (``random_canvas``)."""
    want = rng.randint(1, MAX_SHAPES) if n_shapes is None else n_shapes
    if not 1 <= want <= MAX_SHAPES:
        raise ValueError(f"n_shapes must be in [1, {MAX_SHAPES}], got {want}")
    while True:
        w, h, bg = random_canvas(rng, sides=sides, ratio=ratio)
        boxes = _place(rng, w, h, want)
        if len(boxes) == want:
            break
    shapes = tuple(Shape(rng.choice(KINDS), rng.choice(list(COLOURS)), x, y, s) for x, y, s in boxes)
    return Scene(w, h, bg, shapes)


def describe(shapes: Sequence[Shape]) -> str:
    """Left to right by box centre x (ties: by centre y): ``"red circle, blue square"``."""
    ordered = sorted(shapes, key=lambda s: (s.x + s.side / 2, s.y + s.side / 2))
    return ", ".join(s.name for s in ordered)


def unique_shapes(shapes: Sequence[Shape]) -> list[Shape]:
    """The shapes whose (colour, kind) no other shape shares: the ones "Find the ..." may ask about."""
    names = [s.name for s in shapes]
    return [s for s in shapes if names.count(s.name) == 1]


def find_answer(shape: Shape, size: tuple[int, int]) -> str:
    return format_grounding([(f"the {shape.name}", to_normalized(shape.box, size))])


def random_video(rng: random.Random, *, sides: tuple[int, int] = SIDES, ratio: tuple[float, float] = RATIO,
                 frames: tuple[int, int] = FRAMES) -> tuple[list[Image.Image], Scene, Shape, str, list[Scene]]:
    """(frames, first scene, the mover at frame 0, its direction, every frame's scene).

    4-12 frames (even; ``frames`` = (lo, hi) otherwise), canvas as ``random_canvas(sides, ratio)``; the mover travels >= 30% of the canvas extent along its axis at constant
    speed (position at frame k: start + round(k * travel / (T - 1))); 0-2 static shapes lie >= 4 px
    off the box swept by the mover; their (colour, kind) differs from the mover's.
    """
    n_frames = rng.choice(range(frames[0], frames[1] + 1, 2))
    direction = rng.choice(DIRECTIONS)
    while True:
        w, h, bg = random_canvas(rng, sides=sides, ratio=ratio)
        lo, hi = side_range(w, h)
        s = rng.randint(lo, hi)
        extent = w if direction in ("left", "right") else h
        min_travel = math.ceil(MIN_TRAVEL * extent)
        if extent - s < min_travel:
            continue
        travel = rng.randint(min_travel, extent - s)
        sign = 1 if direction in ("right", "down") else -1
        if direction in ("left", "right"):
            y0 = rng.randint(0, h - s)
            x0 = rng.randint(0, w - s - travel) + (travel if sign < 0 else 0)
        else:
            x0 = rng.randint(0, w - s)
            y0 = rng.randint(0, h - s - travel) + (travel if sign < 0 else 0)
        dx, dy = (sign * travel, 0) if direction in ("left", "right") else (0, sign * travel)
        swept = (min(x0, x0 + dx), min(y0, y0 + dy), max(x0, x0 + dx) + s, max(y0, y0 + dy) + s)
        n_static = rng.randint(0, 2)
        statics = _place(rng, w, h, n_static, avoid=[swept])
        if len(statics) == n_static:
            break
    mover_kind, mover_colour = rng.choice(KINDS), rng.choice(list(COLOURS))
    static_shapes = []
    for x, y, side in statics:
        while True:
            kind, colour = rng.choice(KINDS), rng.choice(list(COLOURS))
            if (kind, colour) != (mover_kind, mover_colour):
                break
        static_shapes.append(Shape(kind, colour, x, y, side))
    scenes = []
    for k in range(n_frames):
        step = round(k * travel / (n_frames - 1))
        mx = x0 + (sign * step if dx else 0)
        my = y0 + (sign * step if dy else 0)
        scenes.append(Scene(w, h, bg, (Shape(mover_kind, mover_colour, mx, my, s), *static_shapes)))
    frames = [render(sc) for sc in scenes]
    return frames, scenes[0], scenes[0].shapes[0], direction, scenes


# ---------------------------------------------------------------------------------------------
# Samples: (seed, index) -> one question
# ---------------------------------------------------------------------------------------------
def _rng(seed: int, index: int) -> random.Random:
    return random.Random(f"{seed}:{index}")


def _image_qa(rng: random.Random, scene: Scene, task: str) -> tuple[str, str, Any]:
    if task == "count":
        return COUNT_Q, str(len(scene.shapes)), len(scene.shapes)
    if task == "describe":
        return DESCRIBE_Q, describe(scene.shapes), [s.name for s in scene.shapes]
    if task == "find":
        shape = rng.choice(unique_shapes(scene.shapes))
        return find_question(shape.colour, shape.kind), find_answer(shape, scene.size), shape
    raise ValueError(f"unknown image task {task!r}; choose one of count, find, describe")


def make_sample(seed: int, index: int, task: str | None = None, *, mix: dict[str, float] | None = None,
                max_turns: int = 1, sides: tuple[int, int] = SIDES, ratio: tuple[float, float] = RATIO,
                frames: tuple[int, int] = FRAMES, max_shapes: int = MAX_SHAPES) -> Sample:
    """Sample ``index`` of the set ``seed``: ``task`` if given, else drawn from ``mix`` (task -> weight).

    ``max_turns`` > 1 adds up to that many further (question, answer) turns about the same image
    (a chat-format instruction sample; the loss covers every answer). ``sides`` (canvas width and
    height), ``ratio`` (long / short side) and ``frames`` (video length) are (lo, hi) ranges; the
    defaults are the contract's (the training distribution), others draw the evaluation splits —
    still a pure function of ``(seed, index)`` for each choice of ranges. ``max_shapes`` < 5: an image
    holds 1 to ``max_shapes`` shapes (a curriculum's easy scenes; videos are unchanged).
    """
    if isinstance(max_shapes, bool) or not isinstance(max_shapes, int) or not 1 <= max_shapes <= MAX_SHAPES:
        raise ValueError(f"max_shapes must be an integer in [1, {MAX_SHAPES}], got {max_shapes!r}")
    if (sides, ratio, frames) != (SIDES, RATIO, FRAMES):
        check_ranges(sides, ratio, frames)
    rng = _rng(seed, index)
    if task is None:
        mix = mix or {t: 1.0 for t in TASKS}
        names = sorted(mix)
        task = rng.choices(names, weights=[mix[n] for n in names])[0]
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    if task == "direction":
        video, first, mover, direction, _ = random_video(rng, sides=sides, ratio=ratio, frames=frames)
        return Sample("direction", video, direction_question(mover.colour, mover.kind), direction, first, direction)
    while True:
        # the contract's draw (1-5, inside random_scene) unless fewer shapes are asked for: the same stream
        n_shapes = rng.randint(1, max_shapes) if max_shapes != MAX_SHAPES else None
        scene = random_scene(rng, n_shapes, sides=sides, ratio=ratio)
        if task != "find" or unique_shapes(scene.shapes):
            break
    question, answer, target = _image_qa(rng, scene, task)
    sample = Sample(task, render(scene), question, answer, scene, target)
    for _ in range(rng.randint(0, max_turns - 1) if max_turns > 1 else 0):
        options = ["count", "describe"] + (["find"] if unique_shapes(scene.shapes) else [])
        q, a, _ = _image_qa(rng, scene, rng.choice(options))
        sample.extra_turns.append((q, a))
    return sample


def messages_for(sample_or_media: Any, question: str | None = None, answer: str | None = None, *,
                 media_options: dict | None = None) -> list[dict]:
    """The chat messages of one sample: one user turn (the image / video, then the text), its answer,
    then the extra turns. ``media_options`` (e.g. ``max_pixels``) go into the vision item."""
    if isinstance(sample_or_media, Sample):
        s = sample_or_media
        media, question, answer, extra = s.media, s.question, s.answer, s.extra_turns
    else:
        media, extra = sample_or_media, []
    opts = dict(media_options or {})
    is_video = isinstance(media, (list, tuple)) or (isinstance(media, str) and _looks_like_video(media))
    item = {"type": "video", "video": media, **opts} if is_video else {"type": "image", "image": media, **opts}
    messages = [{"role": "user", "content": [item, {"type": "text", "text": question}]}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    for q, a in extra:
        messages.append({"role": "user", "content": q})
        messages.append({"role": "assistant", "content": a})
    return messages


def _looks_like_video(path: str) -> bool:
    from ..media import is_video_path

    return is_video_path(path)


# ---------------------------------------------------------------------------------------------
# Stage 0: the answer language from text alone
# ---------------------------------------------------------------------------------------------
def scene_text(scene: Scene) -> str:
    """A scene written as text, in the grid the answers use: ``"red circle (120,40),(300,220); ..."``
    (the shapes in drawing order, not sorted: ordering them is the model's job)."""
    parts = []
    for s in scene.shapes:
        x1, y1, x2, y2 = to_normalized(s.box, scene.size)
        parts.append(f"{s.name} ({x1},{y1}),({x2},{y2})")
    return "; ".join(parts)


def make_text_sample(seed: int, index: int) -> Sample:
    """Stage 0's text-only question: the scene as text, then an image question about it.

    It teaches the LLM the answer language (digits, the box syntax, the ordered list, the four
    direction words) and the reasoning over a scene (count, sort by x, copy a box) before it sees
    a pixel: it stands for the pretrained Qwen2 LLM that the paper starts from.
    """
    rng = _rng(seed, index)
    if rng.random() < 0.2:  # a motion, as text: two positions of the same shape
        direction = rng.choice(DIRECTIONS)
        colour, kind = rng.choice(list(COLOURS)), rng.choice(KINDS)
        a, b = sorted(rng.sample(range(0, 1000), 2))
        start, end = (a, b) if direction in ("right", "down") else (b, a)
        axis = "x" if direction in ("left", "right") else "y"
        q = f"{colour} {kind} {axis} {start} then {end}. {direction_question(colour, kind)}"
        return Sample("direction", None, q, direction, None, direction)
    while True:
        scene = random_scene(rng)
        task = rng.choice(["count", "describe", "find"])
        if task != "find" or unique_shapes(scene.shapes):
            break
    q, a, target = _image_qa(rng, scene, task)
    return Sample(task, None, f"{scene_text(scene)}. {q}", a, scene, target)


def all_course_text() -> list[str]:
    """Every piece of text the course's chats can hold (the trimmed vocabulary is built from it)."""
    from ..chat import DEFAULT_SYSTEM_PROMPT, SPECIAL_TOKENS

    texts = [DEFAULT_SYSTEM_PROMPT, "system\n", "user\n", "assistant\n", "\n", COUNT_Q, DESCRIBE_Q]
    texts += list(SPECIAL_TOKENS)
    for colour in COLOURS:
        for kind in KINDS:
            texts += [find_question(colour, kind), direction_question(colour, kind), f"the {colour} {kind}",
                      f"{colour} {kind}, {colour} {kind}", f"{colour} {kind} ({colour} {kind}"]
    texts += [", ".join(DIRECTIONS), " ".join(DIRECTIONS)] + list(DIRECTIONS)
    texts += [str(d) for d in range(10)] + ["(1,2),(3,4)", "(0,0),(9,9)", "; ", ". ", " x 1 then 2.", " y 3 then 4."]
    return texts
