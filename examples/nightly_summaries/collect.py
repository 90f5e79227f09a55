"""Turn a folder of .txt documents into a JSONL batch for the `summarization` task type.

    python -m examples.nightly_summaries.collect /data/docs /tmp/nightly.jsonl

Each file becomes `{"id": "<file name>", "text": "<contents>"}`. Files too short to be worth a
summary are skipped and listed on stderr: the routing file's length check wants a summary of
8+ words and at most half the document, which a document under MIN_WORDS words cannot meet, so
sending it would only pay three tiers to fail. Exit codes: 0 written, 2 no usable document.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MIN_WORDS = 40


def collect_folder(folder: Path, out: Path, min_words: int = MIN_WORDS) -> tuple[int, list[str]]:
    """Write the JSONL batch; return (documents written, names skipped)."""
    written, skipped = 0, []
    with out.open("w", encoding="utf-8") as handle:
        for path in sorted(folder.glob("*.txt")):
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            if len(text.split()) < min_words:
                skipped.append(path.name)
                continue
            handle.write(json.dumps({"id": path.name, "text": text}, ensure_ascii=False) + "\n")
            written += 1
    return written, skipped


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(
            "usage: python -m examples.nightly_summaries.collect FOLDER OUT.jsonl", file=sys.stderr
        )
        return 2
    folder, out = Path(args[0]), Path(args[1])
    if not folder.is_dir():
        print(f"error: {folder}: not a folder", file=sys.stderr)
        return 2
    written, skipped = collect_folder(folder, out)
    for name in skipped:
        print(f"skipped {name}: shorter than {MIN_WORDS} words", file=sys.stderr)
    print(f"{written} documents -> {out}", file=sys.stderr)
    return 0 if written else 2


if __name__ == "__main__":
    sys.exit(main())
