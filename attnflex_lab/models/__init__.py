"""The models the lessons train."""

from . import classifier  # noqa: E402,F401,I001
from . import seq2seq  # noqa: E402,F401,I001
from . import transformer  # noqa: E402,F401,I001
from . import vit  # noqa: E402,F401,I001
