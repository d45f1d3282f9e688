#!/usr/bin/env bash
# Builds kube-apiserver once from Debian's `kubernetes` source package and caches
# it outside the repository; prints the binary's path (and nothing else on stdout).
# The Kubernetes watch tests run against this real API server with Debian's etcd on
# loopback, so every run also makes sure that etcd and openssl (which the tests use
# to make the service-account signing key) are installed, even when the binary is
# already cached. Idempotent; needs root or sudo only when something is missing.
set -euo pipefail

cache="${GPUWORK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpuwork}"
binary="$cache/kube-apiserver"

sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"

apt_install() {
    # A fresh image has empty package lists: update once, then install.
    $sudo apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$@" >&2
}

# What the tests run besides the API server, installed on every run when missing.
need=()
[[ -x /usr/bin/etcd ]] || need+=(etcd-server)
command -v openssl >/dev/null || need+=(openssl)

if [[ -x "$binary" ]]; then
    if ((${#need[@]})); then
        apt_install "${need[@]}"
    fi
    echo "$binary"
    exit 0
fi

sources=/etc/apt/sources.list.d/gpuwork-deb-src.sources
if [[ -z "$(apt-cache showsrc kubernetes 2>/dev/null || true)" ]]; then
    $sudo tee "$sources" >/dev/null <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi
apt_install "${need[@]}" golang-go dpkg-dev rsync make ca-certificates

mkdir -p "$cache"
work="$cache/src"
rm -rf "$work" && mkdir -p "$work"
(cd "$work" && apt-get source -qq kubernetes >&2)
tree=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n1)
# Debian's source carries no .git; the build reads the version from these instead.
(cd "$tree" && KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean \
    GOFLAGS=-mod=vendor GOTOOLCHAIN=local make WHAT=cmd/kube-apiserver >&2)
# Install under a temporary name first: an interrupted copy never looks cached.
install -m 0755 "$tree/_output/bin/kube-apiserver" "$binary.tmp"
mv -f "$binary.tmp" "$binary"
rm -rf "$work"
echo "$binary"
