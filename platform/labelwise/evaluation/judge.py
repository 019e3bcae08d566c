"""Pairwise judges: which of two answers to an instruction is better.

A judge gets prompts made by :func:`judge_prompt` (the answer shown first is "A") and returns
per prompt a verdict ``"first"``, ``"second"`` or ``"tie"``, with the raw evidence.

* :class:`LocalJudge`: a Hugging Face causal LM; the verdict is the letter, A or B, with the
  higher log-likelihood as the first token of its reply (a tie when they are within
  ``tie_margin`` nats). Runs through the same request runner as the benchmarks.
* :class:`OpenAIJudge`: an OpenAI-compatible ``/chat/completions`` endpoint (base URL and model
  from the config, key from the environment variable it names), temperature 0; the verdict is
  the first "A", "B" or "tie" in the reply (none: counted as a tie and reported as invalid).
  The key goes only to the configured origin: a redirect is an error, never followed; plain
  http:// is refused for hosts other than localhost unless ``allow_insecure``; a reply that
  is not JSON or not a chat completion is an error, never a verdict.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

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


class LocalJudge:
    def __init__(self, judge_cfg, base_model_cfg, settings, run_options: dict):
        import dataclasses

        from labelwise.evaluation.runner import ModelSpec

        self.cfg = judge_cfg
        model_cfg = dataclasses.replace(base_model_cfg, name=judge_cfg.model, chat_template=judge_cfg.chat_template, revision=None)
        self.spec = ModelSpec(model_cfg, None)
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


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def endpoint_problem(url: str, allow_insecure: bool = False) -> str | None:
    """Why ``url`` may not receive the judge's key (None when it may): not http(s), no host,
    or plain http:// to a host other than localhost without ``allow_insecure``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL with a host, e.g. https://api.openai.com/v1"
    local = parts.hostname in LOCAL_HOSTS or parts.hostname.startswith("127.")
    if parts.scheme == "http" and not local and not allow_insecure:
        return (
            f"{url!r} is plain http:// to a remote host: the key and the prompts would travel "
            "unencrypted; use https://, or set evaluate.winrate.judge.allow_insecure: true"
        )
    return None


class JudgeReplyError(RuntimeError):
    """The endpoint answered, but not with a chat completion: not retried, never a verdict."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: the Authorization header would go to wherever they point."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise JudgeReplyError(
            f"judge endpoint {req.full_url} redirected (HTTP {code}) to {newurl}; redirects are not "
            "followed, so the key stays with the configured origin: set "
            "evaluate.winrate.judge.base_url to the endpoint's final URL"
        )


_OPENER = urllib.request.build_opener(_NoRedirect)


def reply_content(raw: bytes, url: str) -> str:
    """The message content of a chat completion reply; anything else is a JudgeReplyError."""
    shown = raw[:200].decode("utf-8", errors="replace")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise JudgeReplyError(f"judge endpoint {url} replied with something that is not JSON: {shown!r}") from None
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise JudgeReplyError(f"judge endpoint {url} replied with JSON that is not a chat completion (no choices[0].message.content): {shown!r}") from None
    if content is None:  # allowed by the schema (e.g. a refusal): no verdict, counted as invalid
        return ""
    if not isinstance(content, str):
        raise JudgeReplyError(f"judge endpoint {url}: choices[0].message.content is {type(content).__name__}, not text: {shown!r}")
    return content


class OpenAIJudge:
    def __init__(self, judge_cfg):
        self.cfg = judge_cfg
        self.base_url = (judge_cfg.base_url or os.environ.get("OPENAI_BASE_URL") or "").rstrip("/")
        if not self.base_url:
            raise ValueError(
                "evaluate.winrate.judge.base_url is not set and $OPENAI_BASE_URL is empty: "
                "give the endpoint, e.g. https://api.openai.com/v1"
            )
        problem = endpoint_problem(self.base_url, getattr(judge_cfg, "allow_insecure", False))
        if problem:
            raise ValueError(f"judge endpoint: {problem}")
        self.key = os.environ.get(judge_cfg.api_key_env, "")

    def judge(self, prompts: list[str]) -> list[dict]:
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            replies = list(pool.map(self._ask, prompts))
        out = []
        for reply in replies:
            verdict = verdict_from_text(reply)
            out.append({"verdict": verdict or "tie", "invalid": verdict is None, "reply": reply})
        return out

    def _ask(self, prompt: str) -> str:
        body = json.dumps(
            {
                "model": self.cfg.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
                "max_tokens": 8,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        url = f"{self.base_url}/chat/completions"
        last = None
        for attempt in range(self.cfg.max_retries + 1):
            try:
                request = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with _OPENER.open(request, timeout=self.cfg.timeout_s) as response:
                    raw = response.read()
                return reply_content(raw, url)
            except JudgeReplyError:
                raise
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:200].decode(errors='replace')}"
                if e.code in (400, 401, 403, 404) or 300 <= e.code < 400:  # will not get better by retrying
                    break
            except (urllib.error.URLError, TimeoutError) as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(min(8.0, 0.5 * 2**attempt))
        raise RuntimeError(f"judge endpoint {url} (model {self.cfg.model}) failed: {last}")


def make_judge(judge_cfg, base_model_cfg, settings, run_options: dict):
    if judge_cfg.kind == "openai":
        return OpenAIJudge(judge_cfg)
    return LocalJudge(judge_cfg, base_model_cfg, settings, run_options)
