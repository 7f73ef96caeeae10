#!/usr/bin/env bash
# The test command: installs what the tests need, starts a real Apache Kafka broker on
# 127.0.0.1:9092 and a PostgreSQL server on 127.0.0.1:55432, then runs formatting and lint
# checks and every test of the workspace, the Kafka end-to-end and conformance suites
# included. Both servers are stopped at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh test
scripts/kafka.sh start
trap 'scripts/kafka.sh stop || true' EXIT
# The golden-record store's suite runs on SQLite and on this PostgreSQL.
scripts/postgres.sh start
trap 'scripts/kafka.sh stop || true; scripts/postgres.sh stop || true' EXIT

export KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
export HUB_TEST_POSTGRES="${HUB_TEST_POSTGRES:-$(scripts/postgres.sh url)}"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Builds every binary first: the end-to-end suites run the `hub` binary as a process.
cargo build --workspace --bins --locked
cargo test --workspace --locked
