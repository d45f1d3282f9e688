"""Tests of exporter/settings.py: flags, `GPUWORK_*` variables, defaults and one-line errors."""

from __future__ import annotations

import socket

import pytest

from exporter.settings import FLAGS, Flag, Settings, SettingsError, load_settings, split_address

# One valid, non-default value per Settings field, and what it parses to.
NON_DEFAULT: dict[str, tuple[str, object]] = {
    "listen_address": ("127.0.0.1:9000", "127.0.0.1:9000"),
    "web_config_file": ("/etc/gpuwork/web.yml", "/etc/gpuwork/web.yml"),
    "collect_interval": ("30s", 30.0),
    "collect_timeout": ("2s", 2.0),
    "simulate": ("small", "small"),
    "node_name": ("gpu-node-7", "gpu-node-7"),
    "log_level": ("debug", "debug"),
    "log_format": ("json", "json"),
    "kubelet_socket": ("/run/kubelet.sock", "/run/kubelet.sock"),
    "kubelet_resources": ("nvidia.com/gpu, amd.com/gpu", "nvidia.com/gpu, amd.com/gpu"),
    "kubernetes_api_url": ("https://10.96.0.1:443/", "https://10.96.0.1:443"),
    "kubernetes_token_file": ("/var/token", "/var/token"),
    "kubernetes_ca_file": ("/var/ca.crt", "/var/ca.crt"),
    "tenant_rules": ("pod-label:team,namespace", "pod-label:team,namespace"),
    "state_window": ("5m", 300.0),
    "state_busy_threshold": ("0.2", 0.2),
    "proc_root": ("/host/proc", "/host/proc"),
    "engines_scrape": ("false", False),
    "engines_timeout": ("500ms", 0.5),
    "engines_max_bytes": ("512KiB", 512 * 1024),
    "engines_histograms": ("false", False),
    "engines_catalog": ("engines.yaml", "engines.yaml"),
    "cost_gpu_hourly": ("*H100*=4.10", "*H100*=4.10"),
}


def settle(
    given: dict[str, str | None] | None = None, env: dict[str, str] | None = None
) -> Settings:
    return load_settings(given or {}, env or {})


def settings_error(given: dict[str, str | None], env: dict[str, str] | None = None) -> str:
    with pytest.raises(SettingsError) as caught:
        settle(given, env)
    message = str(caught.value)
    assert "\n" not in message, f"the error must be one line: {message!r}"
    return message


# -- defaults ----------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = settle()

    assert settings.listen_address == ":9842"
    assert (settings.host, settings.port) == ("0.0.0.0", 9842)
    assert settings.collect_interval == 10.0
    assert settings.collect_timeout == 5.0
    assert settings.simulate is None
    assert settings.node_name == socket.gethostname()
    assert settings.log_level == "info"
    assert settings.log_format == "logfmt"


def test_every_flag_has_a_non_default_value_in_these_tests() -> None:
    assert set(NON_DEFAULT) == {flag.field for flag in FLAGS}
    defaults = settle()
    for field, (_, expected) in NON_DEFAULT.items():
        assert getattr(defaults, field) != expected, field


# -- environment variables and flags -----------------------------------------------------------


def test_environment_variable_names() -> None:
    assert {flag.name: flag.env for flag in FLAGS} == {
        "--web.listen-address": "GPUWORK_WEB_LISTEN_ADDRESS",
        "--web.config.file": "GPUWORK_WEB_CONFIG_FILE",
        "--collect.interval": "GPUWORK_COLLECT_INTERVAL",
        "--collect.timeout": "GPUWORK_COLLECT_TIMEOUT",
        "--simulate": "GPUWORK_SIMULATE",
        "--node.name": "GPUWORK_NODE_NAME",
        "--log.level": "GPUWORK_LOG_LEVEL",
        "--log.format": "GPUWORK_LOG_FORMAT",
        "--kubelet.socket": "GPUWORK_KUBELET_SOCKET",
        "--kubelet.resources": "GPUWORK_KUBELET_RESOURCES",
        "--kubernetes.api-url": "GPUWORK_KUBERNETES_API_URL",
        "--kubernetes.token-file": "GPUWORK_KUBERNETES_TOKEN_FILE",
        "--kubernetes.ca-file": "GPUWORK_KUBERNETES_CA_FILE",
        "--tenant.rules": "GPUWORK_TENANT_RULES",
        "--state.window": "GPUWORK_STATE_WINDOW",
        "--state.busy-threshold": "GPUWORK_STATE_BUSY_THRESHOLD",
        "--proc.root": "GPUWORK_PROC_ROOT",
        "--engines.scrape": "GPUWORK_ENGINES_SCRAPE",
        "--engines.timeout": "GPUWORK_ENGINES_TIMEOUT",
        "--engines.max-bytes": "GPUWORK_ENGINES_MAX_BYTES",
        "--engines.histograms": "GPUWORK_ENGINES_HISTOGRAMS",
        "--engines.catalog": "GPUWORK_ENGINES_CATALOG",
        "--cost.gpu-hourly": "GPUWORK_COST_GPU_HOURLY",
    }


@pytest.mark.parametrize("flag", FLAGS, ids=lambda flag: flag.name)
def test_every_flag_can_be_set_from_its_environment_variable(flag: Flag) -> None:
    text, expected = NON_DEFAULT[flag.field]

    settings = settle(env={flag.env: text})

    assert getattr(settings, flag.field) == expected


@pytest.mark.parametrize("flag", FLAGS, ids=lambda flag: flag.name)
def test_every_flag_can_be_set_as_a_flag(flag: Flag) -> None:
    text, expected = NON_DEFAULT[flag.field]

    settings = settle({flag.field: text})

    assert getattr(settings, flag.field) == expected


def test_a_flag_beats_its_environment_variable() -> None:
    settings = settle(
        {"collect_interval": "20s", "listen_address": "127.0.0.1:1234", "log_level": None},
        {
            "GPUWORK_COLLECT_INTERVAL": "40s",
            "GPUWORK_WEB_LISTEN_ADDRESS": "127.0.0.1:5678",
            "GPUWORK_LOG_LEVEL": "error",
        },
    )

    assert settings.collect_interval == 20.0
    assert settings.listen_address == "127.0.0.1:1234"
    assert settings.log_level == "error"  # a flag given as None was not given


def test_a_bad_environment_variable_does_not_matter_when_the_flag_is_given() -> None:
    settings = settle({"collect_interval": "20s"}, {"GPUWORK_COLLECT_INTERVAL": "soon"})

    assert settings.collect_interval == 20.0


def test_unrelated_environment_variables_are_ignored() -> None:
    settings = settle(env={"GPUWORK_NO_SUCH_SETTING": "x", "COLLECT_INTERVAL": "1s"})

    assert settings == settle()


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10.0), ("1m", 60.0), ("1.5m", 90.0), ("1h", 3600.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert settle({"collect_interval": text}).collect_interval == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["abc", "10", "10 s", "-1s", "1d", "s", ""])
def test_a_bad_duration_flag(text: str) -> None:
    message = settings_error({"collect_interval": text})

    assert message.startswith("invalid --collect.interval=")
    assert "500ms, 10s, 1m or 1h" in message


def test_a_bad_duration_from_the_environment_names_the_variable() -> None:
    message = settings_error({}, {"GPUWORK_COLLECT_TIMEOUT": "a while"})

    assert message.startswith("invalid GPUWORK_COLLECT_TIMEOUT='a while':")
    assert "--collect.timeout" not in message
    assert "500ms, 10s, 1m or 1h" in message


def test_an_interval_below_the_minimum() -> None:
    message = settings_error({"collect_interval": "50ms"})

    assert message.startswith("invalid --collect.interval='50ms':")
    assert "greater than or equal to 0.1" in message


def test_an_interval_below_the_minimum_from_the_environment() -> None:
    message = settings_error({}, {"GPUWORK_COLLECT_INTERVAL": "10ms"})

    assert message.startswith("invalid GPUWORK_COLLECT_INTERVAL='10ms':")
    assert "greater than or equal to 0.1" in message


# -- the timeout and the interval --------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "timeout"), [("1s", 1.0), ("3s", 3.0), ("500ms", 0.5), ("5s", 5.0), ("1m", 5.0)]
)
def test_the_default_timeout_follows_a_short_interval_down(interval: str, timeout: float) -> None:
    settings = settle({"collect_interval": interval})

    assert settings.collect_timeout == timeout
    assert settings.collect_timeout <= settings.collect_interval


def test_the_default_timeout_follows_an_interval_from_the_environment() -> None:
    settings = settle(env={"GPUWORK_COLLECT_INTERVAL": "2s"})

    assert settings.collect_timeout == 2.0


def test_an_explicit_timeout_equal_to_the_interval_is_allowed() -> None:
    settings = settle({"collect_interval": "2s", "collect_timeout": "2s"})

    assert (settings.collect_interval, settings.collect_timeout) == (2.0, 2.0)


def test_an_explicit_timeout_larger_than_the_interval() -> None:
    message = settings_error({"collect_interval": "5s", "collect_timeout": "6s"})

    assert message == "invalid --collect.timeout='6s': must not exceed --collect.interval (5s)"


def test_an_explicit_timeout_larger_than_the_default_interval() -> None:
    message = settings_error({"collect_timeout": "20s"})

    assert message.startswith("invalid --collect.timeout='20s':")
    assert "must not exceed --collect.interval (10s)" in message


def test_a_timeout_larger_than_the_interval_from_the_environment_names_the_variables() -> None:
    message = settings_error(
        {}, {"GPUWORK_COLLECT_INTERVAL": "5s", "GPUWORK_COLLECT_TIMEOUT": "6s"}
    )

    assert message.startswith("invalid GPUWORK_COLLECT_TIMEOUT=")
    assert "GPUWORK_COLLECT_INTERVAL" in message


# -- listen address ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (":9842", ("0.0.0.0", 9842)),
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:9842", ("::1", 9842)),
        ("localhost:0", ("localhost", 0)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_split_address(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["nope", "9842", "127.0.0.1:", ":99999", ":-1", "host:http"])
def test_split_address_rejects(address: str) -> None:
    with pytest.raises(ValueError, match=r"\[host\]:port"):
        split_address(address)


def test_settings_host_and_port() -> None:
    settings = settle({"listen_address": "[::1]:19842"})

    assert (settings.host, settings.port) == ("::1", 19842)


@pytest.mark.parametrize("address", ["nope", ":99999", "127.0.0.1:"])
def test_a_bad_listen_address(address: str) -> None:
    message = settings_error({"listen_address": address})

    assert message.startswith(f"invalid --web.listen-address={address!r}:")
    assert ":9842, 127.0.0.1:9842 or [::1]:9842" in message


def test_a_bad_listen_address_from_the_environment() -> None:
    message = settings_error({}, {"GPUWORK_WEB_LISTEN_ADDRESS": "localhost"})

    assert message.startswith("invalid GPUWORK_WEB_LISTEN_ADDRESS='localhost':")


@pytest.mark.parametrize("address", ["a:b:80", "[::1:9842", "::1]:9842"])
def test_a_malformed_listen_address_host(address: str) -> None:
    settings_error({"listen_address": address})


# -- log level and format ----------------------------------------------------------------------


def test_warn_is_accepted_as_warning() -> None:
    assert settle({"log_level": "warn"}).log_level == "warning"
    assert settle(env={"GPUWORK_LOG_LEVEL": "warn"}).log_level == "warning"


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
def test_log_levels(level: str) -> None:
    assert settle({"log_level": level}).log_level == level


def test_a_bad_log_level() -> None:
    message = settings_error({"log_level": "loud"})

    assert message.startswith("invalid --log.level='loud':")
    for level in ("debug", "info", "warning", "error"):
        assert repr(level) in message


def test_a_bad_log_level_from_the_environment() -> None:
    message = settings_error({}, {"GPUWORK_LOG_LEVEL": "trace"})

    assert message.startswith("invalid GPUWORK_LOG_LEVEL='trace':")


def test_a_bad_log_format() -> None:
    message = settings_error({"log_format": "xml"})

    assert message.startswith("invalid --log.format='xml':")
    assert "'logfmt' or 'json'" in message


def test_an_empty_node_name() -> None:
    message = settings_error({"node_name": ""})

    assert message.startswith("invalid --node.name='':")


# -- attribution -------------------------------------------------------------------------------


def test_attribution_defaults() -> None:
    settings = settle()

    assert settings.kubelet_socket == "/var/lib/kubelet/pod-resources/kubelet.sock"
    assert settings.kubelet_resource_list == (
        "nvidia.com/gpu", "nvidia.com/gpu.*", "nvidia.com/mig-*", "gpu.nvidia.com",
    )  # fmt: skip
    assert settings.kubernetes_api_url is None
    assert [str(rule) for rule in settings.tenant_rule_list] == [
        "namespace-label:gpuwork.io/tenant", "namespace",
    ]  # fmt: skip
    assert (settings.state_window, settings.state_busy_threshold) == (60.0, 0.05)
    assert settings.proc_root == "/proc"


def test_an_empty_kubelet_socket_turns_attribution_off() -> None:
    assert settle({"kubelet_socket": ""}).kubelet_socket == ""


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"tenant_rules": "label:team"}, "invalid --tenant.rules='label:team'"),
        ({"tenant_rules": "namespace,pod-label:team"}, "invalid --tenant.rules="),
        ({"kubelet_resources": " , "}, "invalid --kubelet.resources"),
        ({"kubernetes_api_url": "10.96.0.1:443"}, "expected http(s)://host[:port]"),
        ({"state_busy_threshold": "1.5"}, "invalid --state.busy-threshold='1.5'"),
        ({"state_window": "0s"}, "invalid --state.window='0s'"),
        ({"engines_max_bytes": "8MB"}, "expected a size such as 512KiB"),
        ({"cost_gpu_hourly": "H100"}, "expected MODEL_PATTERN=PRICE_PER_GPU_HOUR"),
        ({"cost_gpu_hourly": "*H100*=-1"}, "expected MODEL_PATTERN=PRICE_PER_GPU_HOUR"),
        ({"engines_scrape": "maybe"}, "invalid --engines.scrape='maybe'"),
    ],
)
def test_bad_attribution_settings(given: dict[str, str | None], expected: str) -> None:
    assert expected in settings_error(given)


def test_prices_are_globs_over_the_gpu_model_name_first_match_wins() -> None:
    settings = settle({"cost_gpu_hourly": "*H100*=4.10, *A100*80GB*=2.5,*=1"})

    assert settings.gpu_prices == (("*H100*", 4.1), ("*A100*80GB*", 2.5), ("*", 1.0))
