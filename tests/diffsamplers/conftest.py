"""Shared setup for the sampler-library tests (``diffsamplers``); their closed-form Gaussian helpers live next to
them in ``gaussian_helpers.py`` (imported as ``from gaussian_helpers import ...``: pytest puts this folder on the
path, as for every test folder without ``__init__.py``)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    torch.set_num_threads(1)
    yield
