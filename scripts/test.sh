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
# The broker's SASL_SSL listener (SCRAM over TLS with a private CA) for
# tests/tests/kafka_sasl_ssl.rs: KAFKA_SASL_BOOTSTRAP, _CA, _USER and _PASSWORD_FILE.
sasl_env="$(scripts/kafka.sh sasl-env)"
while IFS= read -r line; do
    if [[ -n "$line" ]]; then export "${line?}"; fi
done <<<"$sasl_env"
export HUB_TEST_POSTGRES="${HUB_TEST_POSTGRES:-$(scripts/postgres.sh url)}"
# --- Supply chain (deny.toml, docs/supply-chain.md) ----------------------------------------
# Licences, duplicate versions, banned crates and sources need no network and always gate.
cargo deny --locked check --deny warnings licenses bans sources
# Advisories need RustSec's database, cloned from GitHub. Any finding fails. When the
# database cannot be fetched at all, the run says so loudly and goes on, unless
# HUB_REQUIRE_ADVISORIES=1 (set it wherever GitHub is reachable) makes that fatal too.
if ! deny_out="$(cargo deny --locked check --deny warnings advisories 2>&1)"; then
    printf '%s\n' "$deny_out" >&2
    if [[ "${HUB_REQUIRE_ADVISORIES:-0}" != 1 ]] &&
        grep -q 'failed to fetch advisory database' <<<"$deny_out" &&
        ! grep -q '^error\[' <<<"$deny_out"; then
        echo "######## SUPPLY CHAIN: ADVISORIES NOT CHECKED: the RustSec database could not be fetched ########" | tee /dev/stderr
    else
        exit 1
    fi
fi
# --- end supply chain ----------------------------------------------------------------------
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Builds every binary first: the end-to-end suites run the `hub` binary as a process.
cargo build --workspace --bins --locked
cargo test --workspace --locked
