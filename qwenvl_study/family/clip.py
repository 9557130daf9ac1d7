"""CLIP / OpenCLIP: the symmetric InfoNCE loss with a learnable temperature, and a toy training.

Paper: "Learning Transferable Visual Models From Natural Language Supervision" (CLIP, Radford et
al., 2021), §2.3 "Selecting an Efficient Pre-Training Method" and Figure 3 (numpy-like
pseudocode): L2-normalise both embeddings, logits = I_e · T_eᵀ · exp(t), cross-entropy over rows
(image → text) and over columns (text → image), averaged. §2.5: the temperature is learned as a
log-parameterised multiplicative scalar, initialised to the equivalent of 0.07 (so exp(t) = 1/0.07
≈ 14.3) and clipped so the logits are never scaled by more than 100.

References: transformers' ``CLIPModel`` loss (transformers/models/clip/modeling_clip.py:
``image_text_contrastive_loss`` over ``logits_per_text``, ``logit_scale_init_value=2.6592``) and,
where it can be imported, open_clip's ``ClipLoss`` (open_clip/loss.py; its training loop clamps
``logit_scale`` to [0, ln 100]). See ``reference.hf_clip_loss`` / ``reference.open_clip_loss``.

``clip_loss(image_features, text_features, logit_scale)`` L2-normalises the features itself;
``logit_scale`` is the multiplier (already exponentiated), as open_clip's ``ClipLoss`` takes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LOGIT_SCALE_INIT",
    "LOGIT_SCALE_MAX",
    "clip_logits",
    "clip_loss",
    "LogitScale",
    "ToyClipConfig",
    "ToyClip",
    "ToyClipHistory",
    "make_paired_data",
    "train_toy_clip",
]

LOGIT_SCALE_INIT = math.log(1 / 0.07)  # 2.6593: exp(t) = 1/0.07 ≈ 14.29 at initialisation
LOGIT_SCALE_MAX = 100.0  # the multiplier is clipped at 100 (t <= ln 100)


def _scale_tensor(logit_scale: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    scale = torch.as_tensor(logit_scale, dtype=like.dtype, device=like.device)
    if scale.numel() != 1 or not torch.isfinite(scale).all() or scale.item() <= 0:
        raise ValueError(f"logit_scale must be one positive finite number (the multiplier exp(t)), got {logit_scale!r}")
    return scale.reshape(())


def clip_logits(image_features: torch.Tensor, text_features: torch.Tensor,
                logit_scale: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits_per_image [N, N], logits_per_text [N, N]) = scale · cosine similarities."""
    if (image_features.dim() != 2 or text_features.dim() != 2 or image_features.shape != text_features.shape
            or image_features.shape[0] < 1):
        raise ValueError(f"image and text features must both be [N, D] with the same shape and N >= 1 pairs, got "
                         f"{tuple(image_features.shape)} and {tuple(text_features.shape)}")
    scale = _scale_tensor(logit_scale, image_features)
    img = F.normalize(image_features, dim=-1)  # [N, D], unit rows
    txt = F.normalize(text_features, dim=-1)  # [N, D], unit rows
    logits_per_image = scale * img @ txt.T  # [N, D] @ [D, N] -> [N, N]: row i = image i vs every text
    return logits_per_image, logits_per_image.T  # logits_per_text = its transpose


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor,
              logit_scale: float | torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: ½ [CE(rows: image → its text) + CE(columns: text → its image)].

    With s = logit_scale and S_ij the cosine of image i and text j:
    L = -1/(2N) Σ_i [ log softmax_j(s·S_ij)[i] + log softmax_j(s·S_ji)[i] ].
    """
    logits_per_image, logits_per_text = clip_logits(image_features, text_features, logit_scale)
    labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)  # pair i is on the diagonal
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


class LogitScale(nn.Module):
    """The learnable temperature, log-parameterised: ``forward()`` returns the multiplier exp(t)."""

    def __init__(self, init: float = LOGIT_SCALE_INIT):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self) -> torch.Tensor:
        return self.logit_scale.exp()

    @torch.no_grad()
    def clamp_(self, max_scale: float = LOGIT_SCALE_MAX) -> None:
        """Clip t to [0, ln max_scale] after an optimiser step (open_clip's training loop)."""
        self.logit_scale.clamp_(0, math.log(max_scale))


# ---------------------------------------------------------------------------------------------
# A toy CLIP: synthetic paired data, two small encoders, a learned temperature
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToyClipConfig:
    latent_dim: int = 8  # what an image and its caption share
    image_dim: int = 32  # "pixels": a nonlinear view of the latent
    text_dim: int = 24  # "tokens": another view
    embed_dim: int = 16  # the joint embedding space
    hidden_dim: int = 64
    noise: float = 0.1
    num_pairs: int = 1024  # training set
    eval_pairs: int = 64  # held-out pairs for the similarity matrix and retrieval accuracy


def make_paired_data(n: int, config: ToyClipConfig = ToyClipConfig(), *, seed: int = 0,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n (image, text) pairs that share a latent z: image = tanh(z A) + noise, text = z B + noise.

    The two views use fixed random maps A, B (drawn from ``seed``); ``generator`` draws the latents
    and noise (a fresh one from ``seed + 1`` when not given).
    """
    maps = torch.Generator().manual_seed(seed)
    a = torch.randn(config.latent_dim, config.image_dim, generator=maps)  # [k, 32]
    b = torch.randn(config.latent_dim, config.text_dim, generator=maps)  # [k, 24]
    g = generator if generator is not None else torch.Generator().manual_seed(seed + 1)
    z = torch.randn(n, config.latent_dim, generator=g)  # [n, k]
    images = torch.tanh(z @ a) + config.noise * torch.randn(n, config.image_dim, generator=g)  # [n, 32]
    texts = z @ b / math.sqrt(config.latent_dim) + config.noise * torch.randn(n, config.text_dim, generator=g)
    return images, texts  # [n, 32], [n, 24]


class ToyClip(nn.Module):
    """Two MLP encoders into a shared space and a learnable logit scale."""

    def __init__(self, config: ToyClipConfig = ToyClipConfig(), *, logit_scale_init: float = LOGIT_SCALE_INIT):
        super().__init__()
        self.image_encoder = nn.Sequential(nn.Linear(config.image_dim, config.hidden_dim), nn.GELU(),
                                           nn.Linear(config.hidden_dim, config.embed_dim))
        self.text_encoder = nn.Sequential(nn.Linear(config.text_dim, config.hidden_dim), nn.GELU(),
                                          nn.Linear(config.hidden_dim, config.embed_dim))
        self.scale = LogitScale(logit_scale_init)

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        img = self.image_encoder(images)  # [N, 32] -> [N, 16]
        txt = self.text_encoder(texts)  # [N, 24] -> [N, 16]
        return clip_loss(img, txt, self.scale())

    @torch.no_grad()
    def similarity(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """Cosine similarities [N, N] (image i, text j), no temperature."""
        logits, _ = clip_logits(self.image_encoder(images), self.text_encoder(texts), 1.0)
        return logits


@dataclass
class ToyClipHistory:
    loss: list[float] = field(default_factory=list)  # training loss per step
    logit_scale: list[float] = field(default_factory=list)  # exp(t) per step
    eval_loss_before: float = 0.0
    eval_loss_after: float = 0.0
    sim_before: np.ndarray | None = None  # [eval_pairs, eval_pairs] cosine similarities
    sim_after: np.ndarray | None = None
    accuracy_before: float = 0.0  # image → text top-1 retrieval on the held-out pairs
    accuracy_after: float = 0.0


def _accuracy(sim: torch.Tensor) -> float:
    return (sim.argmax(dim=1) == torch.arange(sim.shape[0])).float().mean().item()


def train_toy_clip(steps: int = 300, *, seed: int = 0, batch_size: int = 64, lr: float = 3e-3,
                   learn_temperature: bool = True, logit_scale_init: float = LOGIT_SCALE_INIT,
                   config: ToyClipConfig = ToyClipConfig()) -> ToyClipHistory:
    """Train :class:`ToyClip` with ``clip_loss`` and Adam; deterministic for a given seed.

    Each step draws ``batch_size`` pairs from the training set; the logit scale is learned (and
    clamped at 100) unless ``learn_temperature=False``. Runs in about a second on a CPU, on one
    thread: these matrices are tiny, so more threads only add synchronisation (and one thread
    makes the numbers independent of the machine's core count).
    """
    if steps < 1 or not 2 <= batch_size <= config.num_pairs:
        raise ValueError(f"steps must be >= 1 and 2 <= batch_size <= num_pairs={config.num_pairs}, got {steps} "
                         f"and {batch_size}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(steps, seed, batch_size, lr, learn_temperature, logit_scale_init, config)
    finally:
        torch.set_num_threads(threads)


def _train(steps: int, seed: int, batch_size: int, lr: float, learn_temperature: bool, logit_scale_init: float,
           config: ToyClipConfig) -> ToyClipHistory:
    g = torch.Generator().manual_seed(seed + 1)
    images, texts = make_paired_data(config.num_pairs + config.eval_pairs, config, seed=seed, generator=g)
    train_i, eval_i = images[: config.num_pairs], images[config.num_pairs:]  # [1024, 32], [64, 32]
    train_t, eval_t = texts[: config.num_pairs], texts[config.num_pairs:]  # [1024, 24], [64, 24]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ToyClip(config, logit_scale_init=logit_scale_init)
    model.scale.logit_scale.requires_grad_(learn_temperature)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)

    hist = ToyClipHistory()
    with torch.no_grad():
        sim = model.similarity(eval_i, eval_t)
        hist.sim_before, hist.accuracy_before = sim.numpy(), _accuracy(sim)
        hist.eval_loss_before = model(eval_i, eval_t).item()
    for _ in range(steps):
        idx = torch.randperm(config.num_pairs, generator=g)[:batch_size]  # a batch of pairs
        loss = model(train_i[idx], train_t[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.scale.clamp_()
        hist.loss.append(loss.item())
        hist.logit_scale.append(model.scale().item())
    with torch.no_grad():
        sim = model.similarity(eval_i, eval_t)
        hist.sim_after, hist.accuracy_after = sim.numpy(), _accuracy(sim)
        hist.eval_loss_after = model(eval_i, eval_t).item()
    return hist
