"""Fixed rules vs fitted rules vs each single model, on the part of each set the fit never saw.

    .venv/bin/python -m bench.learning [--only mmlu,banking77] [--no-write]

Reads the data in place, never copying it: BATCHROUTER_DATA_DIR (default: the folder
`shared/data` beside the project's folder), holding `routellm-mmlu/` and `banking77/`. Writes
the recorded-answer tables and routing files into .batchrouter/bench/learning (not committed),
runs `batchrouter fit` on them (split by seed 0: 30% held out) and `evaluate` (the worker's own
inner loop over the `replay` provider) on the held-out items, and writes the tables between the
markers of docs/learning.md.

- routellm-mmlu: whether Mixtral-8x7B and GPT-4 answered each MMLU question right (RouteLLM's
  data). The answers' text is not in the set, so no check can judge one: the fixed rules accept
  every Mixtral answer. Costs are tiktoken (cl100k_base) counts of the question at list prices.
- banking77: the `sim` provider answers the training tickets, with item-dependent skill
  (`difficulty`: some intents are harder for every model) and informative logprobs.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BATCHROUTER_DATA_DIR", ROOT.parent / "shared" / "data"))
OUT = ROOT / ".batchrouter" / "bench" / "learning"
DOC = ROOT / "docs" / "learning.md"
START, END = "<!-- learning:results:start -->", "<!-- learning:results:end -->"
HOLDOUT, SEED = 0.3, 0

# USD per 1M tokens: OpenAI's list price of gpt-4-1106-preview; Together AI's list price of
# Mixtral-8x7B-Instruct (its serverless endpoint, early 2024). Output: one token (the letter).
MMLU_PRICES = {"mixtral": (0.60, 0.60), "gpt4": (10.0, 30.0)}
MMLU_MODELS = {
    "mixtral": "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "gpt4": "gpt-4-1106-preview",
}
MMLU_ROUTING = """\
deployments:
  mixtral: {{provider: replay, model: mixtral-8x7b, replay_file: {table}, prices: {{input: 0.60, output: 0.60}}}}
  gpt4: {{provider: replay, model: gpt-4-1106-preview, replay_file: {table}, prices: {{input: 10.0, output: 30.0}}}}
tiers:
  - {{name: cheap, deployments: [mixtral]}}
  - {{name: premium, deployments: [gpt4]}}
task_types:
  mmlu:
    prompt: "{{text}}"
    cache: false
    ladder:
      - cheap
      - tier: premium
        accept: {{best_effort: true}}
"""

BANKING_ROUTING = """\
deployments:
  small: {{provider: {provider}, model: sim-small, {where}prices: {{input: 0.15, output: 0.60}}}}
  large: {{provider: {provider}, model: sim-large, {where_large}prices: {{input: 2.50, output: 10.0}}}}
tiers:
  - {{name: cheap, deployments: [small]}}
  - {{name: premium, deployments: [large]}}
task_types:
  banking:
    system_prompt: "You classify banking customer queries. Answer with one intent label only."
    prompt: "Intents: {{labels}}\\n\\nQuery: {{text}}\\n\\nIntent:"
    checks: [{{kind: label, labels: {labels}}}]
    cache: false
    ladder:
      - cheap
      - tier: premium
        accept: {{best_effort: true}}
"""
SIM_SMALL = "sim: {skill: 0.80, difficulty: 2.5, logprobs: true, seed: 1}, "
SIM_LARGE = "sim: {skill: 0.94, difficulty: 1.0, logprobs: true, seed: 2}, "


def mmlu(folder: Path) -> tuple[Path, Path, Path]:
    """The MMLU outcomes as a replay table (score 1 right, 0 wrong), items, and routing file."""
    from routing.tokens import encode_len

    source = DATA / "routellm-mmlu"
    contaminated = set()
    for line in (source / "contaminated_prompts.jsonl").read_text().splitlines():
        if line.strip():
            contaminated.update(str(v).strip() for v in json.loads(line).values())
    rows, items, number = [], [], 0
    for path in sorted((source / "responses").glob("mmlu_*.csv")):
        subject = path.stem.removeprefix("mmlu_").replace("_", " ")
        with path.open(newline="", encoding="utf-8") as handle:
            for record in csv.DictReader(handle):
                prompt = record["prompt"]
                if prompt.strip() in contaminated:
                    continue
                number += 1
                item_id = f"m{number:05d}"
                # The subject is known from the file: part of the text the router reads.
                items.append({"id": item_id, "text": f"subject: {subject}\n{prompt}"})
                tokens = encode_len(prompt, "cl100k_base")
                for name, column in MMLU_MODELS.items():
                    right = record[column].strip() == "True"
                    model = "mixtral-8x7b" if name == "mixtral" else column
                    rows.append(
                        {"item_id": item_id, "model": model, "text": f"{name} answer",
                         "input_tokens": tokens, "output_tokens": 1, "score": float(right)}
                    )  # fmt: skip
    return _write(folder, "mmlu", rows, items, MMLU_ROUTING)


def banking77(folder: Path, split: str = "train") -> tuple[Path, Path, Path]:
    """The sim's answers to the BANKING77 tickets of `split`, recorded as a replay table."""
    from providers.sim import SimProvider
    from routing.config import parse_config
    from routing.types import CompletionRequest, RequestMeta

    source = DATA / "banking77"
    labels = json.loads((source / "categories.json").read_text())
    with (source / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
        tickets = list(csv.DictReader(handle))
    sim_text = BANKING_ROUTING.format(
        provider="sim", where=SIM_SMALL, where_large=SIM_LARGE, labels=json.dumps(labels)
    )
    config = parse_config(sim_text)
    task = config.task_type("banking")
    provider = SimProvider(time_scale=0.0)
    rows, items = [], []

    async def answer_all() -> None:
        from routing.prompts import render_messages

        for number, ticket in enumerate(tickets):
            item_id = f"b{number:05d}"
            items.append({"id": item_id, "text": ticket["text"], "expected": ticket["category"]})
            messages = render_messages(task, ticket["text"], {}, None)
            for name in ("small", "large"):
                deployment = config.deployments[name]
                meta = RequestMeta(item_key=item_id, expected=ticket["category"], labels=labels)
                request = CompletionRequest(
                    deployment=name, model=deployment.model, messages=messages, meta=meta
                )
                result = await provider.complete(request, deployment)
                rows.append(
                    {"item_id": item_id, "model": deployment.model, "text": result.text,
                     "input_tokens": result.usage.input_tokens,
                     "output_tokens": result.usage.output_tokens,
                     "logprobs": result.token_logprobs}
                )  # fmt: skip

    asyncio.run(answer_all())
    replay_text = BANKING_ROUTING.format(
        provider="replay",
        where="replay_file: {table}, ",
        where_large="replay_file: {table}, ",
        labels=json.dumps(labels),
    )
    return _write(folder, "banking", rows, items, replay_text)


def _write(
    folder: Path, name: str, rows: list[dict], items: list[dict], routing: str
) -> tuple[Path, Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    table, gold, config = (
        folder / f"{name}-{x}" for x in ("answers.jsonl", "items.jsonl", "routing.yaml")
    )
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    gold.write_text("".join(json.dumps(i) + "\n" for i in items))
    text = (
        routing.format(table=table) if "{{" in routing else routing.replace("{table}", str(table))
    )
    config.write_text(text)
    return config, table, gold


def compare(
    config: Path, task: str, table: Path, gold: Path, alphas: list[float]
) -> dict[str, Any]:
    """Fit at each alpha; evaluate the fixed rules, each fit and every model alone on the
    held-out items."""
    from batchrouter.evaluate import evaluate
    from batchrouter.learning import fit as fitting
    from batchrouter.learning.advise import escalation
    from batchrouter.learning.sources import from_table
    from routing.config import load_config, parse_config

    source = from_table(config, task, table, gold)
    ladder = fitting.ladder_of(load_config(config), task)
    rows: list[dict[str, Any]] = []
    result = None
    for alpha in alphas:
        result = fitting.fit(
            task, ladder, source.history, alpha=alpha, delta=0.05, holdout=HOLDOUT, seed=SEED
        )
        fitting.save(result, source.config_text, config.parent / "fitted", {"bench": task})
        assert result.routing_yaml is not None
        held_out = [h.item for h in result.held_out]
        row = evaluate(parse_config(result.routing_yaml), task, held_out, baselines=False)
        cascade = row.row("cascade")
        rules = "; ".join(
            f"{tier}: {c.rule.describe() if c.rule else 'skip the rung'}"
            for tier, c in result.plan.calibrated.items()
        )
        kept = any(c.rule for c in result.plan.calibrated.values())
        if result.plan.skip_below and kept:
            rules += f"; items scored below {result.plan.skip_below:g} start on the second rung"
        name = f"fitted, alpha {alpha:g}: {rules}"
        rows.append(_row(name, cascade, escalation(cascade), result.fitted))
    assert result is not None
    held_out = [h.item for h in result.held_out]
    everything = evaluate(load_config(config), task, held_out)
    fixed = everything.row("cascade")
    simulated = fitting.simulate(fitting.fixed_plan(ladder), result.held_out)
    rows.insert(0, _row("fixed rules (the file as written)", fixed, escalation(fixed), simulated))
    for single in everything.rows:
        if single.kind == "single":
            rows.append(_row(f"{single.name} alone", single, 0.0))
    top = max(r["cost_usd"] for r in rows if r["name"].endswith("alone"))
    for r in rows:
        r["cost_pct"] = 100 * r["cost_usd"] / top if top else 0.0
    return {
        "task": task,
        "items": len(held_out),
        "history": len(source.history),
        "rows": rows,
        "auc": router_auc(result.held_out, ladder[0]),
    }


def _row(name: str, row: Any, escalated: float, simulated: Any = None) -> dict[str, Any]:
    wrong = None
    if simulated is not None and simulated.accepted_below_top:
        wrong = (simulated.wrong_below_top, simulated.accepted_below_top)
    return {
        "name": name,
        "accuracy": row.accuracy,
        "cost_usd": row.cost_usd,
        "escalation": escalated,
        "wrong_below_top": wrong,
    }


def router_auc(held_out: list[Any], tier: str) -> float | None:
    """The router's AUC on the held-out items: the chance that it scores a random item the
    cheap rung gets right above a random one it gets wrong (ties count half)."""
    scored = sorted(
        (
            h.answers[tier].signals["router"],
            h.answers[tier].correct and h.answers[tier].passed_checks,
        )
        for h in held_out
        if tier in h.answers and "router" in h.answers[tier].signals
    )
    positives = sum(1 for _, good in scored if good)
    negatives = len(scored) - positives
    if not positives or not negatives:
        return None
    rank_sum, index = 0.0, 0
    while index < len(scored):
        end = index
        while end < len(scored) and scored[end][0] == scored[index][0]:
            end += 1
        rank_sum += (index + 1 + end) / 2 * sum(1 for _, good in scored[index:end] if good)
        index = end
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def render(results: list[dict[str, Any]], seconds: float) -> str:
    lines = [f"Last run: `python -m bench.learning`, {seconds:.0f} s.", ""]
    for result in results:
        auc = f"{result['auc']:.3f}" if result["auc"] is not None else "n/a"
        lines += [
            f"**{result['task']}**: {result['items']:,} held-out items of {result['history']:,} "
            f"(seed {SEED}, {HOLDOUT:.0%} held out); the router's AUC on them: {auc}.",
            "",
            "| rules | accuracy | cost (USD) | cost, % of the dearest model alone | escalated "
            "| wrong among answers accepted below the top rung |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in result["rows"]:
            wrong = r["wrong_below_top"]
            share = f"{100 * wrong[0] / wrong[1]:.1f}% of {wrong[1]:,}" if wrong else "-"
            lines.append(
                f"| {r['name']} | {100 * (r['accuracy'] or 0):.1f}% | {r['cost_usd']:.4f} | "
                f"{r['cost_pct']:.1f}% | {100 * r['escalation']:.1f}% | {share} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_doc(block: str) -> None:
    text = DOC.read_text()
    head, rest = text.split(START, 1)
    _old, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{block}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.learning")
    parser.add_argument("--only", default="mmlu,banking77")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("BATCHROUTER_SIM_TIME_SCALE", "0")
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    missing = [w for w in wanted if not (DATA / ("routellm-mmlu" if w == "mmlu" else w)).is_dir()]
    if missing:
        print(f"no data for {missing} in {DATA} (set BATCHROUTER_DATA_DIR)", file=sys.stderr)
        return 2
    started, results = time.perf_counter(), []
    if "mmlu" in wanted:
        config, table, gold = mmlu(OUT)
        results.append(compare(config, "mmlu", table, gold, [0.1, 0.2]))
    if "banking77" in wanted:
        config, table, gold = banking77(OUT)
        results.append(compare(config, "banking", table, gold, [0.02, 0.05]))
    block = render(results, time.perf_counter() - started)
    print(block)
    if not args.no_write:
        write_doc(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
