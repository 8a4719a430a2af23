"""One torch thread for a whole test module, its module-scoped fixtures included.

The serving and command-line tests run small models: on one thread they are fastest, and under
``make test``'s two workers on two cores a second thread per worker only spins (measured: the lm
codec's 32-token answer took 3.3 s of CPU on the default threads of a loaded machine, 0.02 s on
one). conftest's ``one_torch_thread`` is function-scoped, so it comes after module fixtures that
train; this one is used as ``from .single_thread import one_thread_per_module`` (autouse).
"""

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_thread_per_module():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
