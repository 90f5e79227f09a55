"""`python -m bench [--quick] [--only P1,P3] [--no-write]`: the throughput suite (issue 5).

Prints, for each target, the figure, the baseline measured in the same run and the ratio, and
writes them between the markers of docs/benchmarks.md (not in --quick mode). P5 (report over
1M attempts) is bench/p5_report.py's own command; `--only P5` runs it too.

Starts a redis-server of its own (or claims an empty database on the server
BATCHROUTER_BENCH_REDIS_URL names) and needs PostgreSQL (BATCHROUTER_TEST_POSTGRES_URL's
server; a throwaway database per benchmark).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime

from bench.common import ROOT, Result, bench_redis

DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
ORDER = ["P1", "P2", "P3", "P4", "P6", "S1"]
ROW = ("| P", "| S")  # a result row of the table


def _runner(target: str):  # type: ignore[no-untyped-def]
    from bench import p1_pipeline, p2_latency, p3_enqueue, p4_ratelimit, p6_memory, s1_scale

    return {
        "P1": p1_pipeline.run,
        "P2": p2_latency.run,
        "P3": p3_enqueue.run,
        "P4": p4_ratelimit.run,
        "P6": p6_memory.run,
        "S1": s1_scale.run,
    }[target]


def render(results: list[Result], command: str, seconds: float) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Last run: {when}, `{command}`, {seconds:.0f} s, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.",
        "",
        "| target | figure | baseline (same run) | ratio | bar | met | notes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        base = f"{r.baseline:,.1f} {r.baseline_what}" if r.baseline is not None else "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        notes = "; ".join(r.notes).replace("|", "/")
        lines.append(
            f"| {r.target}: {r.what} | {r.figure:,.1f} {r.unit} | {base} | {ratio} | {r.bar} | "
            f"{'yes' if r.met else '**no**'} | {notes} |"
        )
    return "\n".join(lines) + "\n"


def write_doc(block: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START not in text:
        text += f"\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    old, tail = rest.split(END, 1) if END in rest else ("", "")
    # Rows of targets this run did not measure stay, marked with the run they came from.
    fresh = {line.split(":")[0] for line in block.splitlines() if line.startswith(ROW)}
    kept = [
        line
        for line in old.splitlines()
        if line.startswith(ROW) and line.split(":")[0] not in fresh
    ]
    if kept:
        block += "\nFrom an earlier run:\n\n" + "\n".join(
            ["| target | figure | baseline (same run) | ratio | bar | met | notes |",
             "| --- | --- | --- | --- | --- | --- | --- |", *kept]
        ) + "\n"  # fmt: skip
    DOC.write_text(f"{head}{START}\n{block}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds each (smoke test)")
    parser.add_argument("--only", default="", help="comma-separated targets, e.g. P1,P3")
    parser.add_argument("--no-write", action="store_true", help="do not update the doc")
    args = parser.parse_args(argv)
    wanted = [t.strip().upper() for t in args.only.split(",") if t.strip()] or ORDER
    unknown = [t for t in wanted if t not in ORDER + ["P5"]]
    if unknown:
        parser.error(f"unknown targets {unknown}; choose from {', '.join(ORDER + ['P5'])}")
    began = time.perf_counter()
    results: list[Result] = []
    with bench_redis() as redis_url:
        os.environ["BATCHROUTER_BROKER_URL"] = redis_url  # before anything builds the Celery app
        for target in [t for t in ORDER if t in wanted]:
            print(f"{target}: running{' (quick)' if args.quick else ''} ...", flush=True)
            produced = _runner(target)(quick=args.quick)
            for result in produced if isinstance(produced, list) else [produced]:
                print(result.line(), flush=True)
                for note in result.notes:
                    print(f"    {note}", flush=True)
                results.append(result)
    if "P5" in wanted:
        from bench import p5_report

        p5_report.main(["--rows", "20000" if args.quick else "1000000"])
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    if results and not args.quick and not args.no_write:
        write_doc(render(results, command.strip(), time.perf_counter() - began))
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0 if all(r.met for r in results) or args.quick else 1


if __name__ == "__main__":
    raise SystemExit(main())
