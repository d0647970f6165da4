#!/usr/bin/env bash
# Generates Portcullis's DEVELOPMENT certificates: a dev CA, server
# certificates (RSA-2048 and ECDSA P-256) for localhost names, a client
# certificate from the dev CA, and a second, unrelated CA with its own client
# certificate so tests can check that a foreign client certificate is refused.
#
# The one idea: these files are throwaway test fixtures, never secrets. The
# script is idempotent: it creates only what is missing, and re-issues a
# certificate only when the CA that signs it was (re)created in this run.
# With --force it deletes the existing files first and makes all of them
# anew.
#
# The server embeds certs/ in its binary (the built-in development
# defaults), so after regenerating, rebuild (`cargo build --release`) for
# the defaults to use the new files.
#
# Usage: scripts/gen-certs.sh [--force] [output-dir]
#        (default output: certs/ next to scripts/)
# Needs only the `openssl` command-line tool.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
force=0
case "${1:-}" in
    --force) force=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
out="${1:-$here/../certs}"
mkdir -p "$out"
cd "$out"
out="$(pwd)"
if ((force)); then
    rm -f ca.pem ca.key other-ca.pem other-ca.key server.pem server.key \
        server-ecdsa.pem server-ecdsa.key client.pem client.key \
        other-client.pem other-client.key
    echo "removed the old development certificates in $out"
fi

days=3650
sans="DNS:localhost,DNS:mtls.localhost,DNS:*.localhost,IP:127.0.0.1,IP:::1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Tracks which CAs were created in this run, so their leaves are re-issued
# (a leaf signed by a CA key that no longer exists would be useless).
fresh_ca=""

# make_ca NAME CN: a self-signed CA certificate NAME.pem with key NAME.key.
make_ca() {
    local name="$1" cn="$2"
    if [[ -s "$name.pem" && -s "$name.key" ]]; then
        return
    fi
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days "$days" \
        -subj "/O=Portcullis development/CN=$cn" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$name.key" -out "$name.pem" 2>/dev/null
    fresh_ca="$fresh_ca $name"
    echo "created $out/$name.pem"
}

# make_leaf NAME CA KEYSPEC CN EXTENSIONS: a certificate NAME.pem (key
# NAME.key) signed by CA. KEYSPEC is "rsa" or "ec".
make_leaf() {
    local name="$1" ca="$2" keyspec="$3" cn="$4" ext="$5"
    if [[ -s "$name.pem" && -s "$name.key" && " $fresh_ca " != *" $ca "* ]]; then
        return
    fi
    case "$keyspec" in
        rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$name.key" 2>/dev/null ;;
        ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key" 2>/dev/null ;;
    esac
    printf '%s\n' "$ext" >"$tmp/$name.ext"
    openssl req -new -key "$name.key" -subj "/O=Portcullis development/CN=$cn" \
        -out "$tmp/$name.csr"
    # A random serial per issue (-CAcreateserial would leave a .srl file behind).
    openssl x509 -req -in "$tmp/$name.csr" -CA "$ca.pem" -CAkey "$ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
        -extfile "$tmp/$name.ext" -out "$name.pem" 2>/dev/null
    echo "created $out/$name.pem"
}

server_ext="basicConstraints=critical,CA:FALSE
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$sans"
client_ext="basicConstraints=critical,CA:FALSE
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

make_ca ca "Portcullis development CA"
make_ca other-ca "Unrelated development CA"
make_leaf server ca rsa localhost "$server_ext"
make_leaf server-ecdsa ca ec localhost "$server_ext"
make_leaf client ca rsa dev-client "$client_ext"
make_leaf other-client other-ca rsa intruder "$client_ext"

# Sanity check: every leaf must verify against its own CA.
for pair in server:ca server-ecdsa:ca client:ca other-client:other-ca; do
    openssl verify -CAfile "${pair#*:}.pem" "${pair%%:*}.pem" >/dev/null
done
chmod 644 ./*.pem ./*.key
echo "certificates in $out are ready (development only)"
