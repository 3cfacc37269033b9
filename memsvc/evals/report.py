"""report.md and PNG plots from a results dict (results.json), with matplotlib."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memsvc.evals.locomo import CATEGORIES

__all__ = ["write_report"]


def _f(x: float | None, scale: float = 100.0) -> str:
    return "-" if x is None else f"{x * scale:.1f}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def write_report(out: Path, results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    if results["benchmark"] == "locomo":
        text = _locomo_md(results)
        _locomo_plots(out, results)
    else:
        text = _lme_md(results)
        _lme_plots(out, results)
    text += _latency_md(results)
    _latency_plot(out, results)
    (out / "report.md").write_text(text)


def _header(results: dict[str, Any], title: str) -> str:
    ds = results["dataset"]
    cfg = results["config"]
    lines = [
        f"# {title}",
        "",
        f"- data: `{ds['path']}` (sha256 `{ds['sha256'][:16]}…`)",
        f"- systems: {', '.join(cfg['systems'])}; mode: {cfg['mode']}; run {results['created_at']}",
    ]
    if ds.get("official") is not None or results["benchmark"] == "longmemeval":
        lines.append(f"- official file: {ds.get('official') or 'no (unknown file)'}")
    return "\n".join(lines) + "\n\n"


def _locomo_md(results: dict[str, Any]) -> str:
    agg = results["aggregates"]
    ks = results["ks"]
    cats = list(CATEGORIES.values())
    ds = results["dataset"]
    text = _header(results, "LoCoMo evaluation")
    text += (
        f"{len(ds['conversations'])} conversations ({', '.join(ds['conversations'])}), "
        f"{ds['turns']} turns, {ds['questions']} questions.\n\n"
    )
    for key, title in (
        ("recall", "Evidence recall@k (official: evidence as written, empty = 1.0)"),
        ("repaired_recall", "Evidence recall@k, repaired evidence (questions with valid ids)"),
    ):
        for k in ks:
            text += f"## {title}, k = {k}\n\n| system | overall | categories 1-4 | "
            text += " | ".join(cats) + " | n |\n|---|---|---|" + "---|" * len(cats) + "---|\n"
            for name, a in agg.items():
                t = a[f"{key}@{k}"]
                text += f"| {name} | {_f(t['overall'])} | {_f(t.get('overall_1_4'))} | "
                text += " | ".join(_f(t.get(c)) for c in cats) + f" | {t['n']} |\n"
            text += "\n"
    text += "## Retrieved context (tokens per question, mean)\n\n| system | "
    text += " | ".join(f"k={k}" for k in ks) + " |\n|---|" + "---|" * len(ks) + "\n"
    for name, a in agg.items():
        text += (
            f"| {name} | "
            + " | ".join(
                "-" if a[f"context_tokens@{k}"] is None else f"{a[f'context_tokens@{k}']:.0f}"
                for k in ks
            )
            + " |\n"
        )
    text += "\n"
    if any("qa" in a for a in agg.values()):
        text += _locomo_qa_md(results)
    return text


def _locomo_qa_md(results: dict[str, Any]) -> str:
    agg = results["aggregates"]
    cats = list(CATEGORIES.values())
    qa_cfg = results.get("qa_config", {})
    text = (
        f"## QA (answer model: {qa_cfg.get('answer_model')}, "
        f"judge: {qa_cfg.get('judge_model')})\n\n"
    )
    text += "### Official LoCoMo token F1 (all categories)\n\n| system | overall | "
    text += " | ".join(cats) + " |\n|---|---|" + "---|" * len(cats) + "\n"
    for name, a in agg.items():
        q = a.get("qa", {}).get("official_f1", {})
        text += (
            f"| {name} | {_f(q.get('overall'))} | "
            + " | ".join(_f(q.get(c)) for c in cats)
            + " |\n"
        )
    text += (
        "\n### mem0-style protocol (category 5 skipped; set-based F1, BLEU-1, LLM judge)\n\n"
        "| system | F1 | BLEU-1 | judge accuracy | n |\n|---|---|---|---|---|\n"
    )
    for name, a in agg.items():
        m = a.get("qa", {}).get("mem0_style", {})
        text += (
            f"| {name} | {_f(m.get('f1'))} | {_f(m.get('bleu1'))} | "
            f"{_f(m.get('judge_accuracy'))} | {m.get('n', 0)} |\n"
        )
    return text + "\n"


def _lme_md(results: dict[str, Any]) -> str:
    agg = results["aggregates"]
    ds = results["dataset"]
    text = _header(results, "LongMemEval evaluation")
    text += (
        f"{ds['questions']} questions, {ds['scored_questions']} scored (abstention questions and "
        f"questions without a user-side evidence turn are skipped), granularity "
        f"{results['config']['granularity']}.\n\n"
        "recall_all@k is the paper's Recall@k (every evidence item in the top k); recall_any@k "
        "(any one of them) is the much higher figure some vendors quote.\n\n"
    )
    for level in ("session", "turn"):
        if not any(level in a for a in agg.values()):
            continue
        text += (
            f"## {level} level\n\n| system | metric | "
            + " | ".join(f"@{k}" for k in (1, 3, 5, 10, 30, 50))
            + " |\n|---|---|"
            + "---|" * 6
            + "\n"
        )
        for name, a in agg.items():
            if level not in a:
                continue
            for metric in ("recall_all", "recall_any", "ndcg_any"):
                text += (
                    f"| {name} | {metric} | "
                    + " | ".join(_f(a[level].get(f"{metric}@{k}")) for k in (1, 3, 5, 10, 30, 50))
                    + " |\n"
                )
        text += "\n"
    text += _lme_by_type_md(agg)
    text += "## Per question (seconds, mean)\n\n| system | ingest | query |\n|---|---|---|\n"
    for name, a in agg.items():
        text += (
            f"| {name} | {_ms(a['ingest_seconds_per_question'])} | "
            f"{a['query_seconds_per_question']:.4f} |\n"
        )
    text += "\n"
    if any("qa" in a for a in agg.values()):
        text += "## QA (judge protocol per question type)\n\n| system | overall | "
        text += "task-averaged | abstention | n |\n|---|---|---|---|---|\n"
        for name, a in agg.items():
            q = a.get("qa", {})
            text += (
                f"| {name} | {_f(q.get('overall'))} | {_f(q.get('task_averaged'))} | "
                f"{_f(q.get('abstention'))} | {q.get('n', 0)} |\n"
            )
        text += "\n"
    return text


_TYPE_KS = (1, 3, 5, 10)
_METRICS = ("recall_any", "recall_all", "ndcg_any")


def _lme_by_type_md(agg: dict[str, Any]) -> str:
    """The official metrics at k = 1, 3, 5, 10 for each question type, system and level."""
    text = ""
    for level in ("session", "turn"):
        rows = [
            (qt, name, by[level])
            for name, a in agg.items()
            for qt, by in sorted(a.get("by_type", {}).items())
            if level in by
        ]
        if not rows:
            continue
        cols = [f"{m}@{k}" for m in _METRICS for k in _TYPE_KS]
        text += f"## {level} level by question type\n\n| type | system | " + " | ".join(cols)
        text += " |\n|---|---|" + "---|" * len(cols) + "\n"
        for qt, name, vals in sorted(rows, key=lambda r: (r[0], list(agg).index(r[1]))):
            text += f"| {qt} | {name} | " + " | ".join(_f(vals.get(c)) for c in cols) + " |\n"
        text += "\n"
    return text


def _latency_md(results: dict[str, Any]) -> str:
    text = "## Latency (this machine)\n\n| system | add p50 ms | add p95 ms | recall p50 ms | "
    text += "recall p95 ms | ingest s (total) |\n|---|---|---|---|---|---|\n"
    for name, lat in results["latency"].items():
        text += (
            f"| {name} | {_ms(lat['add_p50_ms'])} | {_ms(lat['add_p95_ms'])} | "
            f"{_ms(lat['recall_p50_ms'])} | {_ms(lat['recall_p95_ms'])} | "
            f"{lat['ingest_seconds_total']:.1f} |\n"
        )
    if any("first_recall_p95_ms" in lat for lat in results["latency"].values()):
        text += (
            "\nRecall here is an agent's recall (k = 10) on a cube already recalled once; the "
            "first recall after loading a haystack (index and side-index build included) "
            "costs:\n\n| system | first recall p50 ms | first recall p95 ms |\n|---|---|---|\n"
        )
        for name, lat in results["latency"].items():
            text += (
                f"| {name} | {_ms(lat.get('first_recall_p50_ms'))} | "
                f"{_ms(lat.get('first_recall_p95_ms'))} |\n"
            )
    text += (
        "\nPlots: " + ", ".join(f"`{p}`" for p in sorted(["recall_at_k.png", "latency.png"])) + "\n"
    )
    return text


def _locomo_plots(out: Path, results: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    agg = results["aggregates"]
    ks = results["ks"]
    panels = ["overall", *CATEGORIES.values()]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), sharey=True)
    for ax, panel in zip(axes.flat, panels, strict=True):
        for name, a in agg.items():
            ys = [a[f"recall@{k}"].get(panel) for k in ks]
            if all(y is not None for y in ys):
                ax.plot(ks, [100 * y for y in ys], marker="o", label=name)
        ax.set_title(panel)
        ax.set_xlabel("k")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.grid(alpha=0.3)
    axes.flat[0].set_ylabel("evidence recall@k (%)")
    axes.flat[3].set_ylabel("evidence recall@k (%)")
    axes.flat[0].legend()
    fig.suptitle("LoCoMo evidence recall@k (official) per category")
    fig.tight_layout()
    fig.savefig(out / "recall_at_k.png", dpi=110)
    plt.close(fig)


def _lme_plots(out: Path, results: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    agg = results["aggregates"]
    ks = results["ks"]
    levels = [lv for lv in ("session", "turn") if any(lv in a for a in agg.values())]
    fig, axes = plt.subplots(1, len(levels), figsize=(6 * len(levels), 4.5), squeeze=False)
    for ax, level in zip(axes[0], levels, strict=True):
        for name, a in agg.items():
            if level in a:
                ax.plot(
                    ks,
                    [100 * (a[level][f"recall_all@{k}"] or 0) for k in ks],
                    marker="o",
                    label=f"{name} recall_all",
                )
                ax.plot(
                    ks,
                    [100 * (a[level][f"recall_any@{k}"] or 0) for k in ks],
                    ls="--",
                    label=f"{name} recall_any",
                )
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_title(f"{level} level")
        ax.set_xlabel("k")
        ax.set_ylabel("%")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("LongMemEval recall@k")
    fig.tight_layout()
    fig.savefig(out / "recall_at_k.png", dpi=110)
    plt.close(fig)


def _latency_plot(out: Path, results: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, lat in results["latency"].items():
        if lat["recall_ms"]:
            ax.hist(lat["recall_ms"], bins=40, alpha=0.55, label=name)
    ax.set_xlabel("recall latency (ms)")
    ax.set_ylabel("queries")
    ax.set_title("Query latency per system")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)
