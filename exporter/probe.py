"""`gpuwork-exporter probe URL [URL…]`: why does this pod show no tokens?

Scrapes each endpoint exactly as the exporter does (the same scraper: Accept header,
timeout, size cap, fallback paths, parser) and passes the readings through the same
counter rules (`WorkLedger`), then prints what the exporter would export and every
problem it met, with its kind and line number. `--repeat N` scrapes N times,
`--interval` apart, and shows how each exported counter moved.

Exit status: 0 when every URL answered as an engine, 1 when one did not (unreachable,
refused, no engine's metrics), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Sequence
from typing import TextIO
from urllib.parse import urlsplit

from exporter.accounting.useful_work import WorkLedger
from exporter.model import EngineReading, ModelWork
from exporter.settings import parse_duration, parse_size
from exporter.sources.engines.catalog import BUILTIN, Catalog, CatalogError, load_catalog
from exporter.sources.engines.parser import EngineParser
from exporter.sources.engines.scraper import EngineScraper, EngineTarget, ScrapeResult

_PROBE = "probe"  # the namespace of every probed "pod"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpuwork-exporter probe",
        description="Scrape inference engines' /metrics as the exporter would, and say what "
        "it would export and what is wrong.",
    )
    parser.add_argument("urls", nargs="+", metavar="URL", help="http://HOST:PORT/PATH")
    parser.add_argument("--repeat", type=_positive_int, default=1, help="scrapes (1)")
    parser.add_argument("--interval", type=_duration, default=5.0, help="between scrapes (5s)")
    parser.add_argument("--timeout", type=_duration, default=2.0, help="per scrape (2s)")
    parser.add_argument("--max-bytes", type=_size, default=8 << 20, help="largest body (8MiB)")
    parser.add_argument(
        "--engines.catalog",
        dest="catalog",
        default="",
        metavar="FILE",
        help="engine entries added to the built-in catalog, as the exporter's flag (none)",
    )
    args = parser.parse_args(argv)
    for url in args.urls:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            parser.error(f"{url!r} is not an http://HOST[:PORT]/PATH URL")
    return args


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


async def probe(
    urls: Sequence[str],
    *,
    repeat: int,
    interval: float,
    scrape_timeout: float,
    max_bytes: int,
    out: TextIO,
    catalog: Catalog = BUILTIN,
) -> int:
    """Scrape and report; the exit status."""
    scraper = EngineScraper(
        timeout=scrape_timeout, max_bytes=max_bytes, parser=EngineParser(catalog)
    )
    ledger = WorkLedger()
    targets = [EngineTarget(_PROBE, url, url) for url in urls]
    recognized = dict.fromkeys(urls, False)
    previous: dict[str, ModelWork] = {}
    try:
        for n in range(repeat):
            if n:
                await asyncio.sleep(interval)
            results = await scraper.scrape(targets)
            readings = {(_PROBE, r.target.url): r.reading for r in results}
            work = {w.pod: w for w in ledger.update(
                ((key, "", None) for key in readings), readings, 0.0)}  # fmt: skip
            for result in results:
                url = result.target.url
                recognized[url] |= result.reading is not None
                header = f"scrape {n + 1}/{repeat} " if repeat > 1 else ""
                print(f"{header}{url}", file=out)
                _report(result, out)
                pod = work.get(url)
                for model in pod.models if pod is not None else ():
                    key = f"{url} {model.model}"
                    _exported(model, previous.get(key), result.reading, out)
                    previous[key] = model
                print(file=out)
    finally:
        await scraper.close()
    return 0 if all(recognized.values()) else 1


def _report(result: ScrapeResult, out: TextIO) -> None:
    reading = result.reading
    if reading is None:
        print(f"  error {result.error}: {result.message}", file=out)
        if result.error in ("connection", "http_404", "unknown_engine"):
            print("  (the exporter takes such a pod for one that runs no engine)", file=out)
        return
    if result.url != result.target.url:
        print(f"  answered on {result.url}", file=out)
    start = reading.process_start_time
    print(f"  catalog entry {reading.matched}", file=out)
    print(f"  engine {reading.engine}, {len(reading.models)} model(s), process start "
          f"{'unknown: a fall of a counter is taken as a restart' if start is None else start}",
          file=out)  # fmt: skip
    for problem in reading.problems:
        where = f"line {problem.line}" if problem.line else "body"
        print(f"  problem {problem.kind} at {where}: {problem.detail}", file=out)
    more = sum(reading.problem_counts.values()) - len(reading.problems)
    if more > 0:
        print(f"  … and {more} more problem(s): {dict(reading.problem_counts)}", file=out)
    if reading.dropped_series:
        print(f"  {reading.dropped_series} series left out by a cap", file=out)
    if not reading.models:
        print("  no model served yet (an engine before its first request)", file=out)


def _exported(
    model: ModelWork,
    before: ModelWork | None,
    reading: EngineReading | None,
    out: TextIO,
) -> None:
    print(f"  model {model.model!r}", file=out)
    raw = {}
    for stats in reading.models if reading is not None else ():
        if stats.model == model.model:
            raw = dict(stats.counters)
    for (name, series), value in sorted(model.counters.items()):
        note = ""
        if before is not None and (name, series) in before.counters:
            delta = value - before.counters[(name, series)]
            note = f"  (+{delta:g})" if delta >= 0 else "  (reset: the engine restarted)"
        engine_value = raw.get((name, series))
        if engine_value is not None and engine_value < value:  # only a glitch is held
            note += f"  (held: the engine says {engine_value:g} without a restart)"
        elif engine_value is None and reading is not None:
            note += "  (not in this body: last value kept)"
        print(f"    {name}{{series={series!r}}} {value:g}{note}", file=out)
    for name in ("requests_running", "requests_waiting", "kv_cache_usage_ratio"):
        value = getattr(model, name)
        if value is not None:
            print(f"    {name} {value:g}", file=out)
    for (name, series), histogram in sorted(model.histograms.items()):
        mean = histogram.sum / histogram.count if histogram.count else math.nan
        print(f"    {name}{{series={series!r}}} count {histogram.count:g}, mean {mean:.4g}",
              file=out)  # fmt: skip


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)  # exits 2 on bad usage
    try:
        catalog = load_catalog(args.catalog) if args.catalog else BUILTIN
    except CatalogError as error:
        print(f"gpuwork-exporter probe: {error}", file=sys.stderr)
        return 2
    return asyncio.run(
        probe(
            args.urls,
            repeat=args.repeat,
            interval=args.interval,
            scrape_timeout=args.timeout,
            max_bytes=args.max_bytes,
            out=sys.stdout,
            catalog=catalog,
        )
    )
