# The two commands a new user needs; see README.md.
.PHONY: run test lint

run:  ## install everything and run the app (web, worker, Redis; demo data and logins printed)
	bash .ci/app.sh

test:  ## install what the tests need, start PostgreSQL and Redis, run lint and every test
	bash .ci/test.sh

lint:  ## what make test checks before the tests: ruff (lint and format), import-linter (the layers) and djLint
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports --no-cache \
		&& .venv/bin/djlint templates --lint
