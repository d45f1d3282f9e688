"""Useful-work counters: each engine series mirrored, glitches held, pruned with pods."""

from __future__ import annotations

from exporter.accounting.useful_work import COUNTER_DIP, MAX_SERIES_PER_POD, WorkLedger
from exporter.model import EngineReading, Histogram, ModelReading, ModelWork, PodWork

KEY = ("chat", "llama-0")
STARTED = 1_000.0
TTFT = Histogram(((0.1, 3.0), (float("inf"), 4.0)), 4.0, 0.9)
GEN = ("generation_tokens", "engine=0")
PROMPT = ("prompt_tokens", "engine=0")


def reading(
    generation: float,
    prompt: float = 0.0,
    *,
    running: float = 0.0,
    start: float | None = 500.0,
    ranks: dict[str, float] | None = None,
) -> EngineReading:
    """A vLLM reading of model "m"; `ranks`: more generation series, by `engine` label."""
    counters = {GEN: generation, PROMPT: prompt, ("requests_finished", "engine=0"): generation / 10}
    for rank, value in (ranks or {}).items():
        counters[("generation_tokens", f"engine={rank}")] = value
    stats = ModelReading("m", counters, {("time_to_first_token_seconds", "engine=0"): TTFT},
                         requests_running=running, kv_cache_usage_ratio=0.5)  # fmt: skip
    return EngineReading("vllm", (stats,), process_start_time=start)


def step(ledger: WorkLedger, seen: EngineReading | None, now: float = 2_000.0) -> PodWork:
    (work,) = ledger.update([(KEY, "chat", STARTED)], {KEY: seen}, now)
    return work


def model(work: PodWork) -> ModelWork:
    (only,) = work.models
    return only


def test_series_mirror_the_engines_counters() -> None:
    ledger = WorkLedger()
    first = model(step(ledger, reading(100, 400, ranks={"1": 70})))
    assert first.counters[GEN] == 100
    assert first.counters[PROMPT] == 400
    assert first.counters[("generation_tokens", "engine=1")] == 70
    assert step(ledger, reading(100, 400)).worked is False  # nothing new, nothing running
    later = step(ledger, reading(150, 600))
    assert model(later).counters[GEN] == 150
    assert later.worked is True


def test_a_restart_is_passed_through_as_the_reset_it_is() -> None:
    ledger = WorkLedger()
    step(ledger, reading(1_000))
    restarted = step(ledger, reading(30, start=900.0))  # a new process: counters from 0
    assert model(restarted).counters[GEN] == 30
    assert restarted.worked is True  # 30 tokens since the restart
    assert not ledger.errors

    ledger = WorkLedger()  # without start times, a counter that fell is a restart too
    step(ledger, reading(100, start=None))
    assert model(step(ledger, reading(20, start=None))).counters[GEN] == 20


def test_a_dip_without_a_restart_holds_until_the_engine_passes_it() -> None:
    ledger = WorkLedger()
    step(ledger, reading(1_000))
    dipped = step(ledger, reading(900))  # same process start time: a glitch
    assert model(dipped).counters[GEN] == 1_000
    assert dipped.worked is False
    assert model(step(ledger, reading(950))).counters[GEN] == 1_000  # still below
    assert ledger.errors == {COUNTER_DIP: 2}  # tokens and finished requests, once each
    assert model(step(ledger, reading(1_010))).counters[GEN] == 1_010
    after = step(ledger, reading(40, start=700.0))  # then a real restart
    assert model(after).counters[GEN] == 40


def test_one_ranks_reset_stays_its_own() -> None:
    ledger = WorkLedger()
    step(ledger, reading(1_000, ranks={"1": 800}, start=None))
    work = model(step(ledger, reading(1_100, ranks={"1": 5}, start=None)))
    assert work.counters[GEN] == 1_100  # rank 0 goes on
    assert work.counters[("generation_tokens", "engine=1")] == 5  # rank 1 restarted


def test_a_series_missing_from_one_scrape_keeps_its_value() -> None:
    ledger = WorkLedger()
    step(ledger, reading(1_000, ranks={"1": 800}))
    gap = model(step(ledger, reading(1_100)))  # rank 1's line was not read this time
    assert gap.counters[("generation_tokens", "engine=1")] == 800
    back = model(step(ledger, reading(1_200, ranks={"1": 850})))
    assert back.counters[("generation_tokens", "engine=1")] == 850


def test_a_restarted_exporter_exports_what_the_one_before_it_did() -> None:
    before, after = WorkLedger(), WorkLedger()
    step(before, reading(1_000))
    step(before, reading(20, start=900.0))  # the engine restarted under the first exporter
    old = model(step(before, reading(60, start=900.0)))
    new = model(step(after, reading(60, start=900.0)))
    assert new.counters == old.counters


def test_a_failed_scrape_keeps_the_counters_and_drops_the_gauges() -> None:
    ledger = WorkLedger()
    step(ledger, reading(100, running=3))
    down = step(ledger, None)
    assert (down.up, down.worked) == (False, None)
    assert model(down).counters[GEN] == 100
    assert model(down).requests_running is None
    assert model(down).kv_cache_usage_ratio is None
    assert model(down).histograms[("time_to_first_token_seconds", "engine=0")] == TTFT


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
    fresh = step(ledger, reading(7))  # the same name again is a new pod
    assert model(fresh).counters[GEN] == 7

    never = WorkLedger()  # a pod whose engine never answered has no series
    assert never.update([(KEY, "chat", STARTED)], {KEY: None}, 1.0) == ()


def test_series_per_pod_are_capped_and_counted() -> None:
    ledger = WorkLedger()
    ranks = {str(rank): 1.0 for rank in range(1, MAX_SERIES_PER_POD + 10)}
    work = model(step(ledger, reading(100, ranks=ranks)))
    assert len(work.counters) + len(work.histograms) == MAX_SERIES_PER_POD
    assert ledger.dropped_series == 13  # 3 + 2,009 ranks + 1 histogram - 2,000


def test_histograms_can_be_switched_off() -> None:
    work = step(WorkLedger(histograms=False), reading(100))
    assert model(work).histograms == {}
