"""Who answers the judge's requests: a local Hugging Face model (greedy generation through the
evaluation's request runner: in this process, or Ray Data model actors) or an
OpenAI-compatible endpoint (labelwise.chat_endpoint.ChatClient: bounded concurrency, retries,
timeouts, no redirects).

``generate(prompts, max_tokens)`` returns per prompt the reply text, or the exception of a
request that failed after its retries (the stage records it for that prompt; the next run
asks again). ``identity()`` is what makes one judge's replies differ from another's (the
cache key); ``name`` goes into judgments.parquet's ``judge`` column.
"""

from __future__ import annotations


class LocalBackend:
    def __init__(self, cfg, job):
        from labelwise.evaluation.judge import judge_spec
        from labelwise.evaluation.runner import RunSettings

        self.cfg, self.job = cfg, job
        self.spec = judge_spec(cfg, job.model)
        self.settings = RunSettings(cfg.batch_size, cfg.max_batch_tokens, cfg.max_length)
        self.runner = self.tokenizer = None
        self.where: set[str] = set()  # "ray data" / "in process": where requests ran (the summary says)

    def identity(self) -> dict:
        from labelwise.manifest import digest
        from labelwise.models import fingerprint, resolve

        folder = resolve(self.cfg.model)
        model = self.spec.model
        return {
            "fingerprint": fingerprint(model),
            "model_files": digest(folder) if not isinstance(folder, str) else None,
            "device": model.device,
            "dtype": model.dtype,
        }

    @property
    def name(self) -> str:
        return f"local:{self.cfg.model}@{self.identity()['fingerprint']}"

    def generate(self, prompts: list[str], max_tokens: int) -> list:
        payloads = [{"prompt": p, "max_new_tokens": max_tokens, "stop": []} for p in self._render(prompts)]
        return [r["text"] for r in self._requests("generate", payloads)]

    def option_logprobs(self, prompts: list[str], options: list[tuple[str, ...]]) -> list:
        """Per prompt, the log-likelihood of each option as the start of the judge's reply
        (the evaluation runner's ``loglik`` requests: one forward pass per prompt when every
        option is one token after the same context)."""
        payloads = [{"context": p, "continuations": list(o)} for p, o in zip(self._render(prompts), options)]
        return [r["logprobs"] for r in self._requests("loglik", payloads)]

    def _render(self, prompts: list[str]) -> list[str]:
        """The prompts in the judge's prompt format (its chat template, or plain)."""
        from labelwise.models import load_tokenizer
        from labelwise.prompting import render_prompt

        if self.tokenizer is None:
            self.tokenizer = load_tokenizer(self.spec.model)
        return [render_prompt(self.tokenizer, p, self.cfg.chat_template) for p in prompts]

    def _requests(self, kind: str, payloads: list[dict]) -> list[dict]:
        """Answer runner requests in process (one model kept across calls) or on Ray Data."""
        from labelwise.evaluation.execute import run_requests, should_use_ray
        from labelwise.evaluation.runner import ModelRunner

        from labelwise import engines

        engine = engines.resolve(self.cfg.engine, "judge.engine")  # a local judge has no adapter
        use_ray = engine == "vllm" or should_use_ray(self.cfg.use_ray, len(payloads), self.cfg.ray_min_requests)
        self.where.add(("vllm on " if engine == "vllm" else "") + ("ray data" if use_ray else "in process"))
        if not use_ray and self.runner is None:
            self.runner = ModelRunner.load(self.spec, self.settings)
        return run_requests(
            kind, payloads, self.spec, self.settings, use_ray=use_ray, ray_config=self.job.ray,
            max_actors=self.cfg.max_actors, runner=self.runner, progress="judge",
            engine=engine, engine_kwargs=self.cfg.engine_kwargs,
        )


class EndpointBackend:
    def __init__(self, cfg):
        from labelwise.chat_endpoint import ChatClient

        self.cfg = cfg
        self.client = ChatClient(cfg, section="judge")
        self.where = {"endpoint"}

    def identity(self) -> dict:
        return {"base_url": self.client.base_url}

    @property
    def name(self) -> str:
        return f"openai:{self.cfg.model}@{self.client.base_url}"

    def generate(self, prompts: list[str], max_tokens: int) -> list:
        return self.client.ask_all(prompts, max_tokens, on_error="return")

    def option_logprobs(self, prompts: list[str], options: list[tuple[str, ...]]) -> list:
        """Per prompt, the options' log-probabilities read from the first reply token's
        ``top_logprobs`` (judging/choice.py:options_from_top), or the exception of a request
        that failed (or whose reply has no logprobs, or none of the options)."""
        from labelwise.judging.choice import options_from_top

        tops = self.client.top_logprobs_all(prompts, self.cfg.top_logprobs, on_error="return")
        out = []
        for top, opts in zip(tops, options):
            if isinstance(top, BaseException):
                out.append(top)
                continue
            try:
                out.append(options_from_top(top, tuple(opts)))
            except ValueError as e:
                out.append(e)
        return out


def make_backend(cfg, job):
    return EndpointBackend(cfg) if cfg.kind == "openai" else LocalBackend(cfg, job)
