"""An OpenAI-compatible ``/chat/completions`` endpoint, as every LLM judge of labelwise asks it
(the evaluation's pairwise judge, the judge stage's prompt judgments).

* :class:`EndpointConfig`: the fields a judge section shares (kind local/openai, model,
  base_url, api_key_env, allow_insecure, chat_template, timeout, retries, concurrency) and
  their checks; a judge's config extends it.
* :class:`ChatClient`: one user turn per prompt, temperature 0, bounded concurrency, retries
  with backoff on timeouts, connection errors and HTTP 5xx / 429.

Security: the key (read from the environment variable ``api_key_env`` names, which must end
in _API_KEY or _TOKEN) goes only to the configured origin: a redirect is an error, never
followed; plain http:// is refused for hosts other than localhost unless ``allow_insecure``;
a reply that is not JSON or not a chat completion is a :class:`ReplyError`, never an answer.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from labelwise.config import check

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclasses.dataclass
class EndpointConfig:
    kind: Literal["local", "openai"] = "local"
    """local: a Hugging Face model run by labelwise; openai: an OpenAI-compatible chat endpoint."""
    model: str = "smollm2-135m-instruct"
    """local: a model folder or packaged alias; openai: the endpoint's model name."""
    base_url: str | None = None
    """openai: e.g. https://api.openai.com/v1 (null: $OPENAI_BASE_URL)."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai: the environment variable holding the key (never the key itself); its name must
    end in _API_KEY or _TOKEN, so a job file cannot send other secrets (AWS_SECRET_ACCESS_KEY)."""
    allow_insecure: bool = False
    """openai: allow a plain http:// base_url to a host other than localhost."""
    chat_template: bool = True
    timeout_s: float = 60.0
    max_retries: int = 3
    concurrency: int = 4

    def __post_init__(self):
        check(bool(self.model.strip()), "model", "must not be empty")
        check(self.timeout_s > 0, "timeout_s", "must be positive")
        check(self.max_retries >= 0, "max_retries", "must be >= 0")
        check(self.concurrency > 0, "concurrency", "must be positive")
        check(
            re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(_API_KEY|_TOKEN)", self.api_key_env) is not None,
            "api_key_env",
            f"{self.api_key_env!r}: the name of the variable holding the judge's key must end in "
            "_API_KEY or _TOKEN (e.g. OPENAI_API_KEY), so that no other secret can be sent",
        )
        if self.kind == "openai" and self.base_url:
            problem = endpoint_problem(self.base_url, self.allow_insecure)
            check(problem is None, "base_url", problem or "")


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
            "unencrypted; use https://, or set the judge's allow_insecure: true"
        )
    return None


class ReplyError(RuntimeError):
    """The endpoint answered, but not with a chat completion (or redirected): not retried."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: the Authorization header would go to wherever they point."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise ReplyError(
            f"judge endpoint {req.full_url} redirected (HTTP {code}) to {newurl}; redirects are not "
            "followed, so the key stays with the configured origin: set the judge's base_url to "
            "the endpoint's final URL"
        )


_OPENER = urllib.request.build_opener(_NoRedirect)


def reply_content(raw: bytes, url: str) -> str:
    """The message content of a chat completion reply; anything else is a ReplyError."""
    shown = raw[:200].decode("utf-8", errors="replace")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ReplyError(f"judge endpoint {url} replied with something that is not JSON: {shown!r}") from None
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ReplyError(f"judge endpoint {url} replied with JSON that is not a chat completion (no choices[0].message.content): {shown!r}") from None
    if content is None:  # allowed by the schema (e.g. a refusal): an empty answer
        return ""
    if not isinstance(content, str):
        raise ReplyError(f"judge endpoint {url}: choices[0].message.content is {type(content).__name__}, not text: {shown!r}")
    return content


def reply_top_logprobs(raw: bytes, url: str) -> list[tuple[str, float]]:
    """(token, logprob) of the first reply token's ``top_logprobs`` in a chat completion
    (``choices[0].logprobs.content[0]``; the chosen token itself when no alternatives came)."""
    reply_content(raw, url)  # a chat completion, or a ReplyError
    data = json.loads(raw.decode("utf-8"))
    try:
        first = data["choices"][0]["logprobs"]["content"][0]
        top = first.get("top_logprobs") or [first]
        found = [(str(t["token"]), float(t["logprob"])) for t in top]
    except (KeyError, IndexError, TypeError, ValueError):
        shown = raw[:200].decode("utf-8", errors="replace")
        raise ReplyError(
            f"judge endpoint {url} returned no logprobs (choices[0].logprobs.content[0].top_logprobs) although "
            f"they were asked for; judge.mode: choice needs an endpoint that returns them (else use mode: free): {shown!r}"
        ) from None
    if not found:
        raise ReplyError(f"judge endpoint {url}: empty top_logprobs")
    return found


class ChatClient:
    """Asks the endpoint of an :class:`EndpointConfig` (kind openai); ``section`` names the
    config section in error messages (e.g. ``evaluate.winrate.judge``)."""

    def __init__(self, cfg: EndpointConfig, section: str = "judge"):
        self.cfg = cfg
        self.base_url = (cfg.base_url or os.environ.get("OPENAI_BASE_URL") or "").rstrip("/")
        if not self.base_url:
            raise ValueError(
                f"{section}.base_url is not set and $OPENAI_BASE_URL is empty: "
                "give the endpoint, e.g. https://api.openai.com/v1"
            )
        problem = endpoint_problem(self.base_url, cfg.allow_insecure)
        if problem:
            raise ValueError(f"judge endpoint: {problem}")
        self.key = os.environ.get(cfg.api_key_env, "")
        self.url = f"{self.base_url}/chat/completions"

    def ask_all(self, prompts: list[str], max_tokens: int, on_error: str = "raise") -> list:
        """The reply text per prompt, in order, ``concurrency`` requests at a time. A request
        that fails after its retries raises (``on_error="raise"``), or its slot holds the
        exception (``on_error="return"``) so the caller can record it per prompt."""
        return self._map(lambda p: self.ask(p, max_tokens), prompts, on_error)

    def top_logprobs_all(self, prompts: list[str], k: int, on_error: str = "raise") -> list:
        """:meth:`top_logprobs` per prompt, as :meth:`ask_all` does."""
        return self._map(lambda p: self.top_logprobs(p, k), prompts, on_error)

    def _map(self, fn, prompts, on_error):
        def one(prompt):
            try:
                return fn(prompt)
            except RuntimeError as e:
                if on_error == "raise":
                    raise
                return e

        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(one, prompts))

    def ask(self, prompt: str, max_tokens: int) -> str:
        raw = self._post({"max_tokens": max_tokens}, prompt)
        return reply_content(raw, self.url)

    def top_logprobs(self, prompt: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` most likely first tokens of the reply with their log-probabilities (one
        token asked, ``logprobs: true, top_logprobs: k``); a reply without them is a ReplyError."""
        raw = self._post({"max_tokens": 1, "logprobs": True, "top_logprobs": k}, prompt)
        return reply_top_logprobs(raw, self.url)

    def _post(self, extra: dict, prompt: str) -> bytes:
        body = json.dumps(
            {
                "model": self.cfg.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
                **extra,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        last = None
        for attempt in range(self.cfg.max_retries + 1):
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with _OPENER.open(request, timeout=self.cfg.timeout_s) as response:
                    return response.read()
            except ReplyError:
                raise
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:200].decode(errors='replace')}"
                if e.code in (400, 401, 403, 404) or 300 <= e.code < 400:  # will not get better by retrying
                    break
            except (urllib.error.URLError, TimeoutError, OSError) as e:
                last = f"{type(e).__name__}: {e}"
            if attempt < self.cfg.max_retries:
                time.sleep(min(8.0, 0.5 * 2**attempt))
        raise RuntimeError(f"judge endpoint {self.url} (model {self.cfg.model}) failed: {last}")
