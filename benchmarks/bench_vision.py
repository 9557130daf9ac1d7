"""Benchmark: our vision tower vs transformers' (same weights, same threads), and attention memory.

(a) speed — 2B vision widths, one 448x448 image (1024 patches), CPU fp32, torch.inference_mode,
    both towers holding the *same* tensors; runs alternate ours / reference, the best of
    ``--repeats`` is compared. By default the tower has 8 of its 32 blocks (every block costs the
    same, so the ratio is the 32-block ratio within noise and the run stays under ~2 minutes on a
    2-core CPU); ``--depth 32`` runs the whole tower.
(b) memory — images of different sizes packed (1, 2, 4, 8 images), 2B attention shape
    (16 heads x 80): peak memory of ONE attention call, for a dense N x N block-diagonal mask
    (eager; sdpa with the mask), per-segment sdpa (ours), and varlen (no N x N term at all).
    Measured with torch.profiler(profile_memory=True): the running sum of every op's allocations
    and frees in time order, peak above the inputs. Analytic column: mask bytes + score bytes.
(c) CUDA only — bf16 throughput of the 2B tower vs transformers (sdpa), and MFU against the GPU's
    bf16 dense peak. Printed as skipped, with the reason, on a CPU.

Run: ``python benchmarks/bench_vision.py [--depth 32] [--repeats 3] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qwenvl_study import QWEN2_VL_2B, VisionConfig, preprocess_image  # noqa: E402
from qwenvl_study.course import reference as ref  # noqa: E402
from qwenvl_study.attention import (attention, available_backends, block_diagonal_mask,  # noqa: E402
                                    cu_seqlens_from_grid, score_bytes)
from qwenvl_study.vision import VisionTransformer  # noqa: E402

# patch grids (t, h, w) of 8 differently sized images (128 .. 400 patches; 2208 in all)
PACKED_GRIDS = [(1, 16, 16), (1, 16, 20), (1, 20, 16), (1, 12, 16), (1, 16, 12), (1, 20, 20), (1, 12, 12), (1, 16, 24)]
# bf16 dense tensor-core peak, TFLOP/s (vendor datasheets); --peak-tflops overrides
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H100": 756.0,
                    "A100": 312.0, "L40S": 362.1, "L4": 121.0, "A10G": 70.0}


def sample_pixels(side: int) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    from qwenvl_study.course.samples import sample_path

    image = Image.open(sample_path()).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    return preprocess_image(image)


def vision_flops(vision: VisionConfig, grid_thw: torch.Tensor) -> int:
    """Multiply-adds x 2 of one forward: patch embed, blocks (linears + attention inside segments), merger."""
    n = int(grid_thw.prod(-1).sum())
    d, m = vision.embed_dim, vision.mlp_hidden_dim
    seg = torch.repeat_interleave(grid_thw[:, 1] * grid_thw[:, 2], grid_thw[:, 0]).double()
    linears = 2 * n * (d * 3 * d + d * d + 2 * d * m)
    attn = 2 * 2 * int((seg**2).sum()) * d  # q·kᵀ and p·v over each segment
    merger = 2 * (n // 4) * (vision.merged_dim * vision.merged_dim + vision.merged_dim * vision.hidden_size)
    return 2 * n * vision.patch_dim * d + vision.depth * (linears + attn) + merger


# ---------------------------------------------------------------------------------------------
# (a) CPU speed
# ---------------------------------------------------------------------------------------------
def bench_speed(depth: int, repeats: int, threads: int, side: int = 448) -> None:
    torch.set_num_threads(threads)
    vision = dataclasses.replace(QWEN2_VL_2B.vision, depth=depth)
    pv, grid = sample_pixels(side)
    print(f"\n(a) CPU fp32 speed: 2B vision widths, depth {depth}/32, one {side}x{side} image "
          f"({pv.shape[0]} patches), {threads} threads, best of {repeats} (alternating)")
    start = time.perf_counter()
    ours = VisionTransformer.random(vision, attn_backend="auto")
    theirs = ref.hf_vision_model(vision, ours.state_dict(), attn_implementation="sdpa")  # shares our tensors
    print(f"    built both towers (shared weights) in {time.perf_counter() - start:.1f} s")
    runs = {"ours": lambda: ours(pv, grid), "transformers": lambda: theirs(pv, grid_thw=grid).pooler_output}
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    with torch.inference_mode():
        out = {k: fn() for k, fn in runs.items()}  # warm-up (and a parity check)
        for r in range(repeats):
            for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
                t, c = time.perf_counter(), time.process_time()
                runs[name]()
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
    err = (out["ours"] - out["transformers"]).abs().max().item()
    gflop = vision_flops(vision, grid) / 1e9
    for name in runs:
        print(f"    {name:13s} wall best {min(wall[name]):6.2f} s  median {statistics.median(wall[name]):6.2f} s   "
              f"cpu best {min(cpu[name]):6.2f} s   ({gflop / min(wall[name]):.0f} GFLOP/s)")
    with torch.inference_mode():
        allocated = {k: allocated_bytes(fn) for k, fn in runs.items()}
    print(f"    fresh buffers allocated per forward (deterministic; on this VM every fresh page faults): "
          f"ours {allocated['ours'] / 2**30:.2f} GiB, transformers {allocated['transformers'] / 2**30:.2f} GiB")
    ratio = {k: min(v["ours"]) / min(v["transformers"]) for k, v in (("wall", wall), ("cpu", cpu))}
    median = statistics.median(wall["ours"]) / statistics.median(wall["transformers"])
    print(f"    ratio ours / transformers: wall best {ratio['wall']:.3f}  wall median {median:.3f}  "
          f"cpu-time best {ratio['cpu']:.3f}   (goal <= 0.9)   max |ours - ref| = {err:.1e}")


# ---------------------------------------------------------------------------------------------
# (b) memory of the attention step
# ---------------------------------------------------------------------------------------------
def peak_bytes(fn) -> int:
    """Peak of the running sum of allocations/frees (torch.profiler, profile_memory=True) during fn()."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    current = peak = 0
    for e in events:
        current += e.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def best_time(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def allocated_bytes(fn) -> int:
    """Sum of every allocation (torch.profiler, profile_memory=True) during fn()."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return sum(e.self_cpu_memory_usage for e in prof.events() if e.self_cpu_memory_usage > 0)


def bench_memory(max_images: int = 8) -> None:
    torch.set_num_threads(1)
    heads, hd = QWEN2_VL_2B.vision.num_heads, QWEN2_VL_2B.vision.head_dim
    print(f"\n(b) one packed attention call, 2B shape ({heads} heads x {hd}), fp32 CPU, 1 thread; images of "
          f"different sizes ({', '.join(f'{h}x{w}' for _, h, w in PACKED_GRIDS[:max_images])} patches)")
    print("    peak memory — measured: torch.profiler running sum of allocations and frees (+ the mask where one is "
          "passed);\n    analytic: bool mask N² B + 2 fp32 score buffers 2·H·N²·4 B (dense, eager) vs 2·H·max(n)²·4 B "
          "(per segment, eager math)")
    print(f"    {'images':>6} {'N':>5} | {'eager+mask':>10} {'sdpa+mask':>10} {'sdpa/segment':>12} {'varlen':>7} | "
          f"{'analytic dense':>14} {'per-segment':>11} | time: {'eager+mask':>10} {'sdpa+mask':>10} {'sdpa/segment':>12}")
    mib = 2**20
    for n in (1, 2, 4, 8):
        if n > max_images:
            break
        grid = torch.tensor(PACKED_GRIDS[:n])
        cu = cu_seqlens_from_grid(grid)
        N = int(grid.prod(-1).sum())
        q = torch.randn(N, heads, hd)
        qb = q.transpose(0, 1)[None]  # [1, H, N, hd]
        mask = block_diagonal_mask(cu)  # [N, N] bool
        calls = {"eager": lambda: attention(q, q, q, backend="eager", cu_seqlens=cu),  # builds its own mask
                 "dense": lambda: attention(qb, qb, qb, backend="sdpa", mask=mask),
                 "segment": lambda: attention(q, q, q, backend="sdpa", cu_seqlens=cu)}
        peak = {k: peak_bytes(fn) for k, fn in calls.items()}
        peak["dense"] += mask.numel()  # the mask is an input there: count it
        secs = {k: best_time(fn) for k, fn in calls.items()}
        lengths = (grid[:, 1] * grid[:, 2]).tolist()
        analytic_dense = score_bytes(lengths, heads, dense=True)
        analytic_seg = score_bytes(lengths, heads, dense=False)
        print(f"    {n:>6} {N:>5} | {peak['eager'] / mib:>6.1f} MiB {peak['dense'] / mib:>6.1f} MiB "
              f"{peak['segment'] / mib:>8.1f} MiB {'~out':>7} | {analytic_dense / mib:>10.1f} MiB "
              f"{analytic_seg / mib:>7.1f} MiB | {secs['eager'] * 1e3:>8.1f} ms {secs['dense'] * 1e3:>7.1f} ms "
              f"{secs['segment'] * 1e3:>9.1f} ms")
    print("    varlen (CUDA flash kernels) forms no N x N or segment x segment matrix: ~ the [N, H, hd] output "
          "(not measurable on a CPU).\n    A dense mask costs N² (4x per doubling of the packed length) in memory for "
          "the eager math and in time for every\n    backend (masked-out blocks are still computed); per segment, "
          "memory stays at the largest image and time grows with Σ n².")


# ---------------------------------------------------------------------------------------------
# (c) CUDA bf16 throughput and MFU
# ---------------------------------------------------------------------------------------------
def bench_cuda(peak_tflops: float | None, n_images: int = 8, side: int = 448, repeats: int = 5) -> None:
    if not torch.cuda.is_available():
        print("\n(c) CUDA bf16 throughput / MFU: skipped — no CUDA device here (torch.cuda.is_available() is False)")
        return
    name = torch.cuda.get_device_name(0)
    vision = QWEN2_VL_2B.vision
    pv1, grid1 = sample_pixels(side)
    pv = pv1.repeat(n_images, 1).cuda().to(torch.bfloat16)
    grid = grid1.repeat(n_images, 1).cuda()
    ours = VisionTransformer.random(vision, attn_backend="auto").cuda().to(torch.bfloat16)
    theirs = ref.hf_vision_model(vision, ours.state_dict(), attn_implementation="sdpa")
    flop = vision_flops(vision, grid.cpu())
    peak = peak_tflops or next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    backend = "varlen" if available_backends("cuda", torch.bfloat16)["varlen"] is None else "sdpa"
    print(f"\n(c) CUDA bf16: {name}, 2B tower, {n_images} images of {side}x{side} packed "
          f"({pv.shape[0]} patches), ours auto -> {backend}, reference sdpa")
    results = {}
    with torch.inference_mode():
        for label, fn in (("ours", lambda: ours(pv, grid)),
                          ("transformers", lambda: theirs(pv, grid_thw=grid).pooler_output)):
            fn()
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(repeats):
                fn()
            end.record()
            torch.cuda.synchronize()
            seconds = start.elapsed_time(end) / 1e3 / repeats
            results[label] = seconds
            mfu = f"{flop / seconds / (peak * 1e12):.1%}" if peak else "n/a (unknown GPU: pass --peak-tflops)"
            print(f"    {label:13s} {seconds * 1e3:8.1f} ms/forward  {n_images / seconds:8.1f} images/s  "
                  f"{flop / seconds / 1e12:7.1f} TFLOP/s  MFU {mfu}")
    print(f"    ratio ours / transformers (time): {results['ours'] / results['transformers']:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=8, help="blocks of the 2B tower to time (32 = whole tower)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--peak-tflops", type=float, default=None, help="GPU bf16 dense peak for MFU")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args(argv)
    print(f"bench_vision — torch {torch.__version__}, transformers {ref.transformers_version()}, "
          f"{torch.get_num_threads()} threads available")
    if not args.skip_speed:
        bench_speed(args.depth, args.repeats, args.threads)
    bench_memory()
    bench_cuda(args.peak_tflops)


if __name__ == "__main__":
    main()
