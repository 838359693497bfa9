# Two commands set everything up on a fresh Debian/Ubuntu machine:
#   make run    listen on the microphone (or play the bundled demo when there is no input device)
#   make test   run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,hf

.PHONY: run test system venv data bench soak

system:
	bash scripts/install-system.sh

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

venv: $(VENV)/.installed

data:
	@bash scripts/get-data.sh >/dev/null

run: system venv
	@if $(VENV)/bin/digitd devices --check >/dev/null 2>&1; then \
		$(VENV)/bin/digitd run; \
	else \
		echo "No audio input device found: playing the bundled demo recording instead."; \
		$(VENV)/bin/digitd run --demo; \
	fi

test: system venv data
	DIGITD_FSDD_DIR="$$(bash scripts/get-data.sh)" $(PY) -m pytest -q -ra

bench: venv data
	DIGITD_FSDD_DIR="$$(bash scripts/get-data.sh)" $(VENV)/bin/digitd bench
