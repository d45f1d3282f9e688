"""Useful-work counters: continuous across engine restarts, per pod, pruned with pods."""

from __future__ import annotations

from exporter.model import EngineReading, Histogram, ModelStats, PodWork
from exporter.useful_work import WorkLedger

KEY = ("chat", "llama-0")
STARTED = 1_000.0
TTFT = Histogram(((0.1, 3.0), (float("inf"), 4.0)), 4.0, 0.9)


def reading(
    generation: float, prompt: float = 0.0, *, running: float = 0.0, start: float | None = 500.0
) -> EngineReading:
    stats = ModelStats("m", prompt_tokens=prompt, generation_tokens=generation,
                       requests_running=running, requests_finished=generation / 10,
                       kv_cache_usage_ratio=0.5, time_to_first_token_seconds=TTFT)  # fmt: skip
    return EngineReading("vllm", (stats,), process_start_time=start)


def step(ledger: WorkLedger, seen: EngineReading | None, now: float = 2_000.0) -> PodWork:
    (work,) = ledger.update([(KEY, "chat", STARTED)], {KEY: seen}, now)
    return work


def test_totals_start_at_the_engines_counters_and_follow_them() -> None:
    ledger = WorkLedger()
    first = step(ledger, reading(100, 400))
    assert first.models[0].generation_tokens_total == 100
    assert first.models[0].prompt_tokens_total == 400
    assert first.worked is False  # no interval behind a first look, no request running

    later = step(ledger, reading(150, 600))
    assert later.models[0].generation_tokens_total == 150
    assert later.worked is True


def test_a_restart_neither_drops_nor_double_counts() -> None:
    ledger = WorkLedger()
    step(ledger, reading(1_000))
    dropped = step(ledger, reading(30, start=900.0))  # counter fell: a new process
    assert dropped.models[0].generation_tokens_total == 1_030

    # a restart seen only as a new start time, the new counter already past the old one
    ledger = WorkLedger()
    step(ledger, reading(100))
    grown = step(ledger, reading(250, start=950.0))
    assert grown.models[0].generation_tokens_total == 350

    # without start times, a counter that fell is still a restart
    ledger = WorkLedger()
    step(ledger, reading(100, start=None))
    assert step(ledger, reading(20, start=None)).models[0].generation_tokens_total == 120


def test_a_failed_scrape_keeps_the_totals_and_drops_the_gauges() -> None:
    ledger = WorkLedger()
    step(ledger, reading(100, running=3))
    down = step(ledger, None)
    assert (down.up, down.worked) == (False, None)
    assert down.models[0].generation_tokens_total == 100
    assert down.models[0].requests_running is None
    assert down.models[0].kv_cache_usage_ratio is None
    assert down.models[0].time_to_first_token_seconds == TTFT  # cumulative: kept


def test_a_running_request_is_work_even_without_a_new_token() -> None:
    ledger = WorkLedger()
    step(ledger, reading(100))
    assert step(ledger, reading(100, running=1)).worked is True
    assert step(ledger, reading(100)).worked is False


def test_cold_start_is_the_first_token_after_the_pod_was_seen_without_one() -> None:
    ledger = WorkLedger()
    ledger.update([(KEY, "chat", STARTED)], {KEY: None}, 1_010.0)  # not answering yet
    assert step(ledger, reading(0), now=1_020.0).cold_start_seconds is None
    assert step(ledger, reading(5), now=1_045.0).cold_start_seconds == 45.0
    assert step(ledger, reading(9), now=1_055.0).cold_start_seconds == 45.0  # kept

    late = WorkLedger()  # the exporter came after the first token: unknown, not a guess
    assert step(late, reading(5), now=5_000.0).cold_start_seconds is None


def test_pods_that_end_and_engines_never_seen_leave_nothing() -> None:
    ledger = WorkLedger()
    step(ledger, reading(100))
    assert ledger.update([], {}, 3_000.0) == ()
    assert not ledger.knows(KEY)
    fresh = step(ledger, reading(7))  # the same name again is a new pod: a new counter
    assert fresh.models[0].generation_tokens_total == 7

    never = WorkLedger()  # a pod whose engine never answered has no series
    assert never.update([(KEY, "chat", STARTED)], {KEY: None}, 1.0) == ()


def test_histograms_can_be_switched_off() -> None:
    work = step(WorkLedger(histograms=False), reading(100))
    assert work.models[0].time_to_first_token_seconds is None
