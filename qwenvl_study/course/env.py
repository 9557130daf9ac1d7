"""The notebook preamble: versions, device, and what this run will skip and why.

Every lesson starts with ``preamble()`` so a reader knows what ran where: the numbers a notebook
prints depend on the versions and the device, and real-weight / GPU cells say up front whether
they will run.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

__all__ = ["WEIGHTS_ENV", "DTYPE_ENV", "preamble", "find_weights", "measure", "RunPlan", "plan_real_run"]

WEIGHTS_ENV = "QWEN2VL_2B_PATH"  # a local directory holding Qwen2-VL-2B-Instruct
DTYPE_ENV = "QWEN2VL_DTYPE"  # "bf16" or "fp32": overrides the dtype notebook 06 picks on a CPU


def find_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The Qwen2-VL-2B-Instruct directory from the argument or ``$QWEN2VL_2B_PATH``, if it exists."""
    candidate = path or os.environ.get(WEIGHTS_ENV)
    if candidate and (Path(candidate) / "config.json").is_file():
        return Path(candidate)
    return None


def preamble(*, needs_cuda: bool = False, needs_weights: bool = False, dpi: int = 110) -> dict[str, object]:
    """Print versions and device; say what will be skipped. Returns the facts as a dict."""
    import warnings

    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
    import torch
    import transformers

    try:
        import matplotlib

        matplotlib.rcParams["figure.dpi"] = dpi  # the course standard: figures at >= 110 dpi
    except ImportError:  # pragma: no cover
        pass
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    weights = find_weights()
    facts = {"python": platform.python_version(), "torch": torch.__version__,
             "transformers": transformers.__version__, "device": device, "weights": weights}
    print(f"python {facts['python']} | torch {facts['torch']} | transformers {facts['transformers']} | {device}")
    skipped = []
    if needs_cuda and not cuda:
        skipped.append("CUDA cells (no CUDA device here): they print what they skip and run on CPU instead")
    if needs_weights and weights is None:
        skipped.append(f"real-weight cells (set ${WEIGHTS_ENV} to a local Qwen2-VL-2B-Instruct directory): "
                       f"a random-weight model at a real config stands in")
    for line in skipped:
        print("skipping:", line)
    if not skipped:
        print("nothing skipped")
    facts["skipped"] = skipped
    sys.stdout.flush()
    return facts


def median_time(fn, repeat: int = 5) -> float:
    """Median wall time in seconds of ``repeat`` calls of ``fn`` after one warm-up call (imports, caches)."""
    import statistics
    import time

    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(fn, device=None):
    """Run ``fn()`` once: ``(result, seconds, peak)``. On CUDA the time is synchronised and ``peak`` is
    the allocator's peak in GiB during the call; on CPU torch keeps no peak counter, so ``peak`` is None."""
    import time

    import torch

    cuda = device is not None and torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    return result, seconds, peak


class RunPlan:
    """What a real-weight run will take, printed before it starts: device, dtype, memory, time."""

    def __init__(self, device, dtype, weight_bytes: int, memory_bytes: int, seconds: float, reason: str) -> None:
        self.device, self.dtype, self.weight_bytes = device, dtype, weight_bytes
        self.memory_bytes, self.seconds, self.reason = memory_bytes, seconds, reason

    def __str__(self) -> str:
        return (f"{self.device.type}, {str(self.dtype).replace('torch.', '')} ({self.reason}): "
                f"{self.weight_bytes / 2**30:.2f} GiB of weights per model, about {self.memory_bytes / 2**30:.1f} GiB "
                f"for both models, expected ~{self.seconds:.0f} s for the comparisons below")


def _available_memory() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 0


def plan_real_run(config, *, models: int = 2, new_tokens: int = 72, prompt_tokens: int = 1100) -> RunPlan:
    """Device and dtype for a real-weight comparison, and what it will cost (an estimate, said as one).

    CUDA: bf16 (what the published checkpoint holds). CPU: fp32 when ``models`` copies fit in half the
    free memory (exact parity, and faster there than bf16's CPU kernels), else bf16; ``$QWEN2VL_DTYPE``
    (``bf16`` / ``fp32``) overrides. Time: each new token streams every weight once (bytes / the
    machine's measured copy bandwidth) and the prompts cost 2 FLOP per parameter per token (at the
    measured matmul rate), for every model; loading reads the weights once per model.
    """
    import time

    import torch

    from ..config import count_parameters

    params = count_parameters(config).total
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    forced = os.environ.get(DTYPE_ENV, "").lower()
    if forced in ("bf16", "fp32"):
        dtype, reason = (torch.bfloat16 if forced == "bf16" else torch.float32), f"${DTYPE_ENV}={forced}"
    elif cuda:
        dtype, reason = torch.bfloat16, "CUDA: the checkpoint's bf16"
    elif models * params * 4 * 1.2 <= 0.5 * _available_memory():
        dtype, reason = torch.float32, "CPU with room for fp32: exact parity"
    else:
        dtype, reason = torch.bfloat16, "CPU memory too small for fp32"
    weight_bytes = params * torch.finfo(dtype).bits // 8
    memory = int(models * weight_bytes * 1.1 + 2**30)  # weights + activations, KV cache, pixels
    x = torch.randn(1 << 22, device=device)  # 16 MiB: copy bandwidth
    a = torch.randn(512, 512, device=device)
    best_copy, best_mm = float("inf"), float("inf")
    for _ in range(3):
        start = time.perf_counter()
        x.clone()
        if cuda:
            torch.cuda.synchronize()
        best_copy = min(best_copy, time.perf_counter() - start)
        start = time.perf_counter()
        a @ a
        if cuda:
            torch.cuda.synchronize()
        best_mm = min(best_mm, time.perf_counter() - start)
    bandwidth = 2 * x.numel() * 4 / best_copy  # bytes read + written per second
    flops = 2 * 512**3 / best_mm
    if not cuda and dtype == torch.bfloat16:
        flops /= 4  # bf16 matmuls on a CPU without bf16 units run well below fp32's rate
    seconds = models * (new_tokens * weight_bytes / bandwidth + 2 * params * prompt_tokens / flops
                        + weight_bytes / 1e9)  # decoding + prompts + reading the weights at ~1 GB/s
    return RunPlan(device, dtype, weight_bytes, memory, seconds, reason)
