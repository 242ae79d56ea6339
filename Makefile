# `make demo` and `make test` are the README's two set-up commands.
PYTHON ?= python3
# A Python that its distribution manages (PEP 668: Debian 12, Ubuntu 23.04 and later) refuses pip's
# installs outside a virtual environment: with one, and none active, the targets make .venv and
# install and run in it.
MANAGED := $(shell $(PYTHON) -c "import os, sys, sysconfig; print(sys.prefix == sys.base_prefix and \
	os.path.isfile(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))" 2>/dev/null)
VENV := $(if $(filter True,$(MANAGED)),.venv/bin/python)
ENV_PYTHON = $(or $(VENV),$(PYTHON))
PIP_INSTALL = $(ENV_PYTHON) -m pip install -q -c constraints.txt
# An editable install that puts the project folder on the path: setuptools' default finder loses to a
# folder named impasto in the current directory (the clone itself, seen from the folder above it),
# which Python then imports as an empty namespace package.
EDITABLE = --config-settings editable_mode=compat

.PHONY: install demo test test-deps bench

install: $(VENV)
	$(PIP_INSTALL) -e . $(EDITABLE)

$(VENV):
	$(PYTHON) -m venv .venv

demo: install
	$(ENV_PYTHON) -m impasto --demo -o demo.png

# Installs everything the tests need, then runs them. The browser test drives Debian's Chromium
# (Playwright's own browser download does not work offline), installed only when it is missing and
# apt-get is there; elsewhere (macOS), or where apt-get cannot (no root, no network), that test is
# skipped unless a chromium is on the PATH (in CI it fails instead: CI must run it).
test-deps: $(VENV)
	$(PIP_INSTALL) -e ".[test,web,heic]" $(EDITABLE)
	command -v chromium >/dev/null || ! command -v apt-get >/dev/null || (apt-get update && apt-get install -y chromium) \
		|| echo "make: could not install Chromium with apt-get; the browser tests will be skipped"

test: test-deps
	$(ENV_PYTHON) -m pytest
