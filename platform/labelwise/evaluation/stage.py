"""The evaluate stage: benchmarks for the base model or a LoRA adapter, into metrics.json.

    labelwise evaluate JOB.yaml                 base model, and run_dir/adapter when it exists
    labelwise evaluate JOB.yaml --base          base model only
    labelwise evaluate JOB.yaml --adapter PATH [--label NAME]

Benchmarks (``evaluate.benchmarks``): heldout, mmlu, bbh, winrate. A label's results, each
with its protocol, go to run_dir/metrics_<label>.json, committed with the manifest of stage
``evaluate-<label>`` (labelwise.manifest), and are gathered into run_dir/metrics.json. Each
benchmark's result is also cached as soon as it is done (eval_cache/), so a rerun after a
crash skips a benchmark whose protocol (settings, a digest of the data files read, model
identity) is the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from pathlib import Path

from labelwise import contracts, runio

HEADLINE = {
    "heldout": ("nll_macro", "em_macro"),
    "mmlu": ("acc", "n"),
    "bbh": ("em", "n"),
    "winrate": ("win_rate", "lc_win_rate"),
}

HELP = "evaluate the base or adapted model (held-out tasks, MMLU, BBH, win rate)"  # the command's one-line help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", metavar="PATH", help="evaluate this LoRA adapter folder (label: adapted)")
    parser.add_argument("--label", help="label in metrics.json (default: base, or adapted with an adapter)")
    parser.add_argument("--base", action="store_true", help="evaluate the base model only")


def main(job, args) -> int:
    from labelwise.contracts import ADAPTER

    if args.base and args.adapter:
        print("labelwise evaluate: --base and --adapter exclude each other", file=sys.stderr)
        return 2
    runs: list[tuple[str | None, str | None]] = []
    if args.adapter:
        runs.append((args.adapter, args.label))
    else:
        runs.append((None, args.label or "base"))
        default_adapter = job.run_path / ADAPTER
        if not args.base and not args.label and (default_adapter / contracts.ADAPTER_CONFIG).exists():
            runs.append((str(default_adapter), "adapted"))
    results = {}
    for adapter, label in runs:
        label = label or ("adapted" if adapter else "base")
        results[label] = evaluate(job, adapter=adapter, label=label)
    print(format_table(results))
    print(f"metrics: {job.run_path / 'metrics.json'}")
    return 0


def format_table(results: dict) -> str:
    lines = [f"{'label':<10} {'benchmark':<10} metrics"]
    for label, benches in results.items():
        for bench, metrics in benches.items():
            keys = HEADLINE.get(bench, ())
            shown = "  ".join(f"{k}={_fmt(metrics.get(k))}" for k in keys if k in metrics)
            lines.append(f"{label:<10} {bench:<10} {shown}")
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


# ---- the library entry point -----------------------------------------------------------


def _stderr(*args) -> None:
    print(*args, file=sys.stderr)


def evaluate(job, adapter=None, label: str | None = None, log=_stderr) -> dict:
    """Evaluate the base model (or ``adapter``) on ``job.evaluate.benchmarks``; returns
    ``{benchmark: metrics}`` for the label, as gathered into run_dir/metrics.json.

    The stage ``evaluate-<label>`` writes metrics_<label>.json (and winrate_<label>.jsonl) and
    commits them with a manifest: kept while the model's and the adapter's files, test.parquet
    and every benchmark's protocol (settings and a digest of its data) match."""
    from labelwise import manifest
    from labelwise.evaluation import metrics_file
    from labelwise.evaluation.runner import ModelSpec, resolve_adapter
    from labelwise.models import resolve

    adapter = resolve_adapter(adapter)
    label = label or ("adapted" if adapter else "base")
    if job.evaluate.threads:
        import torch

        torch.set_num_threads(job.evaluate.threads)
    run = job.run_path
    benches = list(job.evaluate.benchmarks)
    ctx = _Context(job, ModelSpec(job.model, adapter))
    protocols = {bench: {**ctx.protocol(bench), "model": ctx.identity()} for bench in benches}
    inputs = {"model": resolve(job.model.name)}
    if adapter:
        inputs["adapter"] = Path(adapter)
    if "heldout" in benches:
        inputs[contracts.TEST] = run / contracts.TEST
    if "winrate" in benches and job.evaluate.winrate.reference not in ("dataset", "base"):
        inputs["winrate.reference"] = resolve(job.evaluate.winrate.reference)
    inputs = {k: v for k, v in inputs.items() if isinstance(v, Path)}  # hub names: in the protocol
    outputs = [metrics_file.label_file(label)] + ([contracts.winrate_file(label)] if "winrate" in benches else [])
    stage = f"evaluate-{label}"

    def build(staged: Path) -> None:
        import shutil

        runio.remove_tmp_files(metrics_file.cache_path(run, label, "x").parent)  # killed cache writes
        results = {}
        for bench, protocol in protocols.items():
            result = metrics_file.cached(run, label, bench, protocol)
            if result is not None:
                log(f"evaluate [{label}] {bench}: done earlier with the same protocol ({metrics_file.CACHE}), reused")
            else:
                log(f"evaluate [{label}] {bench} ...")
                result = {**ctx.run(bench, label), "protocol": protocol}
                metrics_file.store(run, label, bench, result)
            results[bench] = result
            if bench == "winrate":
                shutil.copy2(ctx.winrate_details(label), staged / contracts.winrate_file(label))
        runio.write_json(staged / outputs[0], metrics_file.plain(results))
        manifest.fault(stage)

    manifest.run_stage(run, stage, inputs, {"protocols": protocols}, outputs, build, log=log)
    stored = metrics_file.gather(run).get(label, {})
    return {b: stored[b] for b in benches if b in stored}


class _Context:
    """What the benchmarks of one evaluation share: config, model, tokenizer, runner."""

    def __init__(self, job, spec):
        from labelwise.evaluation.data import data_root
        from labelwise.evaluation.runner import RunSettings

        self.job = job
        self.cfg = job.evaluate
        self.spec = spec
        self.root = data_root(self.cfg.data_dir)
        self.settings = RunSettings(self.cfg.batch_size, self.cfg.max_batch_tokens, self.cfg.max_length)
        self._tokenizer = None
        self._runner = None
        self._identity = None

    # -- shared pieces --
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from labelwise.models import load_tokenizer

            self._tokenizer = load_tokenizer(self.spec.model)
        return self._tokenizer

    def identity(self) -> dict:
        if self._identity is None:
            from labelwise.models import fingerprint

            self._identity = {
                "name": self.spec.model.name,
                "fingerprint": fingerprint(self.spec.model),
                "adapter_sha256": _folder_hash(self.spec.adapter) if self.spec.adapter else None,
            }
        return self._identity

    def render_chat(self, text: str, chat: bool) -> str:
        from labelwise.prompting import render_prompt

        return render_prompt(self.tokenizer, text, True) if chat else text

    def requests(self, kind: str, payloads: list[dict], progress: str, spec=None) -> list[dict]:
        """Answer requests in process (one model kept for every benchmark) or on Ray Data."""
        from labelwise.evaluation.execute import run_requests, should_use_ray
        from labelwise.evaluation.runner import ModelRunner

        spec = spec or self.spec
        on_ray = should_use_ray(self.cfg.use_ray, len(payloads), self.cfg.ray_min_requests)
        runner = None
        if not on_ray and spec is self.spec:
            if self._runner is None:
                self._runner = ModelRunner.load(spec, self.settings)
            runner = self._runner
        where = "Ray Data" if on_ray else "in process"
        print(f"  {progress}: {len(payloads)} {kind} requests, {where}", file=sys.stderr, flush=True)
        return run_requests(
            kind, payloads, spec, self.settings, use_ray=on_ray, ray_config=self.job.ray,
            max_actors=self.cfg.max_actors, runner=runner, progress=progress,
            max_restarts=self.cfg.max_restarts, max_task_retries=self.cfg.max_task_retries,
        )

    def run_options(self, n: int) -> dict:
        from labelwise.evaluation.execute import should_use_ray

        return {
            "use_ray": should_use_ray(self.cfg.use_ray, n, self.cfg.ray_min_requests),
            "ray_config": self.job.ray,
            "max_actors": self.cfg.max_actors,
            "max_restarts": self.cfg.max_restarts,
            "max_task_retries": self.cfg.max_task_retries,
        }

    # -- per benchmark --
    def protocol(self, bench: str) -> dict:
        from labelwise.evaluation import bbh, heldout, mmlu

        seed = self.job.seed
        if bench == "mmlu":
            folder = self._mmlu_dir()
            files = mmlu.data_files(self.cfg.mmlu, folder)
            return {
                **mmlu.protocol(self.cfg.mmlu, seed),
                "data": self.cfg.mmlu.path or str(self.root / "mmlu"),
                "data_sha256": _files_hash(folder, files),
            }
        if bench == "bbh":
            folder = self._bbh_dir()
            files = bbh.data_files(self.cfg.bbh, folder)
            return {**bbh.protocol(self.cfg.bbh, seed), "data": str(folder), "data_sha256": _files_hash(folder, files)}
        if bench == "heldout":
            path = self.job.run_path / contracts.TEST
            proto = heldout.protocol(self.cfg.heldout, seed, self.job.model.chat_template, path)
            return {**proto, "split_sha256": _file_hash(path) if path.exists() else None}
        if bench == "winrate":
            return self._winrate_protocol()
        from labelwise.evaluation.config import KNOWN_BENCHMARKS

        raise ValueError(f"unknown benchmark {bench!r} (known: {', '.join(KNOWN_BENCHMARKS)})")

    def run(self, bench: str, label: str) -> dict:
        return getattr(self, f"_run_{bench}")(label)

    def _mmlu_dir(self) -> Path:
        from labelwise.evaluation.mmlu import resolve_folder

        return resolve_folder(self.cfg.mmlu.path) if self.cfg.mmlu.path else self.root / "mmlu"

    def _bbh_dir(self) -> Path:
        return Path(self.cfg.bbh.path) if self.cfg.bbh.path else self.root / "bbh"

    def _winrate_prompts(self) -> Path:
        w = self.cfg.winrate
        return Path(w.prompts) if w.prompts else self.root / "alpaca_eval" / "gpt4_model_outputs.json"

    def _run_mmlu(self, label):
        from labelwise.evaluation import mmlu

        cfg = self.cfg.mmlu
        items, payloads = mmlu.build_requests(cfg, self._mmlu_dir(), self.job.seed, lambda t: self.render_chat(t, cfg.chat_template))
        return mmlu.summarize(items, self.requests("loglik", payloads, "mmlu"))

    def _run_bbh(self, label):
        from labelwise.evaluation import bbh

        cfg = self.cfg.bbh
        items, payloads = bbh.build_requests(cfg, self._bbh_dir(), self.job.seed, lambda t: self.render_chat(t, cfg.chat_template))
        return bbh.summarize(items, self.requests("generate", payloads, "bbh"), cfg.cot)

    def _run_heldout(self, label):
        from labelwise.evaluation import heldout

        cfg = self.cfg.heldout
        rows = heldout.read_test(self.job.run_path / contracts.TEST, cfg.per_task_cap, self.job.seed)
        payloads, gen_rows = heldout.build_requests(cfg, rows, self.tokenizer, self.job.model.chat_template)
        results = self.requests("answer", payloads, "heldout nll and exact match")
        return heldout.summarize(rows, results, [results[i] for i in gen_rows], gen_rows)

    def _winrate_protocol(self) -> dict:
        w = self.cfg.winrate
        path = self._winrate_prompts()
        judge = {"kind": w.judge.kind, "model": w.judge.model, "template": _text_hash(_judge_template())}
        if w.judge.kind == "openai":
            judge["base_url"] = w.judge.base_url or "$OPENAI_BASE_URL"
        else:
            judge["tie_margin"] = w.judge.tie_margin
            judge["chat_template"] = w.judge.chat_template
        reference = w.reference
        if reference not in ("dataset", "base"):
            reference = {"model": reference}
        return {
            "prompts": str(path),
            "prompts_sha256": _file_hash(path) if path.exists() else None,
            "max_prompts": w.max_prompts,
            "sample_seed": self.job.seed if w.max_prompts else None,
            "reference": reference,
            "max_new_tokens": w.max_new_tokens,
            "decoding": "greedy",
            "prompt_format": "chat template" if self.job.model.chat_template else "plain template",
            "reference_prompt_format": (
                None if w.reference == "dataset"
                else ("its own tokenizer's chat template" if self.job.model.chat_template else "plain template")
            ),
            "judge": judge,
            "max_answer_chars": w.judge.max_answer_chars,
            "orders": "both (A first, B first); per prompt A's score = mean",
            "length_control": _lc_method(),
        }

    def _reference_model(self):
        """Model B's config: the job's base model, or the named model (its own revision: none)."""
        w = self.cfg.winrate
        if w.reference == "base":
            return self.job.model
        return dataclasses.replace(self.job.model, name=w.reference, revision=None)

    def _run_winrate(self, label):
        from labelwise.evaluation import winrate
        from labelwise.evaluation.data import sample
        from labelwise.evaluation.judge import judge_prompt, make_judge
        from labelwise.evaluation.runner import ModelSpec
        from labelwise.models import load_tokenizer
        from labelwise.prompting import render_prompt
        from labelwise.runio import write_jsonl

        w = self.cfg.winrate
        path = self._winrate_prompts()
        rows = sample(winrate.read_prompts(path), w.max_prompts, self.job.seed, "winrate")

        def gen(tokenizer, chat_template: bool) -> list[dict]:
            # each model answers in its own prompt format: its tokenizer's chat template
            return [
                {"prompt": render_prompt(tokenizer, r["instruction"], chat_template),
                 "max_new_tokens": w.max_new_tokens, "stop": []}
                for r in rows
            ]

        answers_a = [r["text"].strip() for r in self.requests("generate", gen(self.tokenizer, self.job.model.chat_template), "winrate answers A")]
        if w.reference == "dataset":
            lacking = [i for i, r in enumerate(rows) if not isinstance(r.get("output"), str)]
            if lacking:
                raise ValueError(f"{path}: reference 'dataset' needs an 'output' string on every prompt (missing in {len(lacking)}, e.g. {rows[lacking[0]]['instruction'][:60]!r})")
            answers_b = [r["output"].strip() for r in rows]
        else:
            ref_model = self._reference_model()
            ref_spec = ModelSpec(ref_model, None)
            ref_tokenizer = self.tokenizer if w.reference == "base" else load_tokenizer(ref_model)
            payloads_b = gen(ref_tokenizer, ref_model.chat_template)
            answers_b = [r["text"].strip() for r in self.requests("generate", payloads_b, "winrate answers B", spec=ref_spec)]
        cut = w.judge.max_answer_chars
        prompts = [judge_prompt(r["instruction"], a, b, cut) for r, a, b in zip(rows, answers_a, answers_b)]
        prompts += [judge_prompt(r["instruction"], b, a, cut) for r, a, b in zip(rows, answers_a, answers_b)]
        judge = make_judge(w.judge, self.job.model, self.settings, self.run_options(len(prompts)))
        verdicts = judge.judge(prompts)
        n = len(rows)
        first = [v["verdict"] for v in verdicts[:n]]
        second = [v["verdict"] for v in verdicts[n:]]
        invalid = sum(bool(v.get("invalid")) for v in verdicts)
        result = winrate.summarize(first, second, answers_a, answers_b, invalid)
        details = self.winrate_details(label)
        scores = winrate.a_scores(first, second)
        write_jsonl(details, [
            {"instruction": r["instruction"], "answer_a": a, "answer_b": b, "a_first": v1, "b_first": v2, "score_a": s}
            for r, a, b, v1, v2, s in zip(rows, answers_a, answers_b, verdicts[:n], verdicts[n:], scores)
        ])
        result["details"] = str(self.job.run_path / contracts.winrate_file(label))
        return result

    def winrate_details(self, label: str) -> Path:
        """Where the win-rate run keeps its per-prompt details until the stage commits them."""
        from labelwise.evaluation.metrics_file import cache_path

        return cache_path(self.job.run_path, label, "winrate").with_suffix(".jsonl")


def _judge_template() -> str:
    from labelwise.evaluation.judge import TEMPLATE

    return TEMPLATE


def _lc_method() -> str:
    from labelwise.evaluation.winrate import LC_METHOD

    return LC_METHOD


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_hash(path: Path) -> str:
    return runio.sha256_file(path)[:16]


def _files_hash(root: Path, files: list[Path]) -> str:
    """Content hash of a benchmark's data files (names relative to ``root``, and bytes)."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(Path(f).relative_to(root)).encode())
        h.update(_file_hash(f).encode())
    return h.hexdigest()[:16]


def _folder_hash(folder) -> str:
    """Content hash of an adapter folder's config and weight files."""
    h = hashlib.sha256()
    for f in sorted(Path(folder).iterdir()):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin"):
            h.update(f.name.encode())
            h.update(_file_hash(f).encode())
    return h.hexdigest()[:16]
