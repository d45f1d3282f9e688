"""The container image (Dockerfile): built and run with podman where a container engine
works here and the base image is already on the machine (no registry is reachable);
otherwise skipped, saying why. hadolint checks the Dockerfile in `make lint`."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request

import pytest

from harness.kube_apiserver import free_port
from tests.support.paths import REPO

pytestmark = [pytest.mark.slow, pytest.mark.integration]

BASE = "python:3.11-slim-bookworm"  # the Dockerfile's FROM
TAG = "localhost/gpuwork-exporter:test"


def engine() -> str:
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("podman is not installed: the image is not built here")
    if subprocess.run([podman, "info"], capture_output=True, check=False).returncode != 0:
        pytest.skip("podman cannot run containers on this machine (`podman info` fails)")
    exists = subprocess.run([podman, "image", "exists", BASE], check=False)
    if exists.returncode != 0:
        pytest.skip(f"the base image {BASE} is not on this machine and no registry is reachable")
    return podman


def test_the_image_builds_and_serves_the_demo() -> None:
    podman = engine()
    subprocess.run([podman, "build", "--pull=never", "-t", TAG, str(REPO)], check=True)
    port = free_port()
    container = subprocess.run(
        [podman, "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:9842", TAG, "--simulate", "small"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    assert b"gpuwork_nvml_up 1.0" in r.read()
                    break
            except OSError:
                assert time.monotonic() < deadline, "the demo did not answer within 60 s"
                time.sleep(1)
    finally:
        subprocess.run([podman, "stop", container], capture_output=True, check=False)
