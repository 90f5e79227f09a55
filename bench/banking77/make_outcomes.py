"""BANKING77 cascade evaluation on simulated recorded outcomes.

    .venv/bin/python -m bench.banking77.make_outcomes [--out DIR] [--doc docs/evaluation-banking77.md]

Reads the BANKING77 test split (3,080 banking queries, 77 intents) from a local copy (the folder named by BANKING77_DIR, holding test.csv)
(or $BANKING77_DIR) in place, never copying it. It then *simulates* what ten priced models would
have answered, writes that as a replay table with a routing file and a gold file into DIR
(default .batchrouter/bench/banking77, not committed), runs `batchrouter evaluate` on it (the
worker's own inner loop with the `replay` provider), and writes the tables to the doc.

The outcomes are simulated, not recorded from real models. Each model has a price and a skill
(its accuracy). Errors are correlated across models (some queries are hard for everyone): a
per-item difficulty and a per-(model, item) draw are mixed in a Gaussian copula, so a model's
accuracy is its skill while cheap and expensive models tend to fail the same items. A wrong
answer is, by the model's tendencies, a malformed answer (prose, "unknown", empty, an invented
label: the label check catches these), a confusion with a similar intent (by shared words in the
intent names), or another intent at random (no format check can catch those two). Each answer
carries token logprobs, lower on wrong answers with a wide overlap, for the logprob cascade.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "banking77"
DEFAULT_OUT = ROOT / ".batchrouter" / "bench" / "banking77"
DEFAULT_DOC = ROOT / "docs" / "evaluation-banking77.md"
CORRELATION = 0.55  # share of a model's error draw that is the item's shared difficulty
SYSTEM_PROMPT = "You classify banking customer queries. Answer with one intent label only."
PROMPT = "Intents: {labels}\n\nQuery: {text}\n\nIntent:"


@dataclass(frozen=True)
class SimModel:
    name: str
    input_price: float  # USD per 1M tokens
    output_price: float
    skill: float  # probability of the right intent
    malformed: float  # share of its wrong answers that break the format
    similar: float  # share of the rest that pick a similar intent (vs any other)


MODELS = [
    SimModel("nano-1", 0.05, 0.20, 0.60, 0.45, 0.70),
    SimModel("nano-2", 0.10, 0.40, 0.68, 0.40, 0.70),
    SimModel("small-1", 0.15, 0.60, 0.73, 0.35, 0.72),
    SimModel("small-2", 0.25, 1.00, 0.77, 0.30, 0.75),
    SimModel("mini-1", 0.40, 1.60, 0.82, 0.25, 0.78),
    SimModel("mini-2", 0.60, 2.40, 0.84, 0.25, 0.80),
    SimModel("mid-1", 1.00, 4.00, 0.87, 0.20, 0.82),
    SimModel("mid-2", 2.00, 8.00, 0.89, 0.15, 0.85),
    SimModel("large-1", 3.00, 15.00, 0.91, 0.10, 0.88),
    SimModel("premium-1", 5.00, 25.00, 0.93, 0.08, 0.90),
]
CASCADE = ["nano-2", "mini-1", "premium-1"]


def data_dir() -> Path:
    return Path(os.environ.get("BANKING77_DIR") or DEFAULT_DATA)


def load_dataset(directory: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(id, text, intent) rows of the test split, and the 77 intents."""
    labels = json.loads((directory / "categories.json").read_text(encoding="utf-8"))
    rows = []
    with (directory / "test.csv").open(encoding="utf-8", newline="") as handle:
        for index, record in enumerate(csv.DictReader(handle), start=1):
            rows.append((f"b77-{index:04d}", record["text"], record["category"]))
    return rows, labels


def _uniform(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / 2**64


def similar_intents(labels: list[str], top: int = 3) -> dict[str, list[str]]:
    """For each intent, the intents whose names share the most words (BANKING77's confusions
    are mostly of this kind: card_arrival / card_delivery_estimate, top_up_failed / ...)."""
    words = {
        label: set(label.lower().strip("?").split("_")) - {"or", "and", "my"} for label in labels
    }
    out = {}
    for label in labels:
        scored = sorted(
            (-len(words[label] & words[other]) / len(words[label] | words[other]), other)
            for other in labels
            if other != label
        )
        out[label] = [other for _, other in scored[:top]]
    return out


def answer(
    model: SimModel, item_id: str, gold: str, labels: list[str], near: list[str]
) -> tuple[str, bool]:
    """The simulated answer and whether it is right."""
    z_item = statistics.NormalDist().inv_cdf(_uniform("difficulty", item_id))
    z_own = statistics.NormalDist().inv_cdf(_uniform(model.name, item_id))
    z = math.sqrt(CORRELATION) * z_item + math.sqrt(1 - CORRELATION) * z_own
    rng = random.Random(f"{model.name}|{item_id}")
    if statistics.NormalDist().cdf(z) < model.skill:
        spelled = rng.choice([gold, gold, gold, gold.replace("_", " "), gold.capitalize() + "."])
        return spelled, True
    if rng.random() < model.malformed:
        pretty = gold.replace("_", " ")
        return rng.choice(
            [
                f"This query is probably about {pretty}, or maybe {rng.choice(near).replace('_', ' ')}.",
                "unknown",
                "",
                f"{gold.split('_')[0]}_issue",
                "I'm sorry, but I can't determine the intent of this query.",
            ]
        ), False
    if rng.random() < model.similar:
        return rng.choice(near), False
    return rng.choice([label for label in labels if label != gold]), False


def token_logprobs(model: SimModel, item_id: str, right: bool, tokens: int) -> list[float]:
    """Per-token logprobs. The answer's first token carries the model's confidence, a
    logit-normal draw centred on p=0.88 when right and p=0.5 when wrong (sd 1.2 in logits), so
    the two overlap widely; the other tokens of a label are near-certain."""
    rng = random.Random(f"logprobs|{model.name}|{item_id}")
    logit = rng.gauss(2.0 if right else 0.0, 1.2)
    first = -math.log1p(math.exp(-logit))  # log(sigmoid(logit))
    rest = [-abs(rng.gauss(0.0, 0.02)) for _ in range(max(tokens, 1) - 1)]
    return [round(value, 4) for value in [first, *rest]]


def routing_yaml(labels: list[str], table: str) -> str:
    deployments = []
    for m in MODELS:
        deployments.append(
            f"  {m.name}:\n    provider: replay\n    model: sim-{m.name}\n"
            f"    replay_file: {table}\n"
            f"    prices: {{input: {m.input_price}, output: {m.output_price}}}\n"
            "    max_output_tokens: 32"
        )
    tiers = "\n".join(f"  - {{name: {m.name}, deployments: [{m.name}]}}" for m in MODELS)
    label_list = json.dumps(labels)
    ladder = json.dumps(CASCADE)
    checks = (
        f"    checks:\n      - kind: non_empty\n      - {{kind: label, labels: {label_list}}}\n"
    )
    common = (
        f"    system_prompt: {json.dumps(SYSTEM_PROMPT)}\n"
        f"    prompt: {json.dumps(PROMPT)}\n"
        "    max_attempts: 6\n"
    )
    return (
        "# Generated by bench/banking77/make_outcomes.py: simulated outcomes, replayed.\n"
        "deployments:\n" + "\n".join(deployments) + "\n"
        "tiers:\n" + tiers + "\n"
        "task_types:\n"
        f"  banking77:\n    ladder: {ladder}\n"
        + common
        + checks
        + f"  banking77_logprob:\n    ladder: {ladder}\n"
        + common
        + checks
        + "      - {kind: logprob, measure: min, min_prob: 0.55}\n"
    )


def generate(out: Path, directory: Path) -> tuple[Path, Path]:
    """Write outcomes.jsonl, gold.jsonl and routing.yaml into `out`; return (routing, gold)."""
    from routing.config import parse_config
    from routing.prompts import render_messages
    from routing.replay_table import write_replay_rows
    from routing.tokens import count_message_tokens, count_text_tokens

    rows, labels = load_dataset(directory)
    near = similar_intents(labels)
    out.mkdir(parents=True, exist_ok=True)
    routing = out / "routing.yaml"
    routing.write_text(routing_yaml(labels, "outcomes.jsonl"), encoding="utf-8")
    config = parse_config(routing.read_text(encoding="utf-8"), str(routing))
    task = config.task_type("banking77")
    gold = out / "gold.jsonl"
    with gold.open("w", encoding="utf-8") as handle:
        for item_id, text, intent in rows:
            handle.write(json.dumps({"id": item_id, "text": text, "expected": intent}) + "\n")

    def outcome_rows():  # type: ignore[no-untyped-def]
        for item_id, text, intent in rows:
            prompt_tokens = count_message_tokens(render_messages(task, text), "gpt-4o")
            for model in MODELS:
                said, right = answer(model, item_id, intent, labels, near[intent])
                out_tokens = (count_text_tokens(said, "gpt-4o") if said else 0) + 1
                yield {
                    "item_id": item_id,
                    "model": f"sim-{model.name}",
                    "text": said,
                    "input_tokens": prompt_tokens,
                    "output_tokens": out_tokens,
                    "logprobs": token_logprobs(model, item_id, right, out_tokens - 1),
                }

    write_replay_rows(out / "outcomes.jsonl", outcome_rows())
    return routing, gold


def write_doc(doc: Path, out: Path, tables: dict[str, str], seconds: float, items: int) -> None:
    models = "\n".join(
        f"| {m.name} | ${m.input_price:g} / ${m.output_price:g} | {100 * m.skill:.0f}% | "
        f"{100 * m.malformed:.0f}% | {100 * m.similar:.0f}% |"
        for m in MODELS
    )
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(
        f"""# BANKING77: a three-tier cascade against ten single models

**The model outcomes on this page are simulated, not recorded from real models.** The queries
and gold intents are real (the BANKING77 test split: {items:,} customer queries, 77 intents,
CC BY 4.0, read from a local copy of the data set named by `BANKING77_DIR`); what each model answered was generated
by `bench/banking77/make_outcomes.py` from a price and a skill per model. The page shows what
the evaluation machinery reports, and how a cascade with format checks behaves when errors
are correlated across models; it says nothing about any real model's accuracy on BANKING77.
To evaluate real models, record their answers (a batch run, then
`python -m ledger.replay_export`) and run the same command on that table
(see [replay-and-evaluation.md](replay-and-evaluation.md)).

## Reproduce

```
.venv/bin/python -m bench.banking77.make_outcomes
```

It writes the outcomes table, the routing file and the gold file into
`{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}` (not committed), runs
`batchrouter evaluate` on them, and rewrites this page. Set `BANKING77_DIR` if the data set
lives elsewhere. The evaluation itself:

```
batchrouter evaluate --config {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/routing.yaml --type banking77 \\
    --items {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/gold.jsonl --format markdown
```

Both evaluations below (cascade plus ten single models each, {items:,} items) took
{seconds:.1f} s together on this machine.

## The simulated models

Prices are USD per 1M input / output tokens. Skill is the share of right answers. A wrong answer
is malformed (prose, "unknown", empty, an invented label, a refusal) with the given share, else
a similar intent (names sharing words, e.g. `card_arrival` for `card_delivery_estimate`) with
the given share, else any other intent. Errors are correlated across models (Gaussian copula,
{CORRELATION:.2f} of the draw is a per-query difficulty). Token usage is the real o200k count of the
prompt (the 77 intents plus the query, about 430 tokens) and of the answer.

| model | price in / out | skill | malformed | similar intent |
| --- | ---: | ---: | ---: | ---: |
{models}

## Cascade with format checks: `nano-2 > mini-1 > premium-1`

Checks: `non_empty` and `label` (one of the 77 intents, after normalising case, spaces and
punctuation). An item escalates only when the answer is malformed; a well-formed wrong intent
passes, so the cascade's accuracy is bounded by what format checks can catch.

{tables["banking77"]}
## Adding a logprob check

The same ladder with `{{kind: logprob, measure: min, min_prob: 0.55}}` after the format checks:
an answer whose least likely token has p < 0.55 escalates too. The simulated logprobs are lower
on wrong answers but overlap with right ones, so this trades extra escalations (cost) for
catching some well-formed wrong intents (accuracy). The single-model rows include the logprob
check as well, so a model alone fails its low-confidence answers.

{tables["banking77_logprob"]}
## How to read it

- **accuracy**: items that ended succeeded with the gold intent; an item whose answer failed
  its checks on its last tier counts as wrong.
- **cost**: every call, escalated and failed ones included, priced from the recorded usage.
- **% of ref.**: relative to the most expensive single model (`premium-1`).
- **escalated per tier**: share of the items reaching a tier that it passed up the ladder.
""",
        encoding="utf-8",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the tables go")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="markdown page to write")
    parser.add_argument("--no-doc", action="store_true", help="print only, leave the doc alone")
    args = parser.parse_args(argv)
    directory = data_dir()
    if not (directory / "test.csv").is_file():
        print(f"error: BANKING77 not found in {directory} (set BANKING77_DIR)", file=sys.stderr)
        return 2
    from batchrouter.evaluate import evaluate_files
    from batchrouter.reports.evaluation import render_markdown

    routing, gold = generate(args.out, directory)
    started = time.perf_counter()
    tables = {}
    items = 0
    for task in ("banking77", "banking77_logprob"):
        result = evaluate_files(routing, task, gold)
        items = result.items
        tables[task] = render_markdown(result)
        print(tables[task])
    seconds = time.perf_counter() - started
    print(f"evaluated in {seconds:.1f} s", file=sys.stderr)
    if not args.no_doc:
        write_doc(args.doc, args.out.resolve(), tables, seconds, items)
        print(f"wrote {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
