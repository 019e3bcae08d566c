"""The ``labelwise`` command: one subcommand per stage, each taking a job YAML.

    labelwise pool     CONFIG [--set key=value ...]
    labelwise score    CONFIG ...
    labelwise select   CONFIG ...
    labelwise annotate CONFIG [--simulate | --answers FILE] ...
    labelwise train    CONFIG ...
    labelwise evaluate CONFIG ...
    labelwise run      CONFIG ...      every stage in order, resuming what is done
    labelwise sweep    CONFIG ...      Ray Tune over selector x budget x base x seed
    labelwise report   FOLDER
    labelwise config   CONFIG ...      print the resolved config, every default filled in
    labelwise bench    {score,select,train} [...]

A stage module ``labelwise.<package>.stage`` provides ``main(job, args)`` and may provide
``add_arguments(parser)`` for options of its own.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# (subcommand, module, one-line help). Modules are imported only when their command runs.
STAGES = [
    ("pool", "labelwise.pool.stage", "build pool.parquet and the held-out test split; print a summary"),
    ("score", "labelwise.scoring.stage", "score every pool prompt with the base model on Ray Data (cached, resumable)"),
    ("select", "labelwise.selection.stage", "choose the prompts to annotate with a selector (WTD, TD or a baseline)"),
    ("annotate", "labelwise.annotate.stage", "merge annotators' answers (or the pool's gold answers) into labeled.jsonl"),
    ("train", "labelwise.training.stage", "LoRA-finetune the base model on labeled.jsonl with Ray Train"),
    ("evaluate", "labelwise.evaluation.stage", "evaluate the base or adapted model (held-out tasks, MMLU, BBH, win rate)"),
    ("run", "labelwise.pipeline", "run every stage in order; a rerun resumes where the last one stopped"),
    ("sweep", "labelwise.sweep.stage", "Ray Tune sweep over selectors, budgets, base allocations and seeds"),
]
BENCHES = {
    "score": "labelwise.scoring.bench",
    "select": "labelwise.selection.bench",
    "train": "labelwise.training.bench",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelwise",
        description="Pick which prompts to annotate (Weighted Task Diversity) and prove the "
        "pick by LoRA finetuning and evaluation, on a local Ray or a cluster.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module, help_text in STAGES:
        if importlib.util.find_spec(module) is None:  # the stage has not landed
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("config", help="job YAML (see jobs/ for examples)")
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, e.g. --set select.budget=200 (repeatable)",
        )
        p.set_defaults(module=module)
        _stage_arguments(module, p)
    p = sub.add_parser(
        "config",
        help="validate a job YAML and print it resolved, with every default filled in",
        description="Validate a job YAML (with --set overrides) and print the resolved config "
        "as YAML: every key of every section, defaults included.",
    )
    p.add_argument("config", nargs="?", help="job YAML (omit to print the defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p = sub.add_parser(
        "report",
        help="write report.md and report.html (tables and plots) for a run or sweep folder",
        description="Write report.md and a self-contained report.html for a run or sweep folder.",
    )
    p.add_argument("folder", help="a run_dir (from labelwise run) or a sweep folder")
    p.set_defaults(module="labelwise.report.stage")
    p = sub.add_parser(
        "bench",
        help="speed and memory benchmarks, printed as ratios against a plain baseline",
        description="Benchmarks: each prints ratios measured in one run against a plain baseline.",
        add_help=True,
    )
    p.add_argument("target", choices=sorted(b for b, m in BENCHES.items() if importlib.util.find_spec(m)) or ["(none yet)"], help="what to benchmark")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of the benchmark (see labelwise bench TARGET --help)")
    return parser


def _stage_arguments(module: str, parser: argparse.ArgumentParser) -> None:
    """Let a stage add its own options; only modules that define add_arguments are imported."""
    add = getattr(importlib.import_module(module), "add_arguments", None)
    if add is not None:
        add(parser)


def print_config(path: str | None, overrides: list[str]) -> int:
    import yaml

    from labelwise.config import to_dict
    from labelwise.job import load_job

    job = load_job(path, overrides)
    print(yaml.safe_dump(to_dict(job), sort_keys=False, default_flow_style=False, width=100), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    from labelwise.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        if args.command == "bench":
            return int(importlib.import_module(BENCHES[args.target]).main(args.bench_args) or 0)
        if args.command == "config":
            return print_config(args.config, args.overrides)
        if args.command == "report":
            return int(importlib.import_module(args.module).main(args.folder) or 0)
        from labelwise.job import load_job

        job = load_job(args.config, args.overrides)
        return int(importlib.import_module(args.module).main(job, args) or 0)
    except ConfigError as e:
        print(f"labelwise: config error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"labelwise {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
