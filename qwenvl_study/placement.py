"""Placement beyond one device: device maps, CPU / disk offload, and a plan for a GPU set.

What transformers' ``from_pretrained(device_map="auto")`` does, for the from-scratch model, on the
same engine: accelerate's ``infer_auto_device_map`` (GPUs in order, then CPU, then disk, each within
its ``max_memory``; a ViT block or a decoder layer is never split, so its residual stream stays on
one device) and ``dispatch_model`` (hooks that move each module's inputs to its device and, for an
offloaded module, bring its weights in from CPU memory or ``offload_folder`` just for its forward).
``checkpoint.load_pretrained(path, device_map=...)`` loads through here; ``plan_device_map`` computes
where the 2B / 7B / 72B models would go on a set of GPUs, on the meta device (no memory, no GPU),
printed by ``qwenvl-study plan``.

Reference: accelerate 1.x ``big_modeling.dispatch_model`` / ``utils.modeling.infer_auto_device_map``
and transformers' ``_no_split_modules`` for Qwen2-VL (``Qwen2VLDecoderLayer``, ``Qwen2VLVisionBlock``).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

__all__ = ["NO_SPLIT_MODULES", "infer_device_map", "load_dispatched", "plan_device_map", "DevicePlan",
           "parse_gpus", "GPU_SETS"]

NO_SPLIT_MODULES = ["VisionBlock", "Qwen2DecoderLayer"]  # a block's weights stay on one device (its residual)
GPU_SETS = ("1x24GB", "2x24GB", "1x80GB", "4x80GB", "8x80GB")  # common sets, for `qwenvl-study plan --gpus`


def infer_device_map(model, max_memory: dict | None = None, dtype: torch.dtype | None = None) -> dict:
    """Module name → device (``0``, ``1``, …, ``"cpu"``, ``"disk"``) for a model (on the meta device is fine).

    As transformers' ``device_map="auto"``: with several GPUs the memory is first balanced across them
    (accelerate's ``get_balanced_memory``), then ``infer_auto_device_map`` fills GPUs in order, then the
    CPU, then disk, never splitting a ViT block or decoder layer. With tied embeddings the embedding
    matrix is also the head, used outside its own module, so it stays on the execution device.
    """
    from accelerate import infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    gpus = [k for k in (max_memory or {}) if isinstance(k, int)]
    if len(gpus) > 1:
        max_memory = get_balanced_memory(model, max_memory=max_memory, no_split_module_classes=NO_SPLIT_MODULES,
                                         dtype=dtype)
    device_map = dict(infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=NO_SPLIT_MODULES,
                                            dtype=dtype))
    return _pin_tied_embedding(model, device_map)


def _execution_device(device_map: dict):
    devices = [d for d in device_map.values() if d not in ("cpu", "disk")]
    return devices[0] if devices else "cpu"


def _pin_tied_embedding(model, device_map: dict) -> dict:
    if not model.config.tie_word_embeddings:
        return device_map
    main, name = _execution_device(device_map), "model.embed_tokens"
    offloaded = ("disk",) if main == "cpu" else ("cpu", "disk")
    device_map = dict(device_map)
    while True:
        owner = _owner(device_map, name)
        if owner is None or device_map[owner] not in offloaded:
            return device_map
        if owner == name:
            device_map[name] = main
            return device_map
        # a parent is offloaded as a whole: give its children the same device, then look again
        parent = model.get_submodule(owner) if owner else model
        device = device_map.pop(owner)
        for child, _ in parent.named_children():
            device_map[f"{owner}.{child}" if owner else child] = device


def _owner(device_map: dict, name: str) -> str | None:
    """The most specific device_map entry covering tensor / module ``name``."""
    return max((k for k in device_map if k == "" or name == k or name.startswith(k + ".")), key=len, default=None)


def load_dispatched(model, directory: Path, found: dict, expected: dict, tied_head: bool, dtype,
                     device_map, max_memory, offload_folder):
    """Place each tensor where ``device_map`` says (disk: into ``offload_folder``), then attach the hooks."""
    from accelerate import dispatch_model
    from accelerate.utils import offload_weight, save_offload_index, set_module_tensor_to_device
    from safetensors import safe_open

    if device_map == "auto":
        device_map = infer_device_map(model, max_memory=max_memory, dtype=dtype)
    elif isinstance(device_map, dict):
        device_map = _pin_tied_embedding(model, dict(device_map))
    else:
        raise ValueError(f"device_map must be None, 'auto' or a dict of module name -> device, got {device_map!r}")

    def place(name: str):
        owner = _owner(device_map, name)
        if owner is None:
            raise ValueError(f"device_map does not place {name} (give a device for it or one of its parents)")
        return device_map[owner]

    disk = {n for n in expected if place(n) == "disk"}
    if disk and offload_folder is None:
        raise ValueError(f"device_map puts {len(disk)} tensors on disk (e.g. {sorted(disk)[0]}): pass offload_folder=")
    if disk:
        Path(offload_folder).mkdir(parents=True, exist_ok=True)
    index: dict = {}
    by_file: dict[Path, list[str]] = {}
    for name in expected:
        by_file.setdefault(found[name][0], []).append(name)
    for file, names in by_file.items():
        with safe_open(str(file), framework="pt", device="cpu") as f:
            for name in names:
                tensor = f.get_tensor(found[name][1])
                if dtype is not None and tensor.is_floating_point():
                    tensor = tensor.to(dtype)
                if name in disk:
                    index = offload_weight(tensor, name, str(offload_folder), index=index)
                else:  # a GPU, or the CPU (executing there, or holding an offloaded module for a GPU)
                    set_module_tensor_to_device(model, name, place(name), value=tensor)
    if tied_head:
        with safe_open(str(found["lm_head.weight"][0]), framework="pt", device="cpu") as f:
            head = f.get_tensor(found["lm_head.weight"][1])
        embed = model.model.embed_tokens.weight
        if not torch.equal(head.to(device=embed.device, dtype=embed.dtype), embed):
            raise ValueError(f"{directory}: config ties lm_head to the embedding, but lm_head.weight differs from "
                             f"model.embed_tokens.weight")
    if disk:
        save_offload_index(index, str(offload_folder))
    model.eval()
    dispatch_model(model, device_map, offload_dir=str(offload_folder) if disk else None, force_hooks=True)
    model.hf_device_map = device_map
    return model


# -- a plan for a set of GPUs, on the meta device ------------------------------------------------
@dataclass
class DevicePlan:
    name: str
    dtype: torch.dtype
    total_bytes: int
    capacity: dict  # device -> usable bytes given to the planner
    device_map: dict  # module name -> device
    bytes_per_device: dict  # device -> bytes of weights placed there
    modules_per_device: dict  # device -> compact module listing ("model.layers.0-17")

    def format(self) -> str:
        gib = 2**30
        lines = [f"{self.name}, {str(self.dtype).replace('torch.', '')}: {self.total_bytes / 1e9:.1f} GB of weights "
                 f"({self.total_bytes / gib:.1f} GiB)"]
        for device in self.capacity:
            placed = self.bytes_per_device.get(device, 0)
            label = f"GPU {device}" if isinstance(device, int) else device
            cap = "" if device == "disk" else f" of {self.capacity[device] / gib:.1f} GiB"
            lines.append(f"  {label:>6}: {placed / gib:7.2f} GiB{cap}  {self.modules_per_device.get(device, '-')}")
        lines.append("  (weights only; the KV cache and activations need the headroom left on each GPU)")
        return "\n".join(lines)


def parse_gpus(spec: str) -> list[int]:
    """``"4x80GB"`` → four capacities in bytes (GB read as GiB, as GPU memory is sold); ``"24GB,80GB"`` too."""
    capacities = []
    for part in spec.replace(" ", "").split(","):
        match = re.fullmatch(r"(?:(\d+)x)?(\d+(?:\.\d+)?)(GB|GiB|G)?", part, flags=re.IGNORECASE)
        if not match or not part:
            raise ValueError(f"--gpus: cannot read {part!r}; write COUNTxSIZE like 4x80GB (or sizes: 24GB,80GB)")
        count, size = int(match.group(1) or 1), float(match.group(2))
        if not 1 <= count <= 64 or not 0 < size <= 4096:
            raise ValueError(f"--gpus: {part!r} is out of range (1-64 GPUs of 0-4096 GB)")
        capacities += [int(size * 2**30)] * count
    return capacities


def _compact(names: list[str]) -> str:
    """``model.layers.0 … model.layers.17`` → ``model.layers.0-17`` (runs of consecutive indices)."""
    out: list[str] = []
    run: tuple[str, int, int] | None = None
    for name in names:
        match = re.fullmatch(r"(.*)\.(\d+)", name)
        if match and run and run[0] == match.group(1) and int(match.group(2)) == run[2] + 1:
            run = (run[0], run[1], int(match.group(2)))
            continue
        if run:
            out.append(f"{run[0]}.{run[1]}" + (f"-{run[2]}" if run[2] != run[1] else ""))
            run = None
        if match:
            run = (match.group(1), int(match.group(2)), int(match.group(2)))
        else:
            out.append(name)
    if run:
        out.append(f"{run[0]}.{run[1]}" + (f"-{run[2]}" if run[2] != run[1] else ""))
    return ", ".join(out)


@functools.lru_cache(maxsize=4)
def _meta_model(config):
    """The model on the meta device (shapes, no memory); cached: the 72B takes seconds to build."""
    from .model import Qwen2VL

    with torch.device("meta"):
        return Qwen2VL(config)


def plan_device_map(config, gpus: Sequence[int], *, dtype: torch.dtype = torch.bfloat16, cpu_bytes: int = 0,
                    usable: float = 0.9) -> DevicePlan:
    """Where each module of ``config``'s model goes on GPUs of ``gpus`` bytes (``usable`` of each given to
    weights), then ``cpu_bytes`` of CPU memory, then disk — the model built on the meta device."""
    from accelerate.utils import compute_module_sizes

    if not 0 < usable <= 1:
        raise ValueError(f"usable must be in (0, 1], got {usable}")
    model = _meta_model(config)
    capacity = {i: int(b * usable) for i, b in enumerate(gpus)}
    capacity.update({"cpu": int(cpu_bytes), "disk": 0})
    quiet = logging.getLogger("accelerate.utils.modeling")
    level, quiet.level = quiet.level, logging.ERROR  # "Device 0 is not available": planning, not running
    try:
        device_map = infer_device_map(model, max_memory={k: v for k, v in capacity.items() if k != "disk"},
                                      dtype=dtype)
    finally:
        quiet.setLevel(level)
    sizes = compute_module_sizes(model, dtype=dtype)
    per_device: dict = {}
    names: dict = {}
    for name, device in device_map.items():
        per_device[device] = per_device.get(device, 0) + sizes[name]
        names.setdefault(device, []).append(name)
    return DevicePlan(config.name, dtype, sizes[""], capacity, device_map, per_device,
                      {d: _compact(n) if n != [""] else "the whole model" for d, n in names.items()})
