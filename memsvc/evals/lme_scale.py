"""A LongMemEval-shaped file of synthetic haystacks, for timing the runner at full size.

    python -m memsvc.evals.lme_scale --questions 500 --pool 4000 --out /tmp/lme_synth.json
    memsvc eval longmemeval --data /tmp/lme_synth.json --out runs/scale

No LongMemEval data can ship here, so this measures cost only: every question gets 48 sessions
drawn from a shared pool (haystack sessions repeat across questions, as in the real files) plus
1-3 evidence sessions, with LoCoMo turns and generated sentences as text. Its recall figures mean
nothing (questions are random turns); the runner also says the file is not an official one.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path

from memsvc.evals.corpus import generated_sentences, locomo_turns


def synthetic_longmemeval(questions: int, pool: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    texts = locomo_turns() + generated_sentences(20_000, seed=seed + 1)

    def text(n: int) -> str:
        return " ".join(rng.choice(texts) for _ in range(n))

    def session(n_turns: int) -> list[dict]:
        return [
            {"role": "user" if t % 2 == 0 else "assistant", "content": text(3 if t % 2 == 0 else 6)}
            for t in range(n_turns)
        ]

    sessions = [(f"sess_{i}", session(rng.randint(8, 14))) for i in range(pool)]
    out = []
    for qi in range(questions):
        evidence = [
            (
                f"answer_q{qi}_{j}",
                [
                    {"role": "user", "content": text(3), "has_answer": True},
                    {"role": "assistant", "content": text(6)},
                ],
            )
            for j in range(rng.randint(1, 3))
        ]
        hay = rng.sample(sessions, min(48, pool)) + evidence
        rng.shuffle(hay)
        out.append(
            {
                "question_id": f"synthetic_{qi}",
                "question_type": "multi-session",
                "question": rng.choice(texts),
                "answer": "synthetic",
                "question_date": "2023/05/30 (Tue) 23:40",
                "haystack_session_ids": [sid for sid, _ in hay],
                "haystack_dates": ["2023/05/20 (Sat) 09:15"] * len(hay),
                "haystack_sessions": [s for _, s in hay],
                "answer_session_ids": [sid for sid, _ in evidence],
            }
        )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--pool", type=int, default=4000, help="distinct haystack sessions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    args.out.write_text(json.dumps(synthetic_longmemeval(args.questions, args.pool, args.seed)))
    print(f"wrote {args.questions} synthetic questions to {args.out}")


if __name__ == "__main__":
    main()
