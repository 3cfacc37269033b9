"""Parametric tier benchmark: consolidate invented facts into a LoRA adapter and measure
what the model then knows without retrieved context.

    python -m memsvc.evals.bench_consolidate [--facts 100] [--steps 150] [--json OUT]

The facts are invented (people who do not exist, with one attribute each), so the base
model cannot know them. `Memory.consolidate` trains the adapter on them through the SDK.
Reported:
  - loss (mean NLL per token, and perplexity) of each fact as the answer to "What do you
    know about <name>?", base model vs adapter (the form the adapter was trained on);
  - loss of the bare value after a differently worded question ("What is <name>'s job?"),
    which the adapter never saw;
  - QA accuracy on those questions with no retrieved context (k=0): base vs adapter, and
    the base model with retrieval (k=3) for reference. An answer is right when it contains
    the value.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from memsvc import Memory, Settings
from memsvc.parametric import answer_ids, prompt_ids, question_for

_SYL = ["zor", "bla", "quen", "ter", "mir", "vant", "osk", "ob", "cren", "tam", "wex", "quil",
        "fen", "ard", "ys", "bran", "cor", "til", "perp", "ox", "hol", "varg", "dru", "mel",
        "sab", "rik", "lun", "gav", "tesh", "nor"]  # fmt: skip
ATTRIBUTES = [
    ("favourite colour is {v}", "What is {n}'s favourite colour?",
     ["teal", "mauve", "ochre", "crimson", "olive", "amber", "indigo", "saffron"]),
    ("works as a {v}", "What is {n}'s job?",
     ["lighthouse keeper", "glassblower", "beekeeper", "cartographer", "locksmith", "sommelier"]),
    ("has a pet {v}", "What pet does {n} have?",
     ["ferret", "tortoise", "parrot", "iguana", "hedgehog", "axolotl"]),
    ("plays the {v}", "What instrument does {n} play?",
     ["oboe", "cello", "banjo", "harp", "trombone", "accordion"]),
    ("collects {v}", "What does {n} collect?",
     ["stamps", "seashells", "typewriters", "teapots", "fossils", "postcards"]),
]  # fmt: skip


def invented_facts(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    names: set[str] = set()
    facts = []
    while len(facts) < n:
        first = "".join(rng.sample(_SYL, 2)).capitalize()
        last = "".join(rng.sample(_SYL, 3)).capitalize()
        name = f"{first} {last}"
        if name in names:
            continue
        names.add(name)
        stmt, question, values = ATTRIBUTES[len(facts) % len(ATTRIBUTES)]
        value = rng.choice(values)
        facts.append(
            {
                "name": name,
                "fact": f"{name} {stmt.format(v=value)}.",
                "question": question.format(n=name),
                "value": value,
            }
        )
    return facts


def run(n: int, steps: int, threads: int | None) -> dict[str, Any]:
    facts = invented_facts(n)
    with (
        tempfile.TemporaryDirectory() as home,
        Memory(settings=Settings(home=Path(home), lm_threads=threads)) as mem,
    ):
        mem.add([f["fact"] for f in facts], user_id="bench")
        lm = mem.local_lm
        trained_form = [
            (prompt_ids(lm, question_for(f["name"])), answer_ids(lm, f["fact"])) for f in facts
        ]
        other_form = [(prompt_ids(lm, f["question"]), lm.encode(f["value"])) for f in facts]
        before = lm.nll(trained_form)
        before_q = lm.nll(other_form)

        def qa(**kw: Any) -> float:
            right = 0
            for f in facts:
                g = mem.generate(f["question"], user_id="bench", max_tokens=24, **kw)
                right += f["value"].lower() in g.text.lower()
            return right / len(facts)

        base_acc = qa(k=0)
        rag_acc = qa(k=3)
        t0 = time.perf_counter()
        last = [0.0]

        def tick(step: int, total: int, loss: float) -> None:
            if step % 10 == 0 or step == total:
                print(f"step {step}/{total} loss {loss:.3f}", file=sys.stderr, flush=True)
            last[0] = loss

        rec = mem.consolidate(user_id="bench", steps=steps, progress=tick)
        seconds = time.perf_counter() - t0
        adapter_acc = qa(k=0, adapter=rec.id)  # loads the adapter onto the model
        after = lm.nll(trained_form, adapter=rec.id)
        after_q = lm.nll(other_form, adapter=rec.id)
    return {
        "facts": n,
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "examples": rec.metadata["training"]["examples"],
        "adapter_bytes": rec.source["bytes"],
        "loss_first_last": [rec.metadata["loss_curve"][0], rec.metadata["loss_curve"][-1]],
        "nll_facts_base": round(before, 3),
        "nll_facts_adapter": round(after, 3),
        "ppl_facts_base": round(math.exp(before), 2),
        "ppl_facts_adapter": round(math.exp(after), 2),
        "nll_value_after_question_base": round(before_q, 3),
        "nll_value_after_question_adapter": round(after_q, 3),
        "qa_base_no_context": base_acc,
        "qa_adapter_no_context": adapter_acc,
        "qa_base_with_retrieval_k3": rag_acc,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--facts", type=int, default=100)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    row = run(a.facts, a.steps, a.threads)
    print(json.dumps(row, indent=2))
    if a.json:
        a.json.write_text(json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
