# Two commands matter on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 7070
# Loopback unless told otherwise; another address needs ORCHESTRATOR_API_KEY (SECURITY.md).
HOST ?= 127.0.0.1
WEB_CONCURRENCY ?= 2
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test lint bench-ingest bench-security migrate install install-dev clean

$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-dev: requirements-dev.txt requirements.txt $(BIN)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed
install-dev: $(BIN)/.installed-dev

# A development secret, made once and kept out of git, so DEBUG can stay off.
.secret_key:
	$(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

migrate: $(BIN)/.installed .secret_key
	SECRET_KEY="$${SECRET_KEY:-$$(cat .secret_key)}" $(BIN)/python manage.py migrate --noinput
	SECRET_KEY="$${SECRET_KEY:-$$(cat .secret_key)}" $(BIN)/python manage.py collectstatic --noinput -v 0

## Serve the API on $(HOST):$(PORT) (embedded SQLite unless DATABASE_URL is set).
run: migrate
	SECRET_KEY="$${SECRET_KEY:-$$(cat .secret_key)}" LOG_FORMAT="$${LOG_FORMAT:-plain}" \
	$(BIN)/gunicorn orchestrator.asgi:application -c orchestrator/gunicorn.conf.py \
		--bind $(HOST):$(PORT) --workers $(WEB_CONCURRENCY)

## The whole suite against the real PostgreSQL and Redis.
test: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" SECRET_KEY=test-only-secret-key DB_POOL_MAX_SIZE=30 \
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .

bench-ingest: $(BIN)/.installed-dev
	$(BIN)/python bench/ingest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

## What the API key check, rate limit and access log cost per request.
bench-security: $(BIN)/.installed-dev
	$(BIN)/python bench/security

# --- Redis workers ---
.PHONY: worker bench-workers

## A worker for redis-mode runs, on the same database and Redis as `make run`.
worker: migrate
	SECRET_KEY="$${SECRET_KEY:-$$(cat .secret_key)}" LOG_FORMAT="$${LOG_FORMAT:-plain}" \
	$(BIN)/python manage.py runworker

bench-workers: $(BIN)/.installed-dev
	$(BIN)/python bench/worker_throughput

# --- Event stream ---
.PHONY: bench-stream
## Event stream fan-out (2,000 subscribers) and resume storm (1,000 reconnects).
bench-stream: $(BIN)/.installed-dev
	$(BIN)/python bench/stream_fanout
	$(BIN)/python bench/resume_storm

## Retention and admin figures (docs/performance.md, "Operations").
bench-ops: $(BIN)/.installed-dev
	$(BIN)/python bench/ops
