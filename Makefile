# carbonscope: `make run` and `make test` are the whole quick start (README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=
PYTEST_ARGS ?=

DEV_PKG := build/dev/carbonscope

.PHONY: run test faults lint bench soak test-tools dev-tree dashboards dashboard-pictures report-picture clean install uninstall

## dev-tree: the `carbonscope` package as the editable install sees it: agent/'s entries and
## exporters/ as symlinks (pyproject.toml maps them the same way into the wheel)
dev-tree:
	@mkdir -p $(DEV_PKG)
	@find $(DEV_PKG) -maxdepth 1 -type l ! -exec test -e {} \; -delete
	@for entry in agent/*; do \
		case "$${entry##*/}" in __pycache__) continue;; esac; \
		ln -sfn "$(CURDIR)/$$entry" "$(DEV_PKG)/$${entry##*/}"; \
	done
	@ln -sfn "$(CURDIR)/exporters" "$(DEV_PKG)/exporters"
	@mkdir -p $(DEV_PKG)/shipped/systemd $(DEV_PKG)/shipped/config
	@ln -sfn "$(CURDIR)/deploy/systemd/carbonscope.service" $(DEV_PKG)/shipped/systemd/carbonscope.service
	@ln -sfn "$(CURDIR)/deploy/config/carbonscope.toml" $(DEV_PKG)/shipped/config/carbonscope.toml
	@ln -sfn "$(CURDIR)/README.md" $(DEV_PKG)/shipped/README.md

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

## run: create the virtualenv, install, start the agent on its embedded default config
run: $(STAMP) dev-tree
	$(BIN)/carbonscope run $(ARGS)

## test-tools: system tools the suite drives for real (Debian packages, installed when root)
TEST_TOOLS := promtool:prometheus prometheus:prometheus systemd-analyze:systemd gcc:gcc faketime:faketime unshare:util-linux nsenter:util-linux setpriv:util-linux chromium:chromium
test-tools:
	@missing=""; for pair in $(TEST_TOOLS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian packages for the tests:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "missing tools, not root: run 'sudo apt-get install$$missing'" >&2; \
		fi; \
	fi

## test: install what the tests need and run the whole suite
test: $(STAMP) dev-tree test-tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## faults: only the fault suite (also part of make test)
faults: $(STAMP) dev-tree test-tools
	$(BIN)/python -m pytest -m faults $(PYTEST_ARGS)

## dashboards: regenerate grafana/dashboards/*.json and docs/grafana.md's panel list from
## grafana/boards/ (tests fail when the committed files differ)
dashboards: $(STAMP)
	$(BIN)/python grafana/generate.py

## dashboard-pictures: docs/images/dashboards/*.svg, each dashboard drawn from what a live
## Prometheus scraping two agents on fake hardware answers its queries (the live test)
dashboard-pictures: $(STAMP) dev-tree test-tools
	rm -rf build/dashboard-data
	CARBONSCOPE_DASHBOARD_DATA=$(CURDIR)/build/dashboard-data $(BIN)/python -m pytest -q tests/test_grafana_live.py
	$(BIN)/python grafana/pictures.py build/dashboard-data docs/images/dashboards

## install: (sudo) the agent as a systemd service: a virtualenv in /opt/carbonscope, the unit,
## a commented /etc/carbonscope/carbonscope.toml; enabled and started (DESTDIR=D stages only)
install: $(STAMP) dev-tree
	rm -rf build/dist
	$(BIN)/python -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w build/dist .
	$(BIN)/carbonscope install-service --package "$$(ls build/dist/carbonscope-*.whl)" $(if $(DESTDIR),--destdir "$(DESTDIR)")

## uninstall: (sudo) stop and remove the service; PURGE=1 also removes the config and the ledger
uninstall: $(STAMP) dev-tree
	$(BIN)/carbonscope uninstall-service $(if $(PURGE),--purge) $(if $(DESTDIR),--destdir "$(DESTDIR)")

## report-picture: docs/images/report-sample.png, the HTML report of the report test's ledger
## as headless Chromium draws it
report-picture: $(STAMP) dev-tree test-tools
	CARBONSCOPE_REPORT_PICTURE=$(CURDIR)/docs/images/report-sample.png $(BIN)/python -m pytest -q tests/test_report_in_chromium.py

## lint: ruff and mypy, as before every commit
lint: $(STAMP) dev-tree
	$(BIN)/ruff check agent exporters tests benchmarks grafana
	$(BIN)/ruff format --check agent exporters tests benchmarks grafana
	$(BIN)/mypy

## bench: sampling and scrape cost, then carbonscope side by side with node_exporter and
## codecarbon (installs Debian's prometheus-node-exporter when root); tables with PASS/FAIL
bench: $(STAMP) dev-tree
	@command -v prometheus-node-exporter >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing prometheus-node-exporter for the side-by-side benchmark"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-node-exporter >/dev/null; \
		else echo "prometheus-node-exporter missing, not root: sudo apt-get install prometheus-node-exporter" >&2; fi; }
	rc=0; $(BIN)/python benchmarks/run.py || rc=1; \
	$(BIN)/python benchmarks/side_by_side.py || rc=1; exit $$rc

## soak: the daemon for SOAK_MINUTES (30) under jobs and scrapes; RSS and fds every minute
soak: $(STAMP) dev-tree
	$(BIN)/python benchmarks/soak.py

clean:
	rm -rf $(VENV) build/dev build/dashboard-data .pytest_cache .mypy_cache .ruff_cache
