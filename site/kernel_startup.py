"""IPython startup file for the site build's kernels (PYTHONSTARTUP): record every widget's drawing
callback so that its states can be precomputed (attnflex_lab/viz/site_states.py). The module is
loaded from its file, so the lab package is not imported before the lesson imports it."""
import importlib.util as _util
import os as _os

_spec = _util.spec_from_file_location("_afl_site_states", _os.environ["ATTNFLEX_SITE_STATES_MODULE"])
_site_states = _util.module_from_spec(_spec)
_spec.loader.exec_module(_site_states)
_site_states.install(_os.environ["ATTNFLEX_SITE_STATES"], int(_os.environ["ATTNFLEX_SITE_MAX_STATES"]),
                     float(_os.environ.get("ATTNFLEX_SITE_MAX_SECONDS", _site_states.MAX_SECONDS)),
                     page_seconds=float(_os.environ.get("ATTNFLEX_SITE_PAGE_SECONDS", _site_states.PAGE_SECONDS)))
del _util, _os, _spec
