"""Benchmark: M-RoPE position ids for a batch of 32 mixed sequences, ours vs transformers.

Ours (``qwenvl_study.rope.mrope_position_ids``, a loop over the segments of each row, numpy per
segment) against the installed transformers' ``Qwen2VLModel.get_rope_index`` (a Python loop per
row, ``groupby`` per token, torch ops per segment). Each row: text, 2-4 images, one video, more text; left padding. The video has
t <= max(h', w') so both rules give the same ids (asserted before timing). Goal: >= 10x.

Run: ``PYTHONPATH=. python benchmarks/bench_rope.py`` (or ``make bench``). Measured twice: at the
default torch threads (what a learner runs; tiny torch ops pay thread start-up there) and at one
thread. The two are timed in alternation (so both see the same machine load); reported: the median
wall-clock time of each (the goal, >= 10x at both thread counts) and the median CPU time of this
thread. Exit status 1 if the goal is not met.
"""

from __future__ import annotations

import random
import statistics
import sys
import time

import torch

from qwenvl_study.course import reference as ref
from qwenvl_study.rope import mrope_position_ids, segments_to_batch

GOAL = 10.0


def mixed_batch(batch: int = 32, seed: int = 0) -> dict:
    rng = random.Random(seed)
    rows = []
    for _ in range(batch):
        row = [("text", rng.randint(10, 60))]
        for _ in range(rng.randint(2, 4)):
            row += [("image", (1, 2 * rng.randint(4, 20), 2 * rng.randint(4, 20))), ("text", rng.randint(2, 20))]
        h, w = 2 * rng.randint(6, 12), 2 * rng.randint(6, 12)
        row += [("video", (rng.randint(2, max(h, w) // 2), h, w)), ("text", rng.randint(5, 40))]
        rows.append(row)
    return segments_to_batch(rows, pad_side="left")


def interleaved_times(fns: dict, rounds: int = 12, inner: dict | None = None) -> dict:
    """Median (wall, cpu) seconds per call of each function, calling them in alternation."""
    inner = inner or {}
    times = {name: ([], []) for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(inner.get(name, 1)):
                wall, cpu = time.perf_counter(), time.thread_time()
                fn()
                times[name][1].append(time.thread_time() - cpu)
                times[name][0].append(time.perf_counter() - wall)
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}


def main() -> int:
    case = mixed_batch()
    ids, deltas = mrope_position_ids(**case)
    hf_ids, hf_deltas = ref.hf_rope_index(**case)
    real = case["attention_mask"].bool()
    assert torch.equal(ids[:, real], hf_ids[:, real]), "ids differ from transformers on real tokens"
    assert torch.equal(hf_deltas, deltas + (real.shape[1] - real.sum(-1, keepdim=True))), "deltas relation broken"
    B, L = case["input_ids"].shape
    print(f"M-RoPE ids, batch {B} x {L} tokens ({int(real.sum()):,} real; "
          f"{len(case['image_grid_thw'])} images, {len(case['video_grid_thw'])} videos), left padding")
    print("ids identical to transformers on real tokens: True (deltas: delta_5x = ours + L - n_real)")
    met = True
    for threads in (torch.get_num_threads(), 1):  # the default first (what a learner runs), then 1 thread
        torch.set_num_threads(threads)
        t = interleaved_times({"ours": lambda: mrope_position_ids(**case), "ref": lambda: ref.hf_rope_index(**case)},
                              rounds=20, inner={"ours": 3})
        (ours, ours_cpu), (theirs, theirs_cpu) = t["ours"], t["ref"]
        ratio = theirs / ours
        met &= ratio >= GOAL
        print(f"torch threads {threads}: ours (mrope_position_ids) median {ours * 1e3:6.2f} ms wall "
              f"({ours_cpu * 1e3:6.2f} ms cpu); transformers get_rope_index (5.x) {theirs * 1e3:7.2f} ms wall "
              f"({theirs_cpu * 1e3:7.2f} ms cpu)")
        print(f"torch threads {threads}: ratio reference/ours {ratio:.1f}x wall ({theirs_cpu / ours_cpu:.1f}x cpu of "
              f"this thread)  (goal >= {GOAL:.0f}x on wall time: {'met' if ratio >= GOAL else 'NOT met'})")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
