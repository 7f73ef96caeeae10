#!/usr/bin/env bash
# The main job on a fresh machine: installs what building needs, then runs `hub demo` on the
# embedded bus (arguments are passed on, e.g. `scripts/demo.sh --serve`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh build
exec cargo run -q -p integration-hub -- demo "$@"
