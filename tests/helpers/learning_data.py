"""A recorded history with something to learn: items on eight topics, a cheap model that is
right on easy topics and often wrong (with a well-formed label no check can catch) on hard
ones, and a premium model that is nearly always right. Fixed seed: same files every run."""

from __future__ import annotations

import json
import random
from pathlib import Path

EASY = ["billing", "password", "delivery", "refund"]
HARD = ["fraud", "chargeback", "escrow", "sanctions"]
LABELS = ["x", "y", "z"]
CHEAP_COST, PREMIUM_COST = 0.001, 0.02

ROUTING = """\
deployments:
  cheap: {{provider: replay, model: m-cheap, replay_file: {table}, prices: {{input: 1, output: 1}}}}
  premium: {{provider: replay, model: m-premium, replay_file: {table}, prices: {{input: 1, output: 1}}}}
tiers:
  - {{name: t_cheap, deployments: [cheap]}}
  - {{name: t_premium, deployments: [premium]}}
task_types:
  mcq:
    prompt: "Answer x, y or z: {{text}}"
    checks: [{{kind: label, labels: [x, y, z]}}]
    cache: false
    ladder:
      - t_cheap
      - tier: t_premium
        accept: {{best_effort: true}}
"""


def write_history(
    folder: Path, count: int = 2000, seed: int = 1, audit_rate: float | None = None
) -> tuple[Path, Path, Path]:
    """(routing file, replay table, items file) in `folder`; with `audit_rate`, the task type
    also sends that share of the items accepted cheaply to the premium rung (routing/audit.py)."""
    rng = random.Random(seed)
    rows, items = [], []
    for number in range(count):
        topic = rng.choice(EASY + HARD)
        expected = rng.choice(LABELS)
        item_id = f"q{number:04d}"
        text = f"customer asks about {topic} case {number} {rng.choice(['today', 'again', 'now'])}"
        items.append({"id": item_id, "text": text, "expected": expected})
        cheap_right = rng.random() < (0.995 if topic in EASY else 0.35)
        premium_right = rng.random() < 0.97
        for model, right, cost in (
            ("m-cheap", cheap_right, CHEAP_COST),
            ("m-premium", premium_right, PREMIUM_COST),
        ):
            wrong = rng.choice([label for label in LABELS if label != expected])
            rows.append(
                {
                    "item_id": item_id,
                    "model": model,
                    "text": expected if right else wrong,
                    "input_tokens": 100,
                    "output_tokens": 1,
                    "cost_usd": cost,
                }
            )
    table, gold = folder / "answers.jsonl", folder / "items.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    gold.write_text("".join(json.dumps(i) + "\n" for i in items))
    routing = folder / "routing.yaml"
    text = ROUTING.format(table=table)
    if audit_rate is not None:
        text = text.replace(
            "    cache: false\n", f"    cache: false\n    audit: {{rate: {audit_rate}, seed: 1}}\n"
        )
    routing.write_text(text)
    return routing, table, gold
