"""The tour: the course's key facts computed live and checked against the reference (``make demo``).

Each fact is a claim, our value, the reference's value and ✔/✘. Sections register themselves
with ``@section``; figures with ``@figure``. Nothing here restates a number by hand: the "ours"
column comes from the package, the "reference" column from transformers (``reference.py``) or,
for the published checkpoint's size, from its ``model.safetensors.index.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["Fact", "section", "figure", "run_tour", "format_facts"]


@dataclass
class Fact:
    claim: str
    ours: Any
    reference: Any
    ok: bool


SECTIONS: list[tuple[str, Callable[[], list[Fact]]]] = []
FIGURES: list[Callable[[Path], list[Path]]] = []


def section(title: str):
    def register(fn: Callable[[], list[Fact]]):
        SECTIONS.append((title, fn))
        return fn

    return register


def figure(fn: Callable[[Path], list[Path]]):
    FIGURES.append(fn)
    return fn


# ---------------------------------------------------------------------------------------------
# Lesson 01 — from pixels to 66 tokens
# ---------------------------------------------------------------------------------------------
# The published checkpoint's bf16 size: metadata.total_size of Qwen2-VL-2B(-Instruct)'s
# model.safetensors.index.json (two bytes per parameter, tied embeddings stored once).
PUBLISHED_2B_TOTAL_SIZE = 4_417_971_200


@section("Dynamic resolution and patching (lesson 01)")
def _lesson01() -> list[Fact]:
    import numpy as np
    import torch
    from PIL import Image

    from . import reference as ref
    from .patching import PatchEmbed, preprocess_image
    from .resolution import count_image_tokens, smart_resize
    from .samples import sample_path

    facts = []
    facts.append(Fact("224x224 is resized to", smart_resize(224, 224), ref.hf_smart_resize(224, 224),
                      smart_resize(224, 224) == ref.hf_smart_resize(224, 224)))
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8))
    pv, grid = preprocess_image(img)
    hpv, hgrid = ref.hf_preprocess(img)
    facts.append(Fact("224x224 patch grid (t, h, w)", tuple(grid[0].tolist()), tuple(hgrid[0].tolist()),
                      torch.equal(grid, hgrid)))
    facts.append(Fact("224x224 patches (rows of 1176)", pv.shape[0], hpv.shape[0], pv.shape == hpv.shape))
    n_tok = count_image_tokens(224, 224)
    ref_tok = int(hgrid.prod()) // 4 + 2
    facts.append(Fact("224x224 → LLM tokens (64 merged + 2)", n_tok, ref_tok, n_tok == ref_tok == 66))
    sample = sample_path()
    spv, sgrid = preprocess_image(sample)
    shpv, shgrid = ref.hf_preprocess(Image.open(sample))
    err = (spv - shpv).abs().max().item()
    facts.append(Fact("sample.png pixel_values max |ours - ref|", f"{err:.1e}", "≤ 1e-6", err <= 1e-6))
    thin_t = smart_resize(13, 2000)
    thin_q = smart_resize(13, 2000, rule="qwen-vl-utils")
    facts.append(Fact("13x2000, transformers rule", thin_t, ref.hf_smart_resize(13, 2000),
                      thin_t == ref.hf_smart_resize(13, 2000)))
    qvu = ref.qwen_vl_utils().smart_resize(13, 2000)
    facts.append(Fact("13x2000, qwen-vl-utils rule (clamps sides ≥ 28 first)", thin_q, f"{qvu} (qwen-vl-utils)",
                      thin_q == qvu and thin_q != thin_t))
    torch.manual_seed(0)
    embed = PatchEmbed(embed_dim=1280)
    x = torch.randn(256, 1176)
    err = (embed(x) - embed.as_linear()(x)).abs().max().item()
    facts.append(Fact("Conv3d(k=stride=(2,14,14)) == Linear(1176, 1280)", f"{err:.1e}", "≤ 1e-5", err <= 1e-5))
    return facts


@section("Model size (config → parameters)")
def _sizes() -> list[Fact]:
    from . import reference as ref
    from .config import PRESETS, count_parameters

    facts = []
    for name, cfg in PRESETS.items():
        ours, hf = count_parameters(cfg), ref.hf_parameter_count(cfg)
        facts.append(Fact(f"Qwen2-VL-{name} parameters (vision + language)",
                          f"{ours.vision:,} + {ours.language:,} = {ours.total:,}", f"{hf.total:,}", ours == hf))
    two_b = count_parameters(PRESETS["2B"]).total
    facts.append(Fact("2B checkpoint bytes in bf16 (2 x params)", f"{2 * two_b:,}",
                      f"{PUBLISHED_2B_TOTAL_SIZE:,} (published index)", 2 * two_b == PUBLISHED_2B_TOTAL_SIZE))
    return facts


@figure
def _lesson01_figures(out: Path) -> list[Path]:
    from . import viz
    from .samples import sample_path

    return [
        viz.savefig(viz.draw_patch_grid(sample_path()), out / "01_patch_grid.png"),
        viz.savefig(viz.draw_patch_order(4, 6), out / "01_patch_order.png"),
        viz.savefig(viz.plot_tokens_vs_resolution(), out / "01_tokens_vs_resolution.png"),
        viz.savefig(viz.draw_two_frames(sample_path()), out / "01_two_frames.png"),
    ]


# ---------------------------------------------------------------------------------------------
def format_facts(title: str, facts: list[Fact]) -> str:
    rows = [(("✔" if f.ok else "✘"), f.claim, str(f.ours), str(f.reference)) for f in facts]
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    lines = [f"\n== {title}", f"   {'claim'.ljust(w1)}  {'ours'.ljust(w2)}  reference"]
    lines += [f"{m}  {c.ljust(w1)}  {o.ljust(w2)}  {r}" for m, c, o, r in rows]
    return "\n".join(lines)


def run_tour(out: str | Path | None = "outputs", print_fn: Callable[[str], None] = print) -> list[Fact]:
    """Run every section (printing a ✔/✘ table each) and write the figures to ``out``."""
    from .reference import transformers_version

    import torch

    print_fn(f"qwenvl-study tour — torch {torch.__version__}, transformers {transformers_version()}, "
             f"device cpu{' (CUDA available)' if torch.cuda.is_available() else ''}")
    all_facts: list[Fact] = []
    for title, fn in SECTIONS:
        start = time.perf_counter()
        facts = fn()
        all_facts += facts
        print_fn(format_facts(f"{title}  [{time.perf_counter() - start:.1f} s]", facts))
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        out = Path(out)
        paths = [p for fn in FIGURES for p in fn(out)]
        print_fn(f"\nfigures written to {out}/: " + ", ".join(p.name for p in paths))
    n_bad = sum(not f.ok for f in all_facts)
    print_fn(f"\n{len(all_facts) - n_bad} ✔ / {n_bad} ✘")
    return all_facts
