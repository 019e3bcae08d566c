"""The ``labelwise`` command: one subcommand per stage, each taking a job YAML.

    labelwise pool     CONFIG [--set key=value ...]
    labelwise score    CONFIG ...
    labelwise judge    CONFIG ...      optional: an LLM judge about every pool prompt (THTB)
    labelwise select   CONFIG ...
    labelwise annotate CONFIG [--simulate | --answers FILE | --push | --pull] ...
    labelwise train    CONFIG ...
    labelwise evaluate CONFIG ...
    labelwise run      CONFIG ...      every stage in order, resuming what is done
    labelwise sweep    CONFIG ...      Ray Tune over selector x budget x base x seed
    labelwise report   FOLDER
    labelwise config   CONFIG ...      print the resolved config, every default filled in
    labelwise bench    {score,select,train,dedup,eval,judge,judge-agreement} [...]

A stage module ``labelwise.<package>.stage`` provides ``main(job, args)`` and may provide
``add_arguments(parser)`` for options of its own.

Errors: a config error prints ``labelwise: config error: ...`` and exits 2, as do usage
errors (argparse's, options of a stage that do not go together); an error from a stage
(RuntimeError, OSError such as FileNotFoundError, ValueError, annotate's answer errors) prints
``labelwise: error: ...`` (or the stage's own prefix) and exits 1. LABELWISE_DEBUG=1 shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from labelwise import stages

# (subcommand, module, one-line help), from the one table of stages. Modules are imported
# only when their command runs.
STAGES = stages.commands()
BENCHES = {
    "score": "labelwise.scoring.bench",
    "select": "labelwise.selection.bench",
    "train": "labelwise.training.bench",
    "dedup": "labelwise.pool.bench",
    "eval": "labelwise.evaluation.bench",
    "judge": "labelwise.judging.bench",
    "judge-agreement": "labelwise.judging.agreement",
}
BENCH_HELP = {
    "score": "the scorer against plain model.generate: same prompts, same batch",
    "select": "time and peak memory of the selectors on synthetic scores",
    "train": "training tokens/s of Ray Train against a plain loop",
    "dedup": "near-duplicate removal on synthetic prompts against exact-hash dedup",
    "eval": "held-out evaluation from one prefill against separate loglik and generate passes",
    "judge": "judge prompts/s in choice mode (options scored by log-likelihood) against free-text mode",
    "judge-agreement": "the judge's Bloom levels against a hand-labelled set, both modes, beside prompt length",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelwise",
        description="Pick which prompts to annotate (Weighted Task Diversity) and prove the "
        "pick by LoRA finetuning and evaluation, on a local Ray or a cluster.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module, help_text in STAGES:
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
    targets = sorted(b for b, m in BENCHES.items() if importlib.util.find_spec(m))
    p = sub.add_parser(
        "bench",
        help="speed and memory benchmarks, printed as ratios against a plain baseline",
        description="Benchmarks: each prints ratios measured in one run against a plain baseline.\n\n"
        "targets:\n" + "\n".join(f"  {t:<8} {BENCH_HELP.get(t, '')}" for t in targets)
        + "\n\nOptions of a target: labelwise bench TARGET --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", nargs="?", choices=targets, metavar="TARGET",
                   help=f"what to benchmark: {', '.join(targets)}")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of the benchmark (see labelwise bench TARGET --help)")
    p.set_defaults(bench_parser=p)
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


def _unchecked_inputs(args) -> set[str]:
    """Config inputs this command line will not read, so that a file still to come (the
    answers of a selection not yet made) is no error at load."""
    out = set()
    if args.command == "annotate" and any(getattr(args, k, None) for k in ("export", "answers", "simulate", "push", "pull")):
        out.add("annotate.answers")  # the command line replaces the configured answers file
    until = getattr(args, "until", None)
    if args.command == "run" and until:
        out |= stages.unread(until)  # no stage up to `until` reads them
    return out


def main(argv: list[str] | None = None) -> int:
    from labelwise.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        if args.command == "bench":
            if args.target is None:  # bare `labelwise bench`: its own help, listing the targets
                args.bench_parser.print_help()
                return 2
            module = BENCHES[args.target]
            if args.target == "score" and any(a == "--engine" or a.startswith("--engine=") for a in args.bench_args):
                module = "labelwise.engine_bench"  # the score stage on each engine, side by side
            return int(importlib.import_module(module).main(args.bench_args) or 0)
        if args.command == "config":
            return print_config(args.config, args.overrides)
        if args.command == "report":
            return int(importlib.import_module(args.module).main(args.folder) or 0)
        from labelwise.job import load_job

        job = load_job(args.config, args.overrides, command=args.command, unchecked=_unchecked_inputs(args))
        return int(importlib.import_module(args.module).main(job, args) or 0)
    except ConfigError as e:
        print(f"labelwise: config error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError, ValueError) as e:
        if os.environ.get("LABELWISE_DEBUG") == "1":
            raise
        print(f"labelwise: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
