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
    collect_interval: float = Field(10.0, ge=0.1, le=3600)
    collect_timeout: float = Field(5.0, ge=0.05, le=600)
    simulate: str | None = None
    node_name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=253)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["logfmt", "json"] = "logfmt"

    @field_validator("collect_interval", "collect_timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("listen_address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_address(value)
        return value

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
)


class SettingsError(ValueError):
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
