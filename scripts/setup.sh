#!/usr/bin/env bash
# Installs what the hub needs on a fresh Debian machine and does nothing that is already there.
#   scripts/setup.sh build   a C tool chain and perl (the bundled librdkafka is compiled from
#                            source): enough to build and run `hub demo`
#   scripts/setup.sh test    also Java 17 and Maven (the Kafka broker), curl, and the Rust tool
#                            chain's rustfmt and clippy
set -euo pipefail

mode="${1:-test}"
tools=(gcc g++ make perl pkg-config)
if [ "$mode" = test ]; then
    tools+=(java mvn curl)
fi
missing=()
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "setup: installing packages for: ${missing[*]}" >&2
    pkgs=()
    for tool in "${missing[@]}"; do
        case "$tool" in
            gcc | make) pkgs+=(build-essential) ;;
            g++) pkgs+=(g++) ;;
            perl) pkgs+=(perl) ;;
            pkg-config) pkgs+=(pkg-config) ;;
            java) pkgs+=(openjdk-17-jre-headless) ;;
            mvn) pkgs+=(maven) ;;
            curl) pkgs+=(curl) ;;
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
