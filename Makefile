# Set-up and everyday commands. `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROMPT ?= a futuristic city at sunset with flying cars

.PHONY: install demo test lint format clean

$(BIN)/imagineer: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned in pyproject.toml and installed in the same command, so no CUDA build comes.
	$(BIN)/pip install --quiet -e '.[dev]'
	# Tests build a real CLIP tokenizer from the BPE file open_clip_torch's wheel ships (MIT).
	# --no-deps: its dependencies include torchvision, which breaks beside the pinned CPU torch.
	$(BIN)/pip install --quiet --no-deps 'open_clip_torch>=3.3,<4'
	touch $@

install: $(BIN)/imagineer

demo: install
	$(BIN)/imagineer imagine "$(PROMPT)" --out outputs/demo
	$(BIN)/imagineer reel "$(PROMPT)" --seconds 10 --out outputs/demo

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: install
	bash scripts/ensure-test-services.sh
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -q || [ $$? -eq 5 ]  # 5: no tests collected

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
