# Two entry points, both working on a fresh clone: `make demo` (main job) and `make test` (test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data demo test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU wheel of torch first, so nothing later pulls a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Fashion-MNIST comes from Debian's dataset-fashion-mnist package (installed here when missing and run as root);
# otherwise place the four idx .gz files in a folder and point CHIPFIT_DATA at it.
data:
	@if [ -f "$(FMNIST)" ] || [ -n "$$CHIPFIT_DATA" ]; then exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	else \
		echo "Fashion-MNIST is missing: as root run 'apt-get install dataset-fashion-mnist' (files in"; \
		echo "/usr/share/datasets/fashion-mnist), or set CHIPFIT_DATA to a folder holding the idx .gz files."; \
		exit 1; \
	fi

# The main job: `chipfit design` for the edge NPU on Fashion-MNIST, in a 10-minute time box: a search over QuadraNet
# blocks under a latency budget the hand-designed demo network (configs/quadranet_s28_demo.json, 0.179 ms) does not
# meet, training, int8, export, measurement and runs/demo/report.html.
demo: $(STAMP) data
	rm -rf runs/demo
	$(BIN)/chipfit design --hw edge-npu --latency 0.15ms --data fashion-mnist --minutes 10 --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache
