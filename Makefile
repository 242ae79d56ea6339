# `make demo` and `make test` are the README's two set-up commands.
PYTHON ?= python3
PIP_INSTALL = $(PYTHON) -m pip install -q -c constraints.txt
# An editable install that puts the project folder on the path: setuptools' default finder loses to a
# folder named impasto in the current directory (the clone itself, seen from the folder above it),
# which Python then imports as an empty namespace package.
EDITABLE = --config-settings editable_mode=compat

.PHONY: install demo test test-deps bench

install:
	$(PIP_INSTALL) -e . $(EDITABLE)

demo: install
	impasto --demo -o demo.png

# Installs everything the tests need, then runs them. The browser test drives Debian's Chromium
# (Playwright's own browser download does not work offline), installed only when it is missing and
# apt-get is there; elsewhere (macOS), or where apt-get cannot (no root, no network), that test is
# skipped unless a chromium is on the PATH (in CI it fails instead: CI must run it).
test-deps:
	$(PIP_INSTALL) -e ".[test,web,heic]" $(EDITABLE)
	command -v chromium >/dev/null || ! command -v apt-get >/dev/null || (apt-get update && apt-get install -y chromium) \
		|| echo "make: could not install Chromium with apt-get; the browser tests will be skipped"

test: test-deps
	$(PYTHON) -m pytest
