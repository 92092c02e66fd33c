# mapdiff: `make demo` runs the main job on bundled data, `make test` runs the suite, `make bench`
# runs the benchmarks. Each sets up the virtual environment first (Python >= 3.11, pip, make).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    := demo-out

.PHONY: demo test bench bench-kubicka bench-peers bench-locate clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(VENV)/.bench: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

demo: $(VENV)/.installed
	mkdir -p $(OUT)
	$(BIN)/mapdiff network fixtures/helsinki.osm.pbf -o $(OUT)/roads.gpkg
	$(BIN)/mapdiff match fixtures/helsinki_traces.parquet --map $(OUT)/roads.gpkg \
		-o $(OUT)/matched.parquet --paths $(OUT)/paths.parquet
	$(BIN)/python fixtures/demo_summary.py $(OUT)/roads.gpkg $(OUT)/matched.parquet \
		$(OUT)/paths.parquet fixtures/helsinki_truth.parquet

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

bench: bench-kubicka bench-peers bench-locate

bench-kubicka: $(VENV)/.bench
	$(BIN)/python benchmarks/kubicka.py

bench-peers: $(VENV)/.bench
	$(BIN)/python benchmarks/match_peers.py

bench-locate: $(VENV)/.bench
	$(BIN)/python benchmarks/locate.py
	$(BIN)/python benchmarks/locate.py --sweep 1,2,3,5 --observations 400000 --objects 4000
	$(BIN)/python benchmarks/locate_sim.py

clean:
	rm -rf $(OUT) .pytest_cache
