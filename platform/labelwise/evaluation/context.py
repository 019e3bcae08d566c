"""What the benchmarks of one evaluation share: the job's settings, the model's tokenizer, one
loaded model runner, and the requests that go to it (in process or on Ray Data)."""

from __future__ import annotations

import sys


class Context:
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
        from labelwise import engines
        from labelwise.models import pick_device

        device = spec.model.device if spec.model.device != "auto" else pick_device("auto")
        self.engine = engines.resolve(self.cfg.engine, "evaluate.engine", device=device, adapter=spec.adapter)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from labelwise.models import load_tokenizer

            self._tokenizer = load_tokenizer(self.spec.model)
        return self._tokenizer

    def render_chat(self, text: str, chat: bool) -> str:
        from labelwise.prompting import render_prompt

        return render_prompt(self.tokenizer, text, True) if chat else text

    def requests(self, kind: str, payloads: list[dict], progress: str, spec=None) -> list[dict]:
        """Answer requests in process (one model kept for every benchmark) or on Ray Data."""
        from labelwise.evaluation.execute import run_requests
        from labelwise.evaluation.runner import ModelRunner

        spec = spec or self.spec
        options = self.run_options(len(payloads))
        vllm = self.engine == "vllm"  # always on Ray Data (ray.data.llm)
        runner = None
        if not vllm and not options["use_ray"] and spec is self.spec:
            if self._runner is None:
                self._runner = ModelRunner.load(spec, self.settings)
            runner = self._runner
        where = "vLLM on Ray Data" if vllm else "Ray Data" if options["use_ray"] else "in process"
        print(f"  {progress}: {len(payloads)} {kind} requests, {where}", file=sys.stderr, flush=True)
        return run_requests(kind, payloads, spec, self.settings, runner=runner, progress=progress,
                            engine=self.engine, engine_kwargs=self.cfg.engine_kwargs, **options)

    def run_options(self, n: int) -> dict:
        """How ``n`` requests run: in process or on Ray Data, and the Ray actors' settings."""
        from labelwise.evaluation.execute import should_use_ray

        return {
            "use_ray": should_use_ray(self.cfg.use_ray, n, self.cfg.ray_min_requests),
            "ray_config": self.job.ray,
            "max_actors": self.cfg.max_actors,
            "max_restarts": self.cfg.max_restarts,
            "max_task_retries": self.cfg.max_task_retries,
        }
