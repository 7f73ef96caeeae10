#!/usr/bin/env bash
# Installs what the hub needs on a fresh Debian machine and does nothing that is already there.
#   scripts/setup.sh build   a C tool chain, perl and OpenSSL's headers (the bundled librdkafka
#                            is compiled from source, with TLS and SCRAM through the system's
#                            OpenSSL): enough to build and run `hub demo`
#   scripts/setup.sh test    also Java 17 and Maven (the Kafka broker), curl, and the Rust tool
#                            chain's rustfmt and clippy
set -euo pipefail

mode="${1:-test}"
tools=(gcc g++ make perl pkg-config)
if [ "$mode" = test ]; then
    tools+=(java mvn curl)
    # The TLS suites make their test certificates with the openssl CLI (scripts/test-pki.sh).
    tools+=(openssl)
fi
missing=()
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
# Not a command: librdkafka's `ssl` feature links the system OpenSSL, found through pkg-config.
if ! pkg-config --exists openssl 2>/dev/null; then
    missing+=(openssl-dev)
fi
if ((${#missing[@]})); then
    echo "setup: installing packages for: ${missing[*]}" >&2
    pkgs=()
    for tool in "${missing[@]}"; do
        case "$tool" in
            gcc | make) pkgs+=(build-essential) ;;
            g++) pkgs+=(g++) ;;
            perl) pkgs+=(perl) ;;
            pkg-config) pkgs+=(pkg-config) ;;
            openssl-dev) pkgs+=(libssl-dev) ;;
            java) pkgs+=(openjdk-17-jre-headless) ;;
            mvn) pkgs+=(maven) ;;
            curl) pkgs+=(curl) ;;
            openssl) pkgs+=(openssl) ;;
        esac
    done
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${pkgs[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install the Rust tool chain (rustup) first" >&2
    exit 1
fi
if [ "$mode" = test ] && command -v rustup >/dev/null 2>&1; then
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

# --- Headless Chromium for the dashboard test (tests/tests/dashboard_chromium.rs) -----------
# Debian's chromium and its WebDriver, installed like scripts/postgres.sh installs PostgreSQL
# (with sudo when not root); nothing happens when both are there.
if [ "$mode" = test ] && { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; }; then
    echo "setup: installing chromium and chromium-driver (the dashboard test drives headless Chromium)" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver
fi

# --- cargo-deny for the supply-chain checks of deny.toml (docs/supply-chain.md) ------------
# Pinned and built from crates.io when missing or of another version (about 5 minutes on two
# cores). Its release profile's fat LTO and single codegen unit are turned off: they only make
# cargo-deny itself faster, at a cost in build time here.
CARGO_DENY_VERSION=0.20.2
if [ "$mode" = test ] && [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
    echo "setup: installing cargo-deny $CARGO_DENY_VERSION" >&2
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked
fi
