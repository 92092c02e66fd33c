# mapdiff: `make demo` runs the main job on bundled data, `make test` runs the suite, `make bench`
# runs the benchmarks. Each sets up the virtual environment first (Python >= 3.11, pip, make).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    := demo-out

.PHONY: demo test lint build deploy integration bench bench-kubicka bench-peers bench-locate bench-judgment bench-plan bench-scale clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(VENV)/.bench: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python fixtures/demo.py $(OUT)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check .

bench: bench-kubicka bench-peers bench-locate bench-judgment bench-plan bench-scale

bench-kubicka: $(VENV)/.bench
	$(BIN)/python benchmarks/kubicka.py

bench-peers: $(VENV)/.bench
	$(BIN)/python benchmarks/match_peers.py

bench-locate: $(VENV)/.bench
	$(BIN)/python benchmarks/locate.py
	$(BIN)/python benchmarks/locate.py --sweep 1,2,3,5 --observations 400000 --objects 4000
	$(BIN)/python benchmarks/locate_sim.py

bench-judgment: $(VENV)/.bench
	$(BIN)/python benchmarks/coverage_speed.py
	$(BIN)/python benchmarks/diff.py
	$(BIN)/python benchmarks/diff_sim.py

bench-plan: $(VENV)/.bench
	$(BIN)/python benchmarks/plan.py

bench-scale: $(VENV)/.bench
	$(BIN)/python benchmarks/scale.py

# deployment (see deployments/): the only entry points, so nobody types cdk commands by hand
PROJ_ENV ?= dev
EXPID    ?=
MODULES  ?=
DEPLOY_ARGS = --env $(PROJ_ENV) $(if $(EXPID),--expid $(EXPID))

build: $(VENV)/.installed
	$(BIN)/pip wheel -q --no-deps -w dist .
	$(BIN)/python deployments/deploy.py synth $(DEPLOY_ARGS)
	@if docker info >/dev/null 2>&1; then \
		docker build -f deployments/container/Dockerfile -t mapdiff:$(PROJ_ENV) . ; \
	else echo "make build: no docker daemon here; the image was not built"; fi

deploy: $(VENV)/.installed
	$(BIN)/python deployments/deploy.py deploy $(DEPLOY_ARGS) $(if $(MODULES),--modules $(MODULES))

integration: $(VENV)/.installed
	$(BIN)/python deployments/deploy.py integration $(DEPLOY_ARGS) $(if $(MODULES),--modules $(MODULES))

clean:
	rm -rf $(OUT) .pytest_cache
