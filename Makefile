# SRL for QGIS — one-command set-up, tests, demo, packaging.
#   make test     install what is missing (QGIS, Xvfb, .venv, pinned deps), then run the test suite headless
#   make demo     same set-up, then the end-to-end demo on bundled sample data into demo-output/
#   make lint     ruff
#   make package  plugin zip in dist/ ; make install links the plugin into the QGIS profile
#   make models   retrain every bundled model from the data packages (rewrites resources/models/)
# TORCH=cuda asks for PyPI's CUDA build of torch instead of the default CPU wheel.

SHELL := /bin/bash
SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH ?= cpu
TORCH_VERSION := 2.13.0
REQ_STAMP := $(VENV)/.stamp-$(shell cat requirements.txt constraints.txt 2>/dev/null | md5sum | cut -c1-12)-$(TORCH)
QGIS_PROFILE ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default
PLUGIN_NAME := srl_qgis
export QT_QPA_PLATFORM ?= offscreen

.PHONY: setup system-deps test demo lint package install models benchmarks bench-torchgeo clean

setup: system-deps $(REQ_STAMP)

# QGIS with its Python bindings and Xvfb come from Debian; skipped when already there.
system-deps:
	@if ! $(SYSTEM_PYTHON) -c "import qgis.core, scipy, PIL" 2>/dev/null || ! command -v xvfb-run >/dev/null; then \
		echo "Installing QGIS, python3-qgis and Xvfb from Debian..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			qgis python3-qgis qgis-providers python3-gdal python3-numpy python3-scipy python3-pil python3-venv xvfb xauth >/dev/null; \
	fi

$(REQ_STAMP): requirements.txt constraints.txt
	@test -x $(PY) || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	@if [ "$(TORCH)" = "cuda" ]; then \
		PIP_FIND_LINKS= $(PY) -m pip install -q -c constraints.txt "torch==$(TORCH_VERSION)"; \
	fi
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	@rm -f $(VENV)/.stamp-*; touch $@

test: setup
	$(PY) -m pytest -q tests

lint: setup
	$(PY) -m ruff check .

demo: setup
	$(PY) -m srl_plugin.demo --out demo-output

package: setup
	$(PY) packaging/build_zip.py --out dist

# A plugin installed from the zip is a real folder: ln would put the link inside it and QGIS would keep
# loading the old copy, so such a folder is refused (never deleted: it is the user's install).
install: package
	mkdir -p $(QGIS_PROFILE)/python/plugins
	@target=$(QGIS_PROFILE)/python/plugins/$(PLUGIN_NAME); \
	if [ -e "$$target" ] && [ ! -L "$$target" ]; then \
	  echo "$$target is an installed copy (from the zip?), not a link: uninstall it in QGIS's Plugin Manager, then run make install again."; \
	  exit 1; \
	fi
	ln -sfn $(CURDIR)/build/$(PLUGIN_NAME) $(QGIS_PROFILE)/python/plugins/$(PLUGIN_NAME)
	@echo "Linked $(PLUGIN_NAME) into $(QGIS_PROFILE); enable it in Plugins > Manage and Install Plugins."

models: setup
	bash training/make_models.sh

benchmarks: setup
	$(PY) -m pip install -q -r benchmarks/requirements.txt -c constraints.txt
	for b in benchmarks/bench_*.py; do [ $$b = benchmarks/bench_torchgeo.py ] || $(PY) $$b --quick || exit 1; done
	$(MAKE) bench-torchgeo BENCH_ARGS=--quick

# TorchGeo needs its own torch build (see benchmarks/requirements-torchgeo.txt), so its own venv.
TG_VENV := .venv-torchgeo
$(TG_VENV)/.stamp: benchmarks/requirements-torchgeo.txt constraints.txt
	@test -x $(TG_VENV)/bin/python || $(SYSTEM_PYTHON) -m venv --system-site-packages $(TG_VENV)
	$(TG_VENV)/bin/python -m pip install -q -r benchmarks/requirements-torchgeo.txt -c constraints.txt
	touch $@

bench-torchgeo: system-deps $(TG_VENV)/.stamp
	$(TG_VENV)/bin/python benchmarks/bench_torchgeo.py $(BENCH_ARGS)

clean:
	rm -rf build dist demo-output .pytest_cache
