"""Attention visualizers: matplotlib (static), plotly (hover) and ipywidgets (explorers).

Every function takes ``ax=None`` (or returns a Figure), never calls ``plt.show()`` and never changes
global matplotlib state. One private data-prep step (``_prep``) checks and shapes the weights for all.
"""
