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
