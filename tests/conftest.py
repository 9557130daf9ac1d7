"""Shared test set-up: deterministic hypothesis profile, one torch thread per xdist worker."""

import os

import matplotlib

matplotlib.use("Agg")  # tests draw figures without a display

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings

# "ci" (default): deterministic examples, no per-example deadline (2 shared CPU cores).
# HYPOTHESIS_PROFILE=dev explores more, randomly.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # two workers on two cores: no oversubscription


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One torch thread (opt-in): on a busy 2-core machine OpenMP synchronisation costs more than a
    second thread saves — for small tensors always, and for the 2B tower's GEMMs under load too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
