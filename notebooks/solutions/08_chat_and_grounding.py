"""Solutions to the exercises of notebook 08 "The chat format and visual grounding"; each asserts its answer.

Run by tests/test_solutions.py (``python notebooks/solutions/08_chat_and_grounding.py`` works too).
"""

import re

from PIL import Image

import qwenvl_study as qs

tokenizer = qs.qwen2_tokenizer()
QUESTION = "描述一下这张图片。"


def prompt_length(*sizes: tuple[int, int]) -> int:
    content = [{"type": "image", "image": Image.new("RGB", size, "white")} for size in sizes]
    return qs.prepare_inputs([{"role": "user", "content": content + [{"type": "text", "text": QUESTION}]}],
                             tokenizer)["input_ids"].shape[1]


# 1. The 26 non-pad ids of the one-image prompt stay; 448x448 is 16x16 merged tokens = 256 pads: 26 + 256 = 282.
#    Two 224x224 images: 64 pads each and a second <|vision_start|>, <|vision_end|> pair: 26 + 2 + 128 = 156.
one, two = prompt_length((448, 448)), prompt_length((224, 224), (224, 224))
assert prompt_length((640, 480)) == 391 + 26
assert one == 26 + 256 and two == 26 + 2 + 2 * 64
print(f"1. 448x448: {one} ids; two 224x224 images: {two} ids")

# 2. x: round(1000*100/1280) = round(78.125) = 78, round(234.375) = 234; y: round(69.44) = 69, round(347.2) = 347.
#    Back: 78*1.28 = 99.84, 69*0.72 = 49.68, 234*1.28 = 299.52, 347*0.72 = 249.84: worst 0.48 px <= 1280/2000 = 0.64.
box, size = (100, 50, 300, 250), (1280, 720)
norm = qs.to_normalized(box, size)
back = qs.from_normalized(norm, size)
worst = max(abs(a - b) for a, b in zip(back, box))
assert norm == (78, 69, 234, 347)
assert max(abs(a - b) for a, b in zip(back, (99.84, 49.68, 299.52, 249.84))) < 1e-9
assert abs(worst - 0.48) < 1e-9 and worst <= size[0] / 2000
print(f"2. {box} on {size[0]}x{size[1]} -> {norm} -> {tuple(round(v, 2) for v in back)}: worst {worst:.2f} px")

# 3. "Hi" is 1 token, "Describe the picture in detail." 6 (Describe, ' the', ' picture', ' in', ' detail', '.'):
#    5 pads of <|endoftext|> (151643) before "Hi", mask 0 there. Padded on the right instead, the short row's
#    last real token sits in column 0, and generation (which appends after the last column) would follow 5 pads.
texts = ["Hi", "Describe the picture in detail."]
left = tokenizer(texts, padding=True)
assert left["input_ids"][0][:5] == [151643] * 5 and left["attention_mask"][0] == [0] * 5 + [1]
assert all(mask[-1] == 1 for mask in left["attention_mask"])
right = tokenizer(texts, padding=True, padding_side="right")  # this call only: the shared tokenizer stays left
last_real = max(i for i, m in enumerate(right["attention_mask"][0]) if m)
assert last_real == 0 and right["attention_mask"][0][-1] == 0 and tokenizer.padding_side == "left"
print(f"3. 5 x <|endoftext|> on the left of 'Hi'; right padding leaves its last real token at column {last_real} "
      f"of {len(right['input_ids'][0])}")

# 4. (500, 875) in [0, 1000) on 1080x2400: (500*1080/1000, 875*2400/1000) = (540.0, 2100.0).
answer = '*FUNCTION*: Tap *ARGS*: {"point": (500,875)}'
call = re.search(r"\*FUNCTION\*: (\w+) \*ARGS\*: \{\"point\": \((\d+),(\d+)\)\}", answer)
x, y = int(call.group(2)), int(call.group(3))
point = qs.from_normalized((x, y, x, y), (1080, 2400))[:2]
assert call.group(1) == "Tap" and point == (540.0, 2100.0)
print(f"4. Tap at {point} px")
