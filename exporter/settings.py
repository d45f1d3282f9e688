"""Settings: Prometheus-style flags, each also a `GPUWORK_*` environment variable.

pydantic validates the merged values, so every setting has one rule in one
place; `load_settings` turns a validation failure into one line that names the
flag and says what is allowed.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exporter.errors import GpuworkError
from exporter.join.tenancy import DEFAULT_TENANT_RULES, TenantRule, parse_tenant_rules
from exporter.sources.podresources.client import DEFAULT_RESOURCES, DEFAULT_SOCKET_PATH

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_ADDRESS = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """`500ms`, `10s`, `1.5m`, `1h` -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError("expected a duration such as 500ms, 10s, 1m or 1h")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listen_address: str = ":9842"
    web_config_file: str = ""  # empty: plain HTTP, no auth
    collect_interval: float = Field(10.0, ge=0.1, le=3600)
    collect_timeout: float = Field(5.0, ge=0.05, le=600)
    simulate: str | None = None
    node_name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=253)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["logfmt", "json"] = "logfmt"
    kubelet_socket: str = DEFAULT_SOCKET_PATH  # empty: no attribution
    kubelet_resources: str = ",".join(DEFAULT_RESOURCES)
    kubernetes_api_url: str | None = None  # None: in-cluster when run in a pod
    kubernetes_token_file: str | None = None
    kubernetes_ca_file: str | None = None
    tenant_rules: str = DEFAULT_TENANT_RULES
    state_window: float = Field(60.0, ge=1, le=86400)
    state_busy_threshold: float = Field(0.05, ge=0, le=1)
    proc_root: str = "/proc"
    engines_scrape: bool = True
    engines_timeout: float = Field(2.0, ge=0.05, le=60)
    engines_max_bytes: int = Field(8 << 20, ge=1024, le=256 << 20)
    engines_histograms: bool = True
    engines_catalog: str = ""  # a YAML file of engine entries; empty: the built-in ones
    cost_gpu_hourly: str = ""  # pattern=price,...; empty: no cost series

    @field_validator(
        "collect_interval", "collect_timeout", "state_window", "engines_timeout", mode="before"
    )
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("listen_address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_address(value)
        return value

    @field_validator("tenant_rules")
    @classmethod
    def _rules(cls, value: str) -> str:
        parse_tenant_rules(value)
        return value

    @field_validator("cost_gpu_hourly")
    @classmethod
    def _prices(cls, value: str) -> str:
        parse_prices(value)
        return value

    @field_validator("engines_max_bytes", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("kubelet_resources")
    @classmethod
    def _resources(cls, value: str) -> str:
        if not resource_patterns(value):
            raise ValueError("expected comma-separated resource names or patterns")
        return value

    @field_validator("kubernetes_api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        if value and not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError("expected http(s)://host[:port], such as https://10.96.0.1:443")
        return value.rstrip("/") if value else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return "warning" if value == "warn" else value

    @property
    def host(self) -> str:
        return split_address(self.listen_address)[0]

    @property
    def port(self) -> int:
        return split_address(self.listen_address)[1]

    @property
    def tenant_rule_list(self) -> tuple[TenantRule, ...]:
        return parse_tenant_rules(self.tenant_rules)

    @property
    def kubelet_resource_list(self) -> tuple[str, ...]:
        return resource_patterns(self.kubelet_resources)

    @property
    def gpu_prices(self) -> tuple[tuple[str, float], ...]:
        return parse_prices(self.cost_gpu_hourly)


_SIZE = re.compile(r"^(\d+)(B|KiB|MiB|GiB)?$")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def parse_size(text: str) -> int:
    """`8MiB`, `512KiB`, `1048576` -> bytes."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError("expected a size such as 512KiB, 8MiB or 1048576")
    return int(match[1]) * _SIZE_UNITS[match[2]]


def parse_prices(text: str) -> tuple[tuple[str, float], ...]:
    """`*H100*=4.10,*A100*=2.20` -> ((pattern, hourly price), ...), first match wins.

    Patterns are fnmatch globs over NVML's GPU model name (`NVIDIA H100 80GB HBM3`)."""
    prices = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        pattern, sep, price = part.rpartition("=")
        try:
            value = float(price)
        except ValueError:
            value = -1.0
        if not sep or not pattern.strip() or not value >= 0 or value == float("inf"):
            raise ValueError(
                f"{part!r}: expected MODEL_PATTERN=PRICE_PER_GPU_HOUR, such as *H100*=4.10"
            )
        prices.append((pattern.strip(), value))
    return tuple(prices)


def resource_patterns(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def split_address(address: str) -> tuple[str, int]:
    """`:9842` -> ("0.0.0.0", 9842); `127.0.0.1:80`; `[::1]:9842`."""
    match = _ADDRESS.match(address)
    if not match or int(match["port"]) > 65535:
        raise ValueError("expected [host]:port, such as :9842, 127.0.0.1:9842 or [::1]:9842")
    return match["ipv6"] or match["host"] or "0.0.0.0", int(match["port"])


@dataclass(frozen=True, slots=True)
class Flag:
    name: str  # the command-line flag
    field: str  # the Settings field
    help: str

    @property
    def env(self) -> str:
        return "GPUWORK_" + re.sub(r"[.-]", "_", self.name.removeprefix("--")).upper()


FLAGS: Sequence[Flag] = (
    Flag("--web.listen-address", "listen_address", "address to serve /metrics on (:9842)"),
    Flag(
        "--web.config.file",
        "web_config_file",
        "TLS and basic auth for /metrics, in the Prometheus exporters' web config format "
        "(none: plain HTTP, no auth)",
    ),
    Flag("--collect.interval", "collect_interval", "time between collections (10s)"),
    Flag(
        "--collect.timeout",
        "collect_timeout",
        "longest one NVML collection may take (5s, or the interval if shorter)",
    ),
    Flag("--simulate", "simulate", "run on a simulated node: a built-in scenario or a YAML path"),
    Flag("--node.name", "node_name", "Kubernetes node name for the `node` label (hostname)"),
    Flag("--log.level", "log_level", "debug, info, warning or error (info)"),
    Flag("--log.format", "log_format", "logfmt or json (logfmt)"),
    Flag(
        "--kubelet.socket",
        "kubelet_socket",
        f"kubelet pod-resources socket; empty turns attribution off ({DEFAULT_SOCKET_PATH})",
    ),
    Flag(
        "--kubelet.resources",
        "kubelet_resources",
        "comma-separated resource names (and DRA drivers) to attribute; * matches any text "
        f"({','.join(DEFAULT_RESOURCES)})",
    ),
    Flag(
        "--kubernetes.api-url",
        "kubernetes_api_url",
        "API server for pod and namespace metadata (in-cluster when run in a pod)",
    ),
    Flag("--kubernetes.token-file", "kubernetes_token_file", "bearer token file for the API"),
    Flag("--kubernetes.ca-file", "kubernetes_ca_file", "CA bundle that signs the API server"),
    Flag(
        "--tenant.rules",
        "tenant_rules",
        f"how a pod's tenant is found, first match wins ({DEFAULT_TENANT_RULES})",
    ),
    Flag("--state.window", "state_window", "window over which busy and idle are judged (1m)"),
    Flag(
        "--state.busy-threshold",
        "state_busy_threshold",
        "mean SM activity (0-1) at or above which a device counts as busy (0.05)",
    ),
    Flag("--proc.root", "proc_root", "host /proc, to map GPU process PIDs to pods (/proc)"),
    Flag("--engines.scrape", "engines_scrape", "scrape inference engines in GPU pods (true)"),
    Flag("--engines.timeout", "engines_timeout", "longest one engine scrape may take (2s)"),
    Flag("--engines.max-bytes", "engines_max_bytes", "largest engine /metrics body read (8MiB)"),
    Flag(
        "--engines.histograms",
        "engines_histograms",
        "re-export engines' TTFT and inter-token latency histograms (true)",
    ),
    Flag(
        "--engines.catalog",
        "engines_catalog",
        "YAML file of engine entries added to the built-in catalog, or replacing one of the "
        "same name (none; format in docs/engines.md)",
    ),
    Flag(
        "--cost.gpu-hourly",
        "cost_gpu_hourly",
        "price of a whole GPU per hour, by model: *H100*=4.10,*A100*=2.20 "
        "(none; with --simulate, the scenario's gpu_hourly_cost)",
    ),
)


class SettingsError(GpuworkError, ValueError):
    """One line for the user: which flag, what was given, what is allowed."""


def load_settings(given: Mapping[str, str | None], environ: Mapping[str, str]) -> Settings:
    """Flags win over environment variables, which win over defaults."""
    values: dict[str, str] = {}
    origin: dict[str, str] = {}
    for flag in FLAGS:
        if given.get(flag.field) is not None:
            values[flag.field], origin[flag.field] = given[flag.field] or "", flag.name
        elif flag.env in environ:
            values[flag.field], origin[flag.field] = environ[flag.env], flag.env
    try:
        settings = Settings.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        name = origin.get(field, field)
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"invalid {name}={values.get(field)!r}: {message}") from error
    if "collect_timeout" not in values:  # the default follows a short interval down
        settings = settings.model_copy(
            update={"collect_timeout": min(settings.collect_timeout, settings.collect_interval)}
        )
    if settings.collect_timeout > settings.collect_interval:
        timeout, interval = origin["collect_timeout"], origin.get("collect_interval")
        raise SettingsError(
            f"invalid {timeout}={values['collect_timeout']!r}: must not exceed "
            f"{interval or '--collect.interval'} ({settings.collect_interval:g}s)"
        )
    return settings
