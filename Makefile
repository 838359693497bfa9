# Two commands set everything up on a fresh Debian/Ubuntu machine:
#   make run    listen on the microphone (or play the bundled demo when there is no input device)
#   make test   run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,hf,dask

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

# openWakeWord's wheel (PyPI) holds the ONNX graphs the numpy speech-embedding port is checked against
OWW := data/oww/openwakeword-0.4.0-py3-none-any.whl
$(OWW): | venv
	$(PY) -m pip download -q --no-deps openwakeword==0.4.0 -d data/oww

test: system venv data $(OWW)
	DIGITD_FSDD_DIR="$$(bash scripts/get-data.sh)" DIGITD_OWW_MODELS=$(OWW) $(PY) -m pytest -q -ra

bench: venv data
	DIGITD_FSDD_DIR="$$(bash scripts/get-data.sh)" $(VENV)/bin/digitd bench
