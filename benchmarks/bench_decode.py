"""Decode speed at batch 1: ours vs transformers' generate, beside the memory-bandwidth bound.

Each new token reads every LLM weight once, so tokens/s cannot exceed
    memory bandwidth / (bytes of the LLM weights).
On CUDA (when a GPU is lent) the published Qwen2-VL-2B config runs in bf16 (real weights if
$QWEN2VL_2B_PATH points at them, else random); on CPU a Qwen2-0.5B-sized LLM in fp32 keeps the
run short. Both models generate the same greedy tokens (checked) from a prompt with one image.

    python benchmarks/bench_decode.py [--new-tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import torch

from qwenvl_study import QWEN2_VL_2B, Qwen2VL, load_pretrained
from qwenvl_study.course import reference as ref
from qwenvl_study.config import TextConfig, VisionConfig
from qwenvl_study.course.env import find_weights, measure


def cpu_config():
    text = TextConfig(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=12,
                      num_attention_heads=14, num_key_value_heads=2, mrope_section=(8, 12, 12))
    return dataclasses.replace(QWEN2_VL_2B, vision=VisionConfig(depth=4, embed_dim=256, num_heads=4, hidden_size=896),
                               text=text, name="Qwen2-0.5B-sized LLM (12 layers)")


def bandwidth_gbs(device: torch.device) -> float:
    """Measured copy bandwidth: bytes read + written per second (GB/s)."""
    n = (1 << 28) if device.type == "cuda" else (1 << 26)  # 1 GiB / 256 MiB of fp32
    src = torch.empty(n, device=device)
    dst = torch.empty_like(src)
    best = min(measure(lambda: dst.copy_(src), device)[1] for _ in range(5))
    return 2 * src.numel() * 4 / best / 1e9


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=4)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    weights = find_weights()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cuda" and weights is not None:  # the published weights, loaded by both
        ours = load_pretrained(weights, dtype=dtype, device=device)
        cfg = ours.config
        hf = ref.hf_from_pretrained(weights, dtype=dtype, device=device, attn_implementation="sdpa")
    else:  # random weights, shared: the 2B config on a GPU, a 0.5B-sized LLM on CPU
        cfg = QWEN2_VL_2B if device.type == "cuda" else cpu_config()
        if device.type != "cuda":
            print("no CUDA device: running on CPU with", cfg.name, "in fp32 (the 2B bf16 run needs a GPU)")
        hf = ref.hf_model(cfg, attn_implementation="sdpa").to(device=device, dtype=dtype)
        ours = Qwen2VL(cfg).to(device=device, dtype=dtype).eval()
        ours.load_state_dict(ref.published_state_dict(hf))
    g = torch.Generator().manual_seed(0)
    grid = torch.tensor([[1, 16, 16]])  # a 224x224 image: 64 merged tokens
    ids = torch.tensor([[151644] + torch.randint(0, 150_000, (20,), generator=g).tolist() + [cfg.vision_start_token_id]
                        + [cfg.image_token_id] * 64 + [cfg.vision_end_token_id]
                        + torch.randint(0, 150_000, (12,), generator=g).tolist()], device=device)
    pixels = torch.randn(256, 1176, generator=g).to(device=device, dtype=dtype)
    kw = dict(pixel_values=pixels, image_grid_thw=grid.to(device))
    n = args.new_tokens

    def run_ours(k):
        return ours.generate(ids, **kw, max_new_tokens=k, eos_token_id=[])

    def run_hf(k):
        return ref.hf_generate(hf, cfg, ids, **kw, max_new_tokens=k, min_new_tokens=k, do_sample=False,
                               eos_token_id=None)

    runs = {"ours": run_ours, "transformers": run_hf}
    for fn in runs.values():
        fn(2)  # warm-up
    prefill: dict[str, list[float]] = {k: [] for k in runs}
    total: dict[str, list[float]] = {k: [] for k in runs}
    outputs, peaks = {}, {k: 0.0 for k in runs}
    for r in range(args.repeats):  # alternate the order: a shared machine's drift hits both alike
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            prefill[name].append(measure(lambda: runs[name](1), device)[1])
            outputs[name], seconds, peak = measure(lambda: runs[name](n), device)
            total[name].append(seconds)
            peaks[name] = max(peaks[name], peak or 0.0)
    results = {}
    for name in runs:
        first = statistics.median(prefill[name])
        decode = (n - 1) / max(statistics.median(total[name]) - first, 1e-9)  # tokens/s after the first
        peak = (f"{peaks[name]:.2f} GiB (allocated)" if device.type == "cuda" else
                f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process max RSS so far)")
        results[name] = (outputs[name], decode, first, peak)
    same = torch.equal(results["ours"][0], results["transformers"][0])
    llm_bytes = sum(p.numel() * p.element_size() for n_, p in ours.named_parameters() if not n_.startswith("visual."))
    bw = bandwidth_gbs(device)
    bound = bw * 1e9 / llm_bytes
    print(f"device {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}, {cfg.name}, {dtype}, "
          f"prompt {ids.shape[1]} tokens (one 224x224 image), {n} new tokens, batch 1, median of {args.repeats} (alternating)")
    print(f"same greedy tokens: {same}")
    for name, (_, rate, prefill, peak) in results.items():
        print(f"  {name:12} decode {rate:8.1f} tok/s   prefill {prefill * 1e3:7.1f} ms   peak {peak}")
    print(f"  ratio ours/transformers decode tok/s: {results['ours'][1] / results['transformers'][1]:.2f}")
    print(f"  bandwidth bound: {bw:.0f} GB/s measured copy bandwidth / {llm_bytes / 1e9:.2f} GB of LLM weights "
          f"= {bound:.1f} tok/s")


if __name__ == "__main__":
    main()
