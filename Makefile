# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo tour test test-fast install clean-runs help

help:
	@echo "make demo   - install, prepare moving-digits, pre-train rho_simclr and rho_byol, score them and random_init, print the leaderboard"
	@echo "make tour   - one minute on the ci profile: a method under two protocols, the leaderboard, a paper table and its plot"
	@echo "make test   - install if needed, run the linter and the test suite"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test]'
	# DALL-E's package, for the test of loading its dVAE encoder; --no-deps: it lists mypy, pytest and
	# blobfile as install requirements, and its encoder needs only torch and attrs
	$(BIN)/pip install -q --no-deps 'DALL-E==0.1'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bench data prepare moving-digits
	$(BIN)/bench run --method rho_simclr --protocol linear-cached
	$(BIN)/bench run --method rho_byol --protocol linear-cached
	$(BIN)/bench run --method random_init --protocol linear-cached
	$(BIN)/bench leaderboard --profile embedded
	@echo
	@echo "Records are in ./results/runs. To use bench from any folder: source $(VENV)/bin/activate"

# a look at every part in about a minute: the ci profile (64 tiny videos), results kept apart in results/tour
TOUR := --profile ci --results-dir results/tour -q
tour: $(STAMP)
	$(BIN)/bench data prepare moving-digits --size ci
	$(BIN)/bench run --method rho_simclr --protocol linear-cached $(TOUR)
	$(BIN)/bench run --method rho_simclr --protocol finetune $(TOUR)
	$(BIN)/bench run --method random_init --protocol linear-cached $(TOUR)
	$(BIN)/bench leaderboard --profile ci --results-dir results/tour
	$(BIN)/bench tables --table rho --profile ci --results-dir results/tour --out results/tour/tables
	@echo
	@echo "The tour's records, tables and plots are in ./results/tour. For numbers that rank methods: make demo"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q --durations=10

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e"

clean-runs:
	rm -rf results/runs
