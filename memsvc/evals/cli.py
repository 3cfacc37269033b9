"""The `memsvc eval` commands, registered with the CLI by this package.

`memsvc.cli` finds `register` through the `memsvc.cli` entry point group (pyproject.toml), so
the core CLI never imports the evals.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from memsvc.cli.common import out
from memsvc.errors import MemsvcError


def register(app: typer.Typer) -> None:
    """Add the `eval` group to the `memsvc` command."""
    app.add_typer(eval_app, name="eval")


eval_app = typer.Typer(
    help="Measure retrieval (and QA) on LoCoMo and LongMemEval beside plain baselines.",
    no_args_is_help=True,
)

EvalData = Annotated[Path, typer.Option("--data", help="The benchmark's JSON file.")]
EvalOut = Annotated[
    Path, typer.Option("--out", help="Directory for results.json, report.md, plots.")
]
EvalSystems = Annotated[
    list[str] | None,
    typer.Option(
        "--system",
        help="memsvc, memsvc+forgetting (ingest at the sessions' dates, maintain after each), "
        "bm25, dense, or memsvc:<recipe> such as memsvc:fast or memsvc:dense=1+keyword=1 "
        "(repeat or comma-separate; default memsvc, bm25, dense).",
    ),
]
EvalK = Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")]
EvalMode = Annotated[str, typer.Option("--mode", help="retrieval, or qa (answer + judge).")]
EvalServer = Annotated[
    str | None,
    typer.Option("--server", help="Evaluate a running memsvc (key from MEMSVC_API_KEY)."),
]
LlmUrl = Annotated[
    str | None,
    typer.Option("--llm-base-url", help="OpenAI-compatible endpoint (default: the local LM)."),
]
LlmModel = Annotated[
    str | None,
    typer.Option("--llm-model", help="Model name at the endpoint, or a local model path."),
]
LlmKeyEnv = Annotated[
    str, typer.Option("--llm-api-key-env", help="Env var holding the endpoint's API key.")
]
JudgeModel = Annotated[
    str | None, typer.Option("--judge-model", help="Judge model (default: the answer model).")
]
QaK = Annotated[int, typer.Option("--qa-k", help="Memories the answer model reads.")]
CacheDir = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Embedding cache (default ~/.cache/memsvc/eval)."),
]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise typer.BadParameter(f"--k must be comma-separated integers, not {text!r}") from None
    if not ks or ks[0] < 1:
        raise typer.BadParameter("--k values must be positive")
    return ks


def _run_eval(kind: str, **fields: Any) -> None:
    if importlib.util.find_spec("matplotlib") is None:  # checked before hours of work, not after
        typer.echo(
            "error: memsvc eval draws its plots with matplotlib: pip install 'memsvc[evals]'",
            err=True,
        )
        raise typer.Exit(1)
    from memsvc.evals.locomo import LocomoError
    from memsvc.evals.longmemeval import LongMemEvalError
    from memsvc.evals.runner import EvalConfig, EvalSystemError, run_locomo, run_longmemeval

    try:
        cfg = EvalConfig(**fields)
        results = run_locomo(cfg) if kind == "locomo" else run_longmemeval(cfg)
    except (LocomoError, LongMemEvalError, EvalSystemError, ValueError, MemsvcError) as exc:
        typer.echo(f"error: {exc}", err=True)  # unwrapped: paths stay whole
        raise typer.Exit(1) from None
    except OSError as exc:  # an output or cache path that cannot be written, a missing file
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    table = Table(title=f"{kind}: {cfg.out / 'report.md'}")
    agg = results["aggregates"]
    if kind == "locomo":
        k = 10 if 10 in results["ks"] else results["ks"][0]
        cats = ["overall", "overall_1_4", "single-hop", "multi-hop", "temporal", "open-domain"]
        cats.append("adversarial")
        table.add_column("system")
        names = {"overall": f"recall@{k} overall", "overall_1_4": "categories 1-4"}
        for c in cats:
            table.add_column(names.get(c, c), justify="right")
        for name, a in agg.items():
            vals = a[f"recall@{k}"]
            table.add_row(
                name, *("-" if vals.get(c) is None else f"{100 * vals[c]:.1f}" for c in cats)
            )
    else:
        level = "session"
        cols = ["recall_all@5", "recall_all@10", "recall_any@5", "ndcg_any@5"]
        table.add_column("system")
        for c in cols:
            table.add_column(f"{level} {c}", justify="right")
        for name, a in agg.items():
            vals = a.get(level, {})
            table.add_row(
                name, *("-" if vals.get(c) is None else f"{100 * vals[c]:.1f}" for c in cols)
            )
    Console(width=max(out.width, 140)).print(table)  # wide: column names stay whole


@eval_app.command("locomo")
def eval_locomo(
    data: EvalData,
    out_dir: EvalOut,
    conversations: Annotated[
        list[str] | None,
        typer.Option("--conversations", help="Sample ids (repeat or comma-separate; default all)."),
    ] = None,
    system: EvalSystems = None,
    k: EvalK = "5,10,25,50",
    mode: EvalMode = "retrieval",
    server: EvalServer = None,
    llm_base_url: LlmUrl = None,
    llm_model: LlmModel = None,
    llm_api_key_env: LlmKeyEnv = "OPENAI_API_KEY",
    judge_model: JudgeModel = None,
    qa_k: QaK = 10,
    max_questions: Annotated[
        int | None, typer.Option("--max-questions", help="Per conversation (quick QA runs).")
    ] = None,
    cache_dir: CacheDir = None,
    quiet: Quiet = False,
) -> None:
    """LoCoMo: evidence recall@k per category (official and repaired), optional QA.

    Example: memsvc eval locomo --data locomo10.json --conversations conv-26 --out runs/l1
    """
    _run_eval(
        "locomo",
        data=data,
        out=out_dir,
        conversations=_split(conversations),
        systems=_split(system) or ["memsvc", "bm25", "dense"],
        ks=_ks(k),
        mode=mode,
        server=server,
        llm_base_url=llm_base_url,
        llm_model=llm_model,
        llm_api_key_env=llm_api_key_env,
        judge_model=judge_model,
        qa_k=qa_k,
        max_questions=max_questions,
        cache_dir=cache_dir,
        progress=not quiet,
    )


@eval_app.command("longmemeval")
def eval_longmemeval(
    data: EvalData,
    out_dir: EvalOut,
    granularity: Annotated[
        str,
        typer.Option(
            "--granularity",
            help="session or turn documents, or both (two runs: OUT/session and OUT/turn).",
        ),
    ] = "session",
    limit: Annotated[int | None, typer.Option("--limit", help="First N questions only.")] = None,
    rounds: Annotated[
        bool,
        typer.Option(
            "--rounds/--user-turns-only",
            help="Give memsvc the whole conversation, each assistant turn filed under the "
            "user turn it answers (the baselines always index the official user-side "
            "documents only).",
        ),
    ] = True,
    system: EvalSystems = None,
    k: EvalK = "1,3,5,10,30,50",
    mode: EvalMode = "retrieval",
    server: EvalServer = None,
    llm_base_url: LlmUrl = None,
    llm_model: LlmModel = None,
    llm_api_key_env: LlmKeyEnv = "OPENAI_API_KEY",
    judge_model: JudgeModel = None,
    qa_k: QaK = 10,
    cache_dir: CacheDir = None,
    quiet: Quiet = False,
) -> None:
    """LongMemEval: recall_any/recall_all/ndcg_any@k at session and turn level, optional QA.
    The file is checked against the official ones (size, sha256) first.

    Example: memsvc eval longmemeval --data longmemeval_s_cleaned.json --out runs/lme
    """
    if granularity == "both":
        levels = [("session", out_dir / "session"), ("turn", out_dir / "turn")]
    else:
        levels = [(granularity, out_dir)]
    for level, level_out in levels:
        _run_eval(
            "longmemeval",
            data=data,
            out=level_out,
            granularity=level,
            limit=limit,
            rounds=rounds,
            systems=_split(system) or ["memsvc", "bm25", "dense"],
            ks=_ks(k),
            mode=mode,
            server=server,
            llm_base_url=llm_base_url,
            llm_model=llm_model,
            llm_api_key_env=llm_api_key_env,
            judge_model=judge_model,
            qa_k=qa_k,
            cache_dir=cache_dir,
            progress=not quiet,
        )
