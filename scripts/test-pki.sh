#!/usr/bin/env bash
# Test PKI for the TLS suites: a private CA, a server certificate for 127.0.0.1/localhost/::1
# and a client certificate, all signed by that CA, written into the given folder:
#   ca.pem ca.key server.pem server.key client.pem client.key
# ECDSA P-256 keys (PKCS#8 PEM), valid for 2 days. For tests only: never use these in production.
# Usage: scripts/test-pki.sh <folder>
set -euo pipefail

out="${1:?usage: test-pki.sh <folder>}"
command -v openssl >/dev/null || { echo "test-pki.sh: openssl not found (scripts/setup.sh installs it)" >&2; exit 1; }
mkdir -p "$out"
cd "$out"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=Integration Hub Test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem 2>/dev/null

# leaf <name> <subject CN> <extensions>
leaf() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days 2 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

leaf server localhost "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost"

leaf client hub-test-client "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

rm -f ca.srl
