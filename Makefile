# pasts — the two set-up commands of the README:
#   make demo   runs the main job on the embedded default (SQLite, maildirs, no server)
#   make test   installs what the tests need (Dovecot, PostgreSQL, OpenSSL) and runs them
#
# Works on a fresh Debian 12 machine; system packages are installed with apt
# (as root, or through sudo) only when missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT    := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get
PYTEST_ARGS ?=

.PHONY: demo test check lint typecheck system-deps test-deps bench bench-large bench-verify clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { $(APT) update -qq && $(APT) install -y -qq python3; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { $(APT) update -qq && $(APT) install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pasts demo

# Test servers come from Debian's packages: Dovecot (IMAP), PostgreSQL
# (the multi-worker path) and the openssl command line (an independent
# implementation the CSR and CA tests check against), and Chromium (the
# digest test renders the staff digest's HTML headless and checks the screenshot).
test-deps:
	@missing=""; \
	command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || missing="$$missing dovecot-imapd"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(APT) update -qq && $(APT) install -y -qq $$missing; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) test-deps lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

# pasts run --once over 120 signed applications against bare pyHanko over the
# same PDFs (ratio, stage split), and peak memory at 100 and 1,000 (issue 12).
bench: $(STAMP)
	$(BIN)/python bench/bench_throughput.py --n 120 --rounds 3 --memory 100,1000

# The same with a 10,000-application backlog (long: about 6 minutes on 2 cores).
bench-large: $(STAMP)
	$(BIN)/python bench/bench_throughput.py --n 120 --rounds 1 --memory 100,1000,10000

# The verifier alone, in process and in a child, against bare pyHanko.
bench-verify: $(STAMP)
	$(BIN)/python bench/bench_verify.py --n 30

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
