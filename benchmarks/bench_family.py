#!/usr/bin/env python3
"""The VLM family (lessons 09-10): our from-scratch pieces vs their transformers counterparts.

Prints ours / reference time ratios (< 1: ours faster). Run from the repo root:
``python benchmarks/bench_family.py`` (``make bench`` runs every bench_*.py). No speed goal is
asserted anywhere: these numbers only show the teaching code is not pathologically slow.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from qwenvl_study.course import reference as ref  # noqa: E402
from qwenvl_study.family import blip2, clip, internvl  # noqa: E402


def best_of(fn, repeat: int = 5, number: int = 1) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def row(name: str, ours: float, theirs: float) -> None:
    print(f"{name:48} ours {ours * 1e3:9.3f} ms   reference {theirs * 1e3:9.3f} ms   ratio {ours / theirs:5.2f}")


def main() -> None:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    sizes = [(w, h) for w in range(100, 4000, 397) for h in range(100, 4000, 397)]
    ref.hf_tile_grid(10, 10)  # import outside the timing

    def ours_tiles():
        for w, h in sizes:
            internvl.internvl_tile_grid(w, h)

    def hf_tiles():
        for w, h in sizes:
            ref.hf_tile_grid(w, h)

    row(f"InternVL tile grid, {len(sizes)} sizes (both memoise)", best_of(ours_tiles), best_of(hf_tiles))

    x = torch.randn(8, 32, 32, 1024)
    row("pixel shuffle [8, 32, 32, 1024]", best_of(lambda: internvl.pixel_shuffle(x), number=5),
        best_of(lambda: ref.hf_pixel_shuffle(x), number=5))

    cfg = blip2.QFormerConfig(num_hidden_layers=4)
    hf_q = ref.hf_qformer(cfg)
    ours_q = blip2.QFormerModel(cfg).eval()
    ours_q.load_state_dict(hf_q.state_dict())
    emb, image, mask = torch.randn(4, 32 + 16, 768), torch.randn(4, 257, 1024), blip2.itg_mask(32, 16)
    with torch.no_grad():
        row("Q-Former, 4 blocks, 32 queries + 16 text, ITG mask", best_of(lambda: ours_q(emb, image, mask, 32)),
            best_of(lambda: ref.hf_qformer_forward(hf_q, emb, image, mask, 32)))

    i, t = torch.randn(1024, 512), torch.randn(1024, 512)
    row("CLIP loss, batch 1024 x 512", best_of(lambda: clip.clip_loss(i, t, 1 / 0.07), number=3),
        best_of(lambda: ref.hf_clip_loss(i, t, 1 / 0.07), number=3))


if __name__ == "__main__":
    main()
