"""CLIP's symmetric InfoNCE: a hand-derived example, transformers' CLIPModel loss, open_clip's
ClipLoss (when it can be imported), the temperature, and the toy training."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from qwenvl_study import clip_loss
from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.family.clip import LOGIT_SCALE_INIT, LOGIT_SCALE_MAX, LogitScale, clip_logits, train_toy_clip


@pytest.mark.parametrize("s", [1.0, 2.0, 1 / 0.07])
def test_clip_loss_equals_hand_derivation(s):
    """Two pairs. Images i1 = (1, 0), i2 = (0, 1); texts t1 = (1, 0), t2 = (3, 4) → normalised (0.6, 0.8).
    Cosines S = [[i1·t1, i1·t2], [i2·t1, i2·t2]] = [[1, 0.6], [0, 0.8]], logits = s·S.

    Image → text (rows, target = diagonal), with -log softmax(a, b)[0] = log(1 + e^(b - a)):
      row 1: log(1 + e^(s·(0.6 - 1)))  = log(1 + e^(-0.4 s))
      row 2: log(1 + e^(s·(0 - 0.8)))  = log(1 + e^(-0.8 s))
    Text → image (columns): column 1 = (1, 0) → log(1 + e^(-s)); column 2 = (0.6, 0.8) → log(1 + e^(-0.2 s)).
    Loss = ½ [½ (row1 + row2) + ½ (col1 + col2)].
    At s = 1: ½ [½ (0.51302 + 0.37110) + ½ (0.31326 + 0.59814)] = ½ (0.44206 + 0.45570) = 0.44888."""
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    sp = lambda z: math.log1p(math.exp(z))  # noqa: E731  log(1 + e^z)
    expected = 0.5 * (0.5 * (sp(-0.4 * s) + sp(-0.8 * s)) + 0.5 * (sp(-s) + sp(-0.2 * s)))
    assert abs(clip_loss(img, txt, s).item() - expected) <= 1e-6
    if s == 1.0:
        assert abs(expected - 0.44888) <= 1e-5  # the number worked out above


@given(n=st.integers(2, 12), d=st.integers(2, 16), scale=st.floats(0.5, 100.0), seed=st.integers(0, 2**16))
def test_clip_loss_equals_transformers_clipmodel_loss(n, d, scale, seed):
    g = torch.Generator().manual_seed(seed)
    img, txt = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    check = checks.clip_loss(img, txt, scale)
    # 1e-5, relative once the loss exceeds 1: at scale 66 a loss of 61.9 has an fp32 spacing of 3.8e-6, and the
    # two implementations differ by 3 of them (1.1e-5, found by hypothesis: n=4, d=2, seed=4)
    assert check.max_abs_error <= 1e-5 * max(1.0, abs(check.reference))


def test_clip_loss_equals_open_clip_clip_loss():
    """open_clip's ClipLoss takes normalised features and the multiplier; it is compared where it can
    be imported (not here: open_clip_torch needs torchvision, which does not work with this torch)."""
    try:
        loss = ref.open_clip_loss()
    except ImportError as err:
        pytest.skip(str(err))
    g = torch.Generator().manual_seed(0)
    for n, scale in ((8, 1 / 0.07), (32, 100.0), (3, 1.0)):
        img, txt = torch.randn(n, 16, generator=g), torch.randn(n, 16, generator=g)
        theirs = loss(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), torch.tensor(scale))
        assert abs(clip_loss(img, txt, scale).item() - theirs.item()) <= 1e-5


def test_logits_are_symmetric_and_features_are_normalised():
    img, txt = torch.randn(5, 7), torch.randn(5, 7)
    per_image, per_text = clip_logits(img, txt, 3.0)
    assert torch.equal(per_image.T, per_text)
    assert per_image.abs().max().item() <= 3.0 + 1e-5  # scale x cosine
    assert abs(clip_loss(10 * img, 0.1 * txt, 3.0).item() - clip_loss(img, txt, 3.0).item()) <= 1e-5


def test_perfect_pairs_and_the_temperature():
    """Orthonormal pairs: the loss is log(1 + (N-1) e^(-s)) — large s (low temperature) → 0;
    at s = 1 it can never get below log(1 + (N-1)/e), the reason the temperature is learned."""
    eye = torch.eye(4)
    for s in (1.0, 1 / 0.07, 100.0):
        assert abs(clip_loss(eye, eye, s).item() - math.log(1 + 3 * math.exp(-s))) <= 1e-6
    assert clip_loss(eye, eye, 100.0).item() < 1e-6


def test_logit_scale_init_and_clamp():
    scale = LogitScale()
    assert abs(scale().item() - 1 / 0.07) <= 1e-4 and abs(LOGIT_SCALE_INIT - 2.6592) <= 1e-4
    with torch.no_grad():
        scale.logit_scale.fill_(10.0)
    scale.clamp_()
    assert abs(scale().item() - LOGIT_SCALE_MAX) <= 1e-3  # clipped at 100


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        clip_loss(torch.randn(3, 4), torch.randn(2, 4), 1.0)
    with pytest.raises(ValueError, match="positive"):
        clip_loss(torch.randn(3, 4), torch.randn(3, 4), 0.0)
    with pytest.raises(ValueError, match="N >= 1 pairs"):
        clip_loss(torch.zeros(0, 4), torch.zeros(0, 4), 1.0)
    with pytest.raises(ValueError, match=r"2 <= batch_size <= num_pairs=1024, got 1 and 5000"):
        train_toy_clip(steps=1, batch_size=5000)


def test_toy_training_converges_deterministically():
    """A few hundred Adam steps on synthetic pairs: the loss falls far below chance (ln 64 for a
    batch of 64) and the run is reproducible bit for bit."""
    a = train_toy_clip(steps=150, seed=0)
    b = train_toy_clip(steps=150, seed=0)
    assert a.loss == b.loss and a.logit_scale == b.logit_scale  # deterministic
    initial, final = sum(a.loss[:5]) / 5, sum(a.loss[-10:]) / 10
    assert final < 0.25 * initial and final < math.log(64) / 4
    assert a.eval_loss_after < 0.25 * a.eval_loss_before
    assert a.accuracy_after >= 0.9 > a.accuracy_before
    gap = lambda sim: sim.diagonal().mean() - (sim.sum() - sim.trace()) / (sim.size - len(sim))  # noqa: E731
    assert gap(a.sim_after) > 0.5 and gap(a.sim_after) > gap(a.sim_before) + 0.3  # the diagonal lights up
    assert max(a.logit_scale) <= LOGIT_SCALE_MAX + 1e-3
