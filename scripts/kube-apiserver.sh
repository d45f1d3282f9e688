#!/usr/bin/env bash
# Builds kube-apiserver once from Debian's `kubernetes` source package and caches
# it outside the repository; prints the binary's path. The Kubernetes watch tests
# run against this real API server (with Debian's etcd) on loopback.
set -euo pipefail

cache="${GPUWORK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpuwork}"
binary="$cache/kube-apiserver"
if [[ -x "$binary" ]]; then
    echo "$binary"
    exit 0
fi

sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
sources=/etc/apt/sources.list.d/gpuwork-deb-src.sources
if ! apt-cache showsrc kubernetes >/dev/null 2>&1 || [[ -z "$(apt-cache showsrc kubernetes 2>/dev/null)" ]]; then
    $sudo tee "$sources" >/dev/null <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    $sudo apt-get update -qq >&2
fi
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    golang-go dpkg-dev rsync etcd-server >&2

work="$cache/src"
rm -rf "$work" && mkdir -p "$work"
(cd "$work" && apt-get source -qq kubernetes >&2)
tree=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n1)
# Debian's source carries no .git; the build reads the version from these instead.
(cd "$tree" && KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean \
    GOFLAGS=-mod=vendor GOTOOLCHAIN=local make WHAT=cmd/kube-apiserver >&2)
install -m 0755 "$tree/_output/bin/kube-apiserver" "$binary"
rm -rf "$work"
echo "$binary"
