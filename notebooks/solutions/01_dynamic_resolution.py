"""Solutions to the exercises of notebook 01 "Naive Dynamic Resolution"; each asserts its answer.

Run by tests/test_solutions.py (``python notebooks/solutions/01_dynamic_resolution.py`` works too).
"""

import math

from qwenvl_study.course import reference as ref
from qwenvl_study.resolution import MIN_PIXELS, count_image_tokens, smart_resize

# 1. 1000x300 (W x H). Round each side to a multiple of 28: 300 / 28 = 10.71 -> 11 -> 308; 1000 / 28 = 35.71 -> 36
#    -> 1008. 308 * 1008 = 310,464 pixels, between 3136 and 12,845,056: no rescaling. 308 / 14 = 22 and 1008 / 14 = 72
#    patches -> 22 * 72 = 1584 patches -> 11 * 36 = 396 merged tokens -> 396 + 2 = 398 tokens.
by_hand = (round(300 / 28) * 28, round(1000 / 28) * 28)
assert by_hand == (308, 1008) == smart_resize(300, 1000) == ref.hf_smart_resize(300, 1000)
assert count_image_tokens(300, 1000) == 11 * 36 + 2 == 398
assert ref.hf_image_processor().get_number_of_image_patches(300, 1000, {}) == 22 * 72 == 4 * 396
print("1. 1000x300 -> 1008x308 -> 22x72 patches -> 396 merged + 2 = 398 tokens")

# 2. A square of side s rounds to round(s / 28) * 28. For 42 <= s <= 70 that is 56 (s / 28 = 2.5 at s = 70 rounds
#    half to even: 2), 56 * 56 = 3136 = min_pixels, no rescaling: 2 x 2 = 4 merged tokens. At s = 71 it is 84: 9.
#    Below 42 the rounded square is under min_pixels, so it is grown by beta = 56 / s to exactly 56 x 56 and each
#    side rounded up: ceil(s * beta / 28) = ceil(2) = 2 -> 4 tokens ... except where s * beta / 28 lands a hair
#    above 2 in floating point (19 and 38: 2.0000000000000004), where the ceiling gives 3 -> 9 tokens.
squares = {s: count_image_tokens(s, s, special_tokens=False) for s in range(1, 101)}
largest_four = max(s for s, n in squares.items() if n == 4)
more = [s for s, n in squares.items() if n > 4 and s <= largest_four]
assert largest_four == 70 and squares[71] == 9
assert more == [19, 38] and all(squares[s] == 9 for s in more)
assert 19 * math.sqrt(MIN_PIXELS / 19**2) / 28 > 2  # the floating-point hair above 2
assert all(ref.hf_smart_resize(s, s) == smart_resize(s, s) for s in squares)  # the processor does the same
print(f"2. the largest square with 4 merged tokens is {largest_four}x{largest_four}; "
      f"below it only {more[0]}x{more[0]} and {more[1]}x{more[1]} get more (9, floating point)")

# 3. Below the clamp the two factors are a = H*beta/28 and b = W*beta/28 with a*b = 4 and a/b = H/W. For an exact
#    4:1 image a = 1 and b = 4: ceil(1) * ceil(4) = 4 tokens (or 2 * 5 = 10 if both land a hair above, as at 76x19).
#    Nearly 4:1: a slightly below 1 makes b slightly above 4 -> 1 * 5 = 5; a slightly above 1 -> 2 * 4 = 8
#    (b below 4) or 2 * 5 = 10 (b above 4). So the saw-tooth takes the values 4, 5, 8, 10.
rows = []
for W in range(16, 111):
    H = max(1, round(W / 4))
    if round(H / 28) * round(W / 28) * 28 * 28 >= MIN_PIXELS:
        continue  # not in the upscale branch
    beta = math.sqrt(MIN_PIXELS / (H * W))
    predicted = math.ceil(H * beta / 28) * math.ceil(W * beta / 28)
    rows.append((W, H, predicted, count_image_tokens(H, W, special_tokens=False)))
assert all(p == n for _, _, p, n in rows)
values = sorted({n for *_, n in rows})
exact = sorted({n for W, H, _, n in rows if W == 4 * H})
assert set(values) <= {4, 5, 8, 10} and {4, 5, 8} <= set(values)
assert exact == [4, 10]  # 4 almost always; 10 once, at 76x19 (floating point)
print(f"3. {len(rows)} near-4:1 images below the clamp get {values} merged tokens; exactly 4:1 ones get {exact}")
