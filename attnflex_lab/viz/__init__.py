"""Attention visualizers: matplotlib (static), plotly (hover) and ipywidgets (explorers).

Every function takes ``ax=None`` (or returns a Figure), never calls ``plt.show()`` and never
changes global matplotlib state. One private data-prep step (``_prep``) checks and shapes the
weights for all. Each line below re-exports one viz module's public names.
"""

from .alignment import alignment_snapshots, plot_alignment  # noqa: F401
from .curves import history_figure, plot_curves, plot_history  # noqa: F401
from .erase import erase_explorer  # noqa: F401
from .explore import explore_attention, explorer_weights  # noqa: F401
from .heads import head_explorer, head_grid_figure, head_summary, plot_head_grid  # noqa: F401
from .heatmap import plot_attention, plot_heads  # noqa: F401
from .images import (  # noqa: F401
    attention_image_slider,
    plot_attention_gallery,
    plot_attention_on_image,
    plot_confusion_matrix,
)
from .plotly_figs import attention_figure  # noqa: F401
from .recipes import plot_recipe_curves, plot_reliability_diagram, recipe_curve_explorer  # noqa: F401
from .rollout import attention_rollout, cls_patch_map, plot_rollout_overlay  # noqa: F401
