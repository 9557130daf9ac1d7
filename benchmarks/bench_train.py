"""One training step of the course model: ours vs transformers, same config, weights and batch (fp32 CPU).

A step = forward over a batch of 16 course chats (images, videos, multi-turn), the answer-only loss,
backward, AdamW step. transformers' ``Qwen2VLForConditionalGeneration(labels=...)`` runs with sdpa
(its default) on the same trimmed-vocabulary config and weights. Interleaved runs, median times;
ratio = ours / transformers (< 1: ours is faster); tokens/s counts every real (non-padding) token.
At the default torch threads and at 1 thread.

    python benchmarks/bench_train.py [--repeats 5] [--batch 16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from qwenvl_study.chat import mm_token_type_ids
from qwenvl_study.course import reference as ref
from qwenvl_study.train.course import CourseQwen2VL, answer_loss, collate, course_config, encode_sample
from qwenvl_study.train.data import make_sample
from qwenvl_study.train.recipe import STAGES
from qwenvl_study.train.vocab import build_vocab, course_tokenizer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()
    tok = course_tokenizer()
    vocab = build_vocab(tok)
    config = course_config(vocab)
    hf = ref.hf_model(config, attn_implementation="sdpa").train()
    ours = CourseQwen2VL(config, vocab).train()
    ours.load_state_dict(ref.published_state_dict(hf), strict=True)
    stage = STAGES[2]
    samples = [make_sample(77, i, mix=stage.mix, max_turns=stage.max_turns) for i in range(args.batch - 2)]
    samples += [make_sample(77, 1000 + i, "direction") for i in range(2)]  # two videos in every batch
    batch = collate([encode_sample(s, tok, vocab) for s in samples], vocab.special("<|endoftext|>"))
    labels = batch.pop("labels")
    tokens = int(batch["attention_mask"].sum())
    tt = mm_token_type_ids(batch["input_ids"], config.image_token_id, config.video_token_id)
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4)

    def step_ours():
        loss = answer_loss(ours(**batch), labels)
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def step_hf():
        loss = hf(**batch, labels=labels, mm_token_type_ids=tt).loss
        loss.backward()
        opt_hf.step()
        opt_hf.zero_grad(set_to_none=True)

    print(f"course model {sum(p.numel() for p in ours.parameters()):,} parameters, batch {args.batch}: "
          f"{tuple(batch['input_ids'].shape)} ids, {tokens} real tokens, "
          f"{int(batch['pixel_values'].shape[0]) if 'pixel_values' in batch else 0} image patches, "
          f"{int(batch['pixel_values_videos'].shape[0]) if 'pixel_values_videos' in batch else 0} video patches")
    default_threads = torch.get_num_threads()
    for threads in dict.fromkeys([default_threads, 1]):
        torch.set_num_threads(threads)
        for fn in (step_ours, step_hf):  # warm-up
            fn()
        times = {"ours": [], "transformers": []}
        for _ in range(args.repeats):
            for name, fn in (("ours", step_ours), ("transformers", step_hf)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        o, h = statistics.median(times["ours"]), statistics.median(times["transformers"])
        print(f"threads={threads}: step ours {o * 1000:.0f} ms ({tokens / o:,.0f} tok/s), transformers "
              f"{h * 1000:.0f} ms ({tokens / h:,.0f} tok/s); ratio ours/transformers {o / h:.2f}")
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
