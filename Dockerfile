# syntax=docker/dockerfile:1
# Build stage: build the wheel and resolve every dependency into a virtual env.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/gpuwork
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY simulator ./simulator
RUN /opt/gpuwork/bin/pip install --no-compile .

# Final stage: the interpreter and the virtual env, nothing to build with.
FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="gpuwork-exporter" \
      org.opencontainers.image.description="GPU useful-work exporter for Kubernetes GPU nodes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/gpuwork /opt/gpuwork
ENV PATH=/opt/gpuwork/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# NVML (libnvidia-ml.so.1) comes from the host driver, mounted by the NVIDIA
# container toolkit; the image ships none.
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=utility
USER 65534:65534
EXPOSE 9842
ENTRYPOINT ["gpuwork-exporter"]
