# attnflex-lab: two commands.
#   make lab    set up .venv (first time only), then open JupyterLab on notebooks/
#   make test   set up the same way, then run every test (unit, notebooks, learning, browser)
# pytest runs the notebooks in the smoke profile whatever ATTNFLEX_PROFILE says (see conftest.py);
#   make test-notebooks PROFILE=cpu   runs just the notebooks, in the profile you name.
#   make test-compat  every notebook in smoke in .venv-compat: Colab's ipywidgets 7.7, the lab
#                     installed from a path as the Colab cell installs it from the URL (README)
#   make site          every lesson executed (cpu profile; PROFILE=smoke for seconds) as a static site,
#                      its widgets precomputed (<= 50 states each) and moved by a script, no kernel
#   make test-site     builds the site from smoke executions and checks it in Chromium (CI's 2nd step)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.attnflex-installed
PORT   ?= 8888
LAB_ARGS ?=
PROFILE ?= smoke
# pytest workers (pytest-xdist). Each test file stays on one worker (--dist loadfile), so a notebook's
# cells run in order in one kernel; the learning tests train on one thread each, so two workers use
# both cores of a two-core machine. WORKERS=0 runs everything in one process.
WORKERS ?= 2
XDIST := $(if $(filter 0,$(WORKERS)),-p no:xdist,-n $(WORKERS) --dist loadfile)
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: setup lab test test-fast test-notebooks test-compat test-long test-long-cpu test-gpu test-gpu-dry lint strip doctor bench clean site site-smoke test-site

setup: $(STAMP)

# Reinstall only when the package's declared dependencies or the setup script change.
$(STAMP): pyproject.toml scripts/setup_env.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup_env.sh
	@touch $@

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --port=$(PORT) $(ROOT_FLAG) $(LAB_ARGS)

doctor: setup
	$(PY) -m attnflex_lab doctor

lint: setup
	$(PY) -m ruff check .

test: setup
	bash scripts/setup_browser.sh
	$(PY) -m ruff check .
	$(PY) -m pytest $(XDIST)

# Everything but the real-browser tests (for a machine without Chromium).
test-fast: setup
	$(PY) -m ruff check .
	$(PY) -m pytest $(XDIST) -m "not browser"

# The full-scale tier (tests/long): each lesson's headline comparison at the gpu profile's budget, trained
# on CPU over seeds 0-2. Not part of `make test` or CI; about an hour on two cores. Files stay whole on a
# worker except where tests/long/conftest.py lets a file's tests spread (--dist loadgroup).
test-long: setup
	$(PY) -m pytest $(if $(filter 0,$(WORKERS)),-p no:xdist,-n $(WORKERS) --dist loadgroup) -m long tests/long

# The cpu profile's claims that are too slow for `make test`: the learning checks marked `long` outside
# tests/long (seeds 1 and 2 of the heaviest ones, the checks over three seeds, lesson 08's longer runs),
# then the lessons whose cpu asserts have no learning test of their own, executed in cpu (their asserts
# are the check; one torch thread per kernel keeps two kernels from starving each other's output, and
# a cell gets 30 min). Last full run, at 4c6ee32 on two cores: 56 learning checks in 8 min 34 s,
# then the four notebooks' 93 cells in 6 min 48 s: 15 min 29 s in all.
CPU_NOTEBOOKS ?= $(addprefix notebooks/,09_training_recipes_and_robustness.ipynb 10_adapting_attention_models.ipynb \
                 11_attention_applications.ipynb 12_reading_and_shipping.ipynb)
test-long-cpu: setup
	$(PY) -m pytest $(XDIST) -m long tests --ignore=tests/long
	OMP_NUM_THREADS=1 $(PY) -m pytest $(XDIST) --nbval-cell-timeout=1800 $(CPU_NOTEBOOKS) --notebook-profile=cpu

# The gpu profile without a GPU: every lesson executed at the gpu profile's sizes on the CPU, each
# training loop cut to 2 steps (ATTNFLEX_DRY_RUN_STEPS), its asserts recorded rather than raised.
# It fails on a cell that crashes (a shape, a size, a dtype); it checks no claim. Not in CI.
test-gpu-dry: setup
	$(PY) scripts/dry_run.py --profile gpu --steps 2 --jobs $(if $(filter 0,$(WORKERS)),1,$(WORKERS))

# What needs a CUDA GPU (the device machine, Colab, your own): the `cuda` tests (skipped elsewhere),
# then every notebook in the gpu profile, then the benchmarks' MFU table.
test-gpu: setup
	$(PY) -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "make test-gpu needs a CUDA GPU; torch sees none")'
	$(PY) -m pytest -p no:xdist -m cuda tests
	$(PY) -m pytest -p no:xdist notebooks --notebook-profile=gpu
	$(PY) -m attnflex_lab bench

# Only the notebooks, in PROFILE (smoke unless named: `make test-notebooks PROFILE=cpu` takes minutes).
test-notebooks: setup
	$(PY) -m pytest notebooks --notebook-profile=$(PROFILE)

# Colab's constraints, tested locally: a separate venv (scripts/setup_compat.sh says which torch),
# then every notebook in smoke and the Colab-install checks, with that venv's python.
COMPAT_VENV ?= .venv-compat
COMPAT_STAMP := $(COMPAT_VENV)/.attnflex-installed
$(COMPAT_STAMP): pyproject.toml scripts/setup_compat.sh
	PYTHON=$(PYTHON) COMPAT_VENV=$(COMPAT_VENV) bash scripts/setup_compat.sh
	@touch $@

test-compat: $(COMPAT_STAMP)
	@# the notebooks' kernels import the installed copy: reinstall this checkout, as Colab installs it
	@# (never from pip's wheel cache, which can hold a stale build of a folder with the same name)
	$(COMPAT_VENV)/bin/python -m pip install --quiet --no-deps --force-reinstall --no-cache-dir "attnflex-lab @ file://$(CURDIR)"
	$(COMPAT_VENV)/bin/python -c 'import ipywidgets, torch; print(f"ipywidgets {ipywidgets.__version__}, torch {torch.__version__}")'
	$(COMPAT_VENV)/bin/python -m pytest $(XDIST) -p no:cacheprovider notebooks tests/test_colab_install.py

# Remove outputs and execution counts from every notebook before committing.
strip: setup
	$(PY) scripts/strip_notebooks.py notebooks/*.ipynb

# The static site (scripts/build_site.py): the cpu profile unless PROFILE is named on the command
# line (PROFILE's smoke default above is for the tests). Output: _build/site (cpu), _build/site-PROFILE.
SITE_PROFILE = $(if $(filter file,$(origin PROFILE)),cpu,$(PROFILE))
site: setup
	bash scripts/setup_site.sh
	$(PY) scripts/build_site.py --profile $(SITE_PROFILE)

site-smoke: setup
	bash scripts/setup_site.sh
	$(PY) scripts/build_site.py --profile smoke

# The site test executes every notebook again, so it runs apart from `make test` (marker `site`).
test-site: setup
	bash scripts/setup_browser.sh
	bash scripts/setup_site.sh
	$(PY) -m pytest -p no:xdist -m site tests/browser/test_site.py

bench: setup
	$(PY) -m attnflex_lab bench

clean:
	rm -rf $(VENV) $(COMPAT_VENV) artifacts _build .pytest_cache .ruff_cache .hypothesis
