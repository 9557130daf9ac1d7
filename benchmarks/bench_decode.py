"""Decode speed at batch 1: ours vs transformers' generate, beside the memory-bandwidth bound.

Each new token reads every LLM weight once, so tokens/s cannot exceed
    memory bandwidth / (bytes of the LLM weights)
(the bandwidth is measured here: a large copy, bytes read + written per second). Cases, each at the
default torch threads and at 1 thread, prompts with one 224x224 image (64 merged tokens):

* ``0.5b-fp32`` / ``0.5b-bf16``: a Qwen2-0.5B-sized LLM (896 wide, 24 layers, GQA 14/2, tied 151,936-row
  head) behind a small ViT, random weights shared by both models. "ours" decodes with the decode-time
  layout (``Qwen2VL.prepare_decode``: wide matrices stored column-major once); "ours, row-major" is the
  same model without it — what the layout buys.
* ``2b``: the published Qwen2-VL-2B config with random weights, or the real weights wherever
  ``$QWEN2VL_2B_PATH`` points at them (fp32 on the CPU, bf16 on CUDA): prefill and decode.

Runs alternate between the models in every repeat (a shared machine's drift hits all alike) and the
figures are reported as ranges (min-max over repeats). Prefill = time to the first new token; decode =
tokens/s after it, from each token's arrival time (a streamer), so one run gives both. At 1 thread the
tokens/s are also given in CPU time of the one thread (robust to other jobs taking the cores, not to
their memory traffic). Greedy tokens must be equal (asserted in fp32; reported in bf16, where the two
implementations round differently).

    python benchmarks/bench_decode.py [--cases 0.5b-fp32,0.5b-bf16,2b] [--new-tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time

import torch

from qwenvl_study import QWEN2_VL_2B, Qwen2VL, load_pretrained
from qwenvl_study.config import TextConfig, VisionConfig
from qwenvl_study.course import reference as ref
from qwenvl_study.course.env import find_weights, measure

CASES = ("0.5b-fp32", "0.5b-bf16", "2b")


def config_05b():
    text = TextConfig(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, mrope_section=(8, 12, 12))
    return dataclasses.replace(QWEN2_VL_2B, vision=VisionConfig(depth=4, embed_dim=256, num_heads=4, hidden_size=896),
                               text=text, name="Qwen2-0.5B-sized LLM (24 layers, tied head) + 4-block ViT")


def bandwidth_gbs(device: torch.device) -> float:
    """Measured copy bandwidth: bytes read + written per second (GB/s), best of 5."""
    n = (1 << 28) if device.type == "cuda" else (1 << 26)  # 1 GiB / 256 MiB of fp32
    src = torch.empty(n, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    best = min(measure(lambda: dst.copy_(src), device)[1] for _ in range(5))
    return 2 * src.numel() * 4 / best / 1e9


class Clock:
    """Arrival time (wall and this thread's CPU time) of each new token: ours calls it, transformers ``put``s."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.prompt_seen = False

    def __call__(self, token) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.thread_time())

    def put(self, value) -> None:  # transformers' streamer protocol: the prompt first, then each token
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self(value)

    def end(self) -> None:
        pass


def prompt(cfg, device, dtype):
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([[151644] + torch.randint(0, 150_000, (20,), generator=g).tolist() + [cfg.vision_start_token_id]
                        + [cfg.image_token_id] * 64 + [cfg.vision_end_token_id]
                        + torch.randint(0, 150_000, (12,), generator=g).tolist()], device=device)
    patch = 3 * cfg.vision.temporal_patch_size * cfg.vision.patch_size ** 2
    pixels = torch.randn(256, patch, generator=g).to(device=device, dtype=dtype)
    return ids, dict(pixel_values=pixels, image_grid_thw=torch.tensor([[1, 16, 16]], device=device))


def build(case: str, device: torch.device):
    """(config, dtype, {name: model}, transformers model) for one case; all share one set of weights."""
    weights = find_weights()
    if case == "2b" and weights is not None:  # the published weights, loaded by both (bf16 on CUDA, fp32 on CPU)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        ours = load_pretrained(weights, dtype=dtype, device=device)
        hf = ref.hf_from_pretrained(weights, dtype=dtype, device=device, attn_implementation="sdpa")
        return ours.config, dtype, {"ours": ours}, hf
    cfg = QWEN2_VL_2B if case == "2b" else config_05b()
    dtype = torch.bfloat16 if case == "0.5b-bf16" or (case == "2b" and device.type == "cuda") else torch.float32
    hf = ref.hf_model(cfg, attn_implementation="sdpa").to(device=device, dtype=dtype)
    ours = Qwen2VL(cfg).eval()
    ours.load_state_dict(ref.published_state_dict(hf), assign=True)  # the same tensors, no second copy
    models = {"ours": ours.to(device)}
    if case == "0.5b-fp32" and device.type == "cpu":  # the readable layout alone, for what the fast path buys
        plain = copy.deepcopy(ours)
        plain.decode_layout = False
        models["ours, row-major"] = plain
    return cfg, dtype, models, hf


def run_case(case: str, device: torch.device, new_tokens: int, repeats: int, bw: list[float]) -> dict:
    cfg, dtype, models, hf = build(case, device)
    ids, kw = prompt(cfg, device, dtype)

    def run(name, clock, k):
        if name == "transformers":
            return ref.hf_generate(hf, cfg, ids, **kw, max_new_tokens=k, min_new_tokens=k, do_sample=False,
                                   eos_token_id=None, streamer=clock)
        return models[name].generate(ids, **kw, max_new_tokens=k, eos_token_id=[], streamer=clock)

    names = list(models) + ["transformers"]
    llm_bytes = sum(p.numel() * p.element_size() for n, p in models["ours"].named_parameters()
                    if not n.startswith("visual."))
    print(f"\n== {case}: {cfg.name}, {str(dtype).replace('torch.', '')}, {device.type}, prompt {ids.shape[1]} tokens, "
          f"{new_tokens} new tokens, batch 1, {repeats} repeats (alternating); LLM weights {llm_bytes / 1e9:.2f} GB")
    report = {}
    for threads in ([torch.get_num_threads(), 1] if device.type == "cpu" else [torch.get_num_threads()]):
        torch.set_num_threads(threads)
        for name in names:
            run(name, Clock(), 2)  # warm-up (and the decode layout, prepared once)
        stats = {name: {"prefill": [], "wall": [], "cpu": []} for name in names}
        outputs = {}
        for r in range(repeats):
            bw.append(bandwidth_gbs(device))  # between runs too: the bound is the best the machine gave
            for name in (names if r % 2 == 0 else names[::-1]):
                clock = Clock()
                start_wall, start_cpu = time.perf_counter(), time.thread_time()
                outputs[name] = run(name, clock, new_tokens)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                n = len(clock.wall)
                stats[name]["prefill"].append(clock.wall[0] - start_wall)
                stats[name]["wall"].append((n - 1) / (clock.wall[-1] - clock.wall[0]))
                stats[name]["cpu"].append((n - 1) / max(clock.cpu[-1] - clock.cpu[0], 1e-9))
        same = {name: torch.equal(outputs[name], outputs["transformers"]) for name in models}
        if dtype == torch.float32:
            assert all(same.values()), f"greedy tokens differ from transformers: {same}"
        print(f"  threads {threads}: same greedy tokens as transformers: "
              + ", ".join(f"{k} {v}" for k, v in same.items()))
        for name in names:
            s = stats[name]
            cpu = f"   [{min(s['cpu']):.1f}-{max(s['cpu']):.1f} tok/s in CPU time]" if threads == 1 else ""
            print(f"    {name:16} decode {min(s['wall']):6.1f}-{max(s['wall']):6.1f} tok/s   prefill "
                  f"{min(s['prefill']) * 1e3:7.0f}-{max(s['prefill']) * 1e3:7.0f} ms{cpu}")
        bound = max(bw) * 1e9 / llm_bytes
        ours, theirs = stats["ours"]["wall"], stats["transformers"]["wall"]
        ratios = [a / b for a, b in zip(ours, theirs)]  # pairs measured side by side in one repeat
        line = (f"    ours/transformers decode: {min(ratios):.2f}-{max(ratios):.2f}x (per repeat); "
                f"ours at {min(ours) / bound:.0%}-{max(ours) / bound:.0%} of the bound {bound:.1f} tok/s "
                f"({max(bw):.0f} GB/s, the best copy bandwidth measured between runs; {min(bw):.0f} at worst)")
        if threads == 1:
            cpu_ratios = [a / b for a, b in zip(stats["ours"]["cpu"], stats["transformers"]["cpu"])]
            line += f"; in CPU time {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f}x"
        prefill_ratio = [b / a for a, b in zip(stats["ours"]["prefill"], stats["transformers"]["prefill"])]
        print(line + f"\n    prefill transformers/ours: {min(prefill_ratio):.2f}-{max(prefill_ratio):.2f}x")
        report[threads] = stats
    return report


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bw = [bandwidth_gbs(device)]
    print(f"device {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}, "
          f"{torch.get_num_threads()} default threads; measured copy bandwidth {bw[0]:.0f} GB/s (read + write)")
    for case in args.cases.split(","):
        if case not in CASES:
            raise SystemExit(f"unknown case {case!r}; choose from {', '.join(CASES)}")
        threads = torch.get_num_threads()
        with torch.no_grad():
            run_case(case, device, args.new_tokens if case != "2b" else min(args.new_tokens, 16), args.repeats, bw)
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
