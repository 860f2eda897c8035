# Luffy's commands. `make run` and `make test` are all a fresh machine needs (Python 3.11+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
PYTEST_ARGS ?=

.PHONY: run test test-prod test-slow-path lint bench flower worker beat web clean-venv

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("Luffy needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(RUN_STAMP) $@

## run: Redis if needed, migrations, demo data, then gunicorn + worker + beat (Ctrl-C stops all)
run: $(RUN_STAMP)
	$(BIN)/python scripts/run_all.py

## test: the whole pytest suite against real Redis (its own server), SQLite and a real worker
test: $(DEV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-prod: the same suite on PostgreSQL and RabbitMQ (a fresh database and vhost per run);
## skipped, saying why, where those servers do not answer; under CI=true that is a failure
TEST_PROD_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test
TEST_PROD_BROKER_URL ?= amqp://guest:guest@127.0.0.1:5672//
test-prod: $(DEV_STAMP)
	@$(BIN)/python scripts/prod_services.py "$(TEST_PROD_DATABASE_URL)" "$(TEST_PROD_BROKER_URL)"; \
	status=$$?; \
	if [ $$status -eq 3 ]; then exit 0; elif [ $$status -ne 0 ]; then exit $$status; fi; \
	echo "Production matrix: PostgreSQL + RabbitMQ"; \
	LUFFY_TEST_DATABASE_URL="$(TEST_PROD_DATABASE_URL)" LUFFY_TEST_BROKER_URL="$(TEST_PROD_BROKER_URL)" \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-slow-path: the flash-sale tests again with the fast path off (SECKILL_FAST_PATH=0)
test-slow-path: $(DEV_STAMP)
	SECKILL_FAST_PATH=0 $(BIN)/python -m pytest $(PYTEST_ARGS) \
		tests/test_seckill.py tests/test_storefront.py tests/test_fault_drills.py

## lint: ruff's checks and its formatter (ruff.toml), as CI runs them
lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## bench: the benchmarks under bench/, each printing its figures
bench: $(DEV_STAMP)
	@for script in bench/banners.py bench/tasks.py bench/jobs.py bench/beat.py bench/results.py bench/seckill.py bench/scale.py; do \
		if [ -f $$script ]; then echo "== $$script"; $(BIN)/python $$script || exit 1; fi; \
	done

## web / worker / beat / flower: one process by hand
web: $(RUN_STAMP)
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app
worker: $(RUN_STAMP)
	$(BIN)/celery -A tasks worker -l INFO
beat: $(RUN_STAMP)
	$(BIN)/celery -A tasks beat -l INFO
flower: $(RUN_STAMP)
	$(BIN)/celery -A tasks flower

clean-venv:
	rm -rf $(VENV)
