"""IPython startup file for a dry run's kernels (PYTHONSTARTUP; see scripts/dry_run.py): every later
cell runs with soft asserts (scripts/dry_run_asserts.py), which record to ATTNFLEX_DRY_RUN_LOG."""
import importlib.util as _util
import os as _os

_here = _os.path.dirname(_os.environ["PYTHONSTARTUP"])
_spec = _util.spec_from_file_location("_afl_dry_run_asserts", _os.path.join(_here, "dry_run_asserts.py"))
_asserts = _util.module_from_spec(_spec)
_spec.loader.exec_module(_asserts)
_asserts.install(get_ipython(), _os.environ["ATTNFLEX_DRY_RUN_LOG"])  # noqa: F821 (IPython's global)
del _util, _os, _here, _spec, _asserts
