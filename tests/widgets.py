"""Helpers for tests that drive ipywidgets trees without a browser."""


def find_widget(widget, description):
    """Depth-first search of a widget tree for the control with this description (None if absent)."""
    if getattr(widget, "description", None) == description:
        return widget
    for child in getattr(widget, "children", ()):
        found = find_widget(child, description)
        if found is not None:
            return found
    return None
