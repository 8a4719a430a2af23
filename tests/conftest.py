import os

os.environ.setdefault("MPLBACKEND", "Agg")  # tests never open windows

import matplotlib  # noqa: E402
import pytest  # noqa: E402

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test starts and ends with no open matplotlib figures."""
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


@pytest.fixture
def one_torch_thread():
    """Small models train fastest on one thread, above all on a shared machine (the learning tests)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
