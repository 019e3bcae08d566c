"""Pairwise judges: which of two answers to an instruction is better.

A judge gets prompts made by :func:`judge_prompt` (the answer shown first is "A") and returns
per prompt a verdict ``"first"``, ``"second"`` or ``"tie"``, with the raw evidence.

* :class:`LocalJudge`: a Hugging Face causal LM; the verdict is the letter, A or B, with the
  higher log-likelihood as the first token of its reply (a tie when they are within
  ``tie_margin`` nats). Runs through the same request runner as the benchmarks.
* :class:`OpenAIJudge`: an OpenAI-compatible ``/chat/completions`` endpoint asked through
  :class:`labelwise.chat_endpoint.ChatClient` (its security rules: no redirects, http only to
  localhost or with ``allow_insecure``, the key from ``api_key_env``), temperature 0; the
  verdict is the first "A", "B" or "tie" in the reply (none: counted as a tie and reported as
  invalid); a reply that is not a chat completion is an error, never a verdict.
"""

from __future__ import annotations

import re

from labelwise.chat_endpoint import ChatClient, ReplyError as JudgeReplyError, endpoint_problem, reply_content  # noqa: F401

TEMPLATE_VERSION = "labelwise-pairwise-v1"
TEMPLATE = """\
You are comparing two answers to the same instruction. Decide which answer is more helpful, \
correct and clear for the person who wrote the instruction. Ignore the order in which the \
answers are shown and do not prefer an answer only because it is longer.

# Instruction
{instruction}

# Answer A
{first}

# Answer B
{second}

Which answer is better? Reply with exactly one letter, A or B, or the word tie if they are \
equally good."""
VERDICT_RE = re.compile(r"\b(A|B|[Tt]ie|TIE)\b")  # capital letters only: "a" is an article


def judge_prompt(instruction: str, first: str, second: str, max_chars: int) -> str:
    cut = lambda s: s if len(s) <= max_chars else s[:max_chars] + " [...]"  # noqa: E731
    return TEMPLATE.format(instruction=instruction.strip(), first=cut(first.strip()), second=cut(second.strip()))


def verdict_from_logprobs(lp_a: float, lp_b: float, tie_margin: float) -> str:
    if abs(lp_a - lp_b) <= tie_margin:
        return "tie"
    return "first" if lp_a > lp_b else "second"


def verdict_from_text(text: str) -> str | None:
    found = VERDICT_RE.search(text or "")
    if not found:
        return None
    word = found.group(1)
    return "tie" if word.lower() == "tie" else ("first" if word.upper() == "A" else "second")


def judge_spec(judge_cfg, base_model_cfg):
    """The ModelSpec of a local judge: the base model's device and dtype settings, the judge's
    model and chat template."""
    import dataclasses

    from labelwise.evaluation.runner import ModelSpec

    model_cfg = dataclasses.replace(base_model_cfg, name=judge_cfg.model, chat_template=judge_cfg.chat_template, revision=None)
    return ModelSpec(model_cfg, None)


class LocalJudge:
    def __init__(self, judge_cfg, base_model_cfg, settings, run_options: dict):
        self.cfg = judge_cfg
        self.spec = judge_spec(judge_cfg, base_model_cfg)
        self.settings = settings
        self.run_options = run_options

    def judge(self, prompts: list[str]) -> list[dict]:
        from labelwise.evaluation.execute import run_requests
        from labelwise.models import load_tokenizer
        from labelwise.prompting import render_prompt

        tokenizer = load_tokenizer(self.spec.model)
        payloads = [
            {"context": render_prompt(tokenizer, p, self.cfg.chat_template), "continuations": ["A", "B"]}
            for p in prompts
        ]
        results = run_requests("loglik", payloads, self.spec, self.settings, progress="winrate judge", **self.run_options)
        return [
            {
                "verdict": verdict_from_logprobs(r["logprobs"][0], r["logprobs"][1], self.cfg.tie_margin),
                "logprob_a": r["logprobs"][0],
                "logprob_b": r["logprobs"][1],
            }
            for r in results
        ]


class OpenAIJudge:
    def __init__(self, judge_cfg):
        self.cfg = judge_cfg
        self.client = ChatClient(judge_cfg, section="evaluate.winrate.judge")

    def judge(self, prompts: list[str]) -> list[dict]:
        out = []
        for reply in self.client.ask_all(prompts, max_tokens=8):
            verdict = verdict_from_text(reply)
            out.append({"verdict": verdict or "tie", "invalid": verdict is None, "reply": reply})
        return out


def make_judge(judge_cfg, base_model_cfg, settings, run_options: dict):
    if judge_cfg.kind == "openai":
        return OpenAIJudge(judge_cfg)
    return LocalJudge(judge_cfg, base_model_cfg, settings, run_options)
