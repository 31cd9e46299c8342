# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CONFIG ?= config.yaml

.PHONY: run test lint stack bench clean soak cluster

$(VENV)/.base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test: $(VENV)/.base pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.base
	$(VENV)/bin/progimage serve --config $(CONFIG)

# The service on 127.0.0.1:8080 with nginx (nginx.conf) caching in front on 127.0.0.1:8000;
# nginx is installed with apt-get if missing. Ctrl-C stops both.
stack: $(VENV)/.base
	bash scripts/stack.sh $(CONFIG)

# Scaled out on one machine: SeaweedFS (S3 on 127.0.0.1:8333), two nodes on 8081 and 8082
# sharing its bucket, nginx with both as upstreams on 127.0.0.1:8000. Ctrl-C stops all.
cluster: $(VENV)/.test
	bash scripts/cluster.sh $(CONFIG)

test: $(VENV)/.test
	$(VENV)/bin/ruff check proxy tests benchmarks
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# A longer soak of mixed valid and hostile traffic against the real server (tests/test_soak.py).
soak: $(VENV)/.test
	SOAK_REQUESTS=5000 $(PY) -m pytest -q -p no:cacheprovider tests/test_soak.py

lint: $(VENV)/.test
	$(VENV)/bin/ruff check proxy tests benchmarks
	$(VENV)/bin/ruff format --check proxy tests benchmarks

# The service under wrk vs raw libvips in-process; knobs BENCH_DURATION, BENCH_CONNS, …
# (see benchmarks/bench.py). Writes benchmarks/results/latest.{json,md}.
bench: $(VENV)/.base
	$(PY) benchmarks/bench.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
