"""Seeded data: synthetic tasks with known alignment and bundled real data (nothing is downloaded)."""

from . import dates  # noqa: E402,F401,I001
from . import digits  # noqa: E402,F401,I001
from . import algorithmic  # noqa: E402,F401,I001
from . import text  # noqa: E402,F401,I001
