"""Speed of the contamination report (`rft.envs.overlap`, `rft task overlap`) on GSM8K train x MATH.

Texts: every GSM8K train question (7,473) as the train side and every MATH problem in math_dev.jsonl (4,500)
as the held-out side, then the other way round. Anchor: tokenising both sides once with `words` (the floor
of any text comparison). Rows: building the `OverlapIndex` (exact keys, 13-grams, number-normalised
shingles), matching every held-out text (exact, near with difflib on at most 5 candidates, 13-gram), the
older `find_overlaps` (exact and 13-gram only), and difflib against every train text without the index,
timed on a sample and scaled to the whole held-out side. Needs the shared data folder ($RFT_DATA or
../shared/data).
Run: python bench/contamination.py [--sample 10]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=10, help="held-out texts timed for the brute-force row")
    args = ap.parse_args()

    from rft.envs import data_dir, find_overlaps
    from rft.envs.contamination import OverlapIndex, normalised, similarity, words

    folder = data_dir()
    if folder is None or not (folder / "gsm8k_train.jsonl").is_file():
        raise SystemExit("needs the shared data folder: set RFT_DATA to the folder holding gsm8k_train.jsonl")

    def read(name: str, key: str) -> list[str]:
        return [json.loads(line)[key] for line in (folder / name).open()]

    gsm = read("gsm8k_train.jsonl", "question")
    math = read("math_dev.jsonl", "problem")
    rows = []
    for label, train, held in (("GSM8K train -> MATH", gsm, math), ("MATH -> GSM8K train", math, gsm)):
        anchor, _ = timed(lambda tr=train, he=held: [words(t) for t in tr + he])
        build, index = timed(lambda tr=train: OverlapIndex(tr))
        query, found = timed(lambda ix=index, he=held: [m for t in he if (m := ix.match(t))])
        older, _ = timed(lambda tr=train, he=held: find_overlaps(tr, he))
        norm = [tuple(normalised(t)) for t in train]
        sample = held[: args.sample]
        brute, _ = timed(lambda s=sample, nm=norm: [max(similarity(normalised(t), x) for x in nm) for t in s])
        brute *= len(held) / len(sample)
        kinds = {k: sum(m.kind == k for m in found) for k in ("exact", "near", "ngram")}
        rows.append((label, len(train), len(held), anchor, build, query, older, brute, kinds))

    head = ("texts (train -> held-out)", "train", "held", "anchor: tokenise", "index", "match all",
            "index+match", "find_overlaps", "brute difflib (est.)", "found")  # fmt: skip
    print(" | ".join(head))
    for label, nt, nh, anchor, build, query, older, brute, kinds in rows:
        cells = [label, str(nt), str(nh), f"{anchor:.2f} s (1.00x)"]
        cells += [f"{x:.2f} s ({x / anchor:.2f}x)" for x in (build, query, build + query, older, brute)]
        print(" | ".join([*cells, ", ".join(f"{k} {v}" for k, v in kinds.items())]))
    total = rows[0][4] + rows[0][5]
    print(f"overlap_seconds_gsm8k_train_x_math={total:.2f} ratio_to_tokenise={total / rows[0][3]:.2f}")


if __name__ == "__main__":
    main()
