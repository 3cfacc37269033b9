"""Precision and recall of supersession detection on the constructed set.

Each pair goes through the real SDK into its own cube: the older statement at day 0, the
newer at day 30 (a ManualClock), both as the same user. The pair counts as detected when
the older record came out of `add` closed (valid_to set). Prints the confusion counts, the
precision and recall, and a line per family of cases.

    python -m memsvc.evals.bench_supersession [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta

from memsvc import ManualClock, Memory, Settings
from memsvc.evals.supersession_set import build_pairs

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    pairs = build_pairs()
    clock = ManualClock(T0)
    results: list[tuple[str, bool, bool, str, str]] = []
    with tempfile.TemporaryDirectory() as home:
        mem = Memory(settings=Settings(home=home, maintain_seconds=0), clock=clock)
        for i, p in enumerate(pairs):
            cube = f"pair-{i}"
            mem.create_cube(cube)
            clock.set(T0)
            old = mem.add(p.older, user_id="ana", cube=cube)[0]
            clock.set(T0 + timedelta(days=30))
            mem.add(p.newer, user_id="ana", cube=cube)
            closed = mem.get(old.id).valid_to is not None
            results.append((p.family, p.update, closed, p.older, p.newer))
        mem.close()
    tp = sum(u and c for _, u, c, _, _ in results)
    fp = sum(c and not u for _, u, c, _, _ in results)
    fn = sum(u and not c for _, u, c, _, _ in results)
    tn = sum(not u and not c for _, u, c, _, _ in results)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    n_up = sum(1 for r in results if r[1])
    print(f"pairs: {n_up} updates, {len(results) - n_up} non-updates")
    print(f"TP {tp}  FP {fp}  FN {fn}  TN {tn}")
    print(f"precision {precision:.3f}  recall {recall:.3f}")
    fams: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for fam, upd, closed, _, _ in results:
        fams[fam, upd] += 1
        hits[fam, upd] += closed
    print(f"{'family':18s} {'kind':10s} {'n':>4s} {'closed':>7s}")
    for (fam, upd), n in sorted(fams.items(), key=lambda x: (not x[0][1], x[0][0])):
        kind = "update" if upd else "near-miss"
        print(f"{fam:18s} {kind:10s} {n:4d} {hits[fam, upd]:7d}")
    misses = [r for r in results if r[1] != r[2]]
    for fam, upd, _, older, newer in misses[:12]:
        print(f"  {'missed' if upd else 'false'} [{fam}] {older!r} -> {newer!r}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision, "recall": recall},
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
