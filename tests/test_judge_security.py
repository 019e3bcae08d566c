"""The OpenAI-compatible judge keeps its key to the configured origin (issue 15): real HTTP
servers on 127.0.0.1, one redirecting to another."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from labelwise import config
from labelwise.config import ConfigError, ConfigValueError
from labelwise.evaluation.config import JudgeConfig
from labelwise.evaluation.judge import OpenAIJudge
from labelwise.job import JobConfig

KEY = "sk-secret-for-tests"


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records every request; replies as configured on the server object."""

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        status, headers, body = self.server.reply
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _handle

    def log_message(self, *args):
        pass


def completion(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()


@pytest.fixture
def servers():
    started = []

    def start(status=200, headers=None, body=b""):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        server.seen, server.reply = [], (status, headers or {}, body)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def judge_for(server, **kw):
    cfg = JudgeConfig(kind="openai", model="m", base_url=f"http://127.0.0.1:{server.server_port}/v1",
                      api_key_env="LW_TEST_API_KEY", max_retries=2, timeout_s=5, **kw)
    return OpenAIJudge(cfg)


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_and_the_key_never_reaches_another_origin(servers, monkeypatch, code):
    monkeypatch.setenv("LW_TEST_API_KEY", KEY)
    other = servers(body=completion("A"))  # would answer "A" if it were asked
    first = servers(status=code, headers={"Location": f"http://127.0.0.1:{other.server_port}/v1/chat/completions"})
    with pytest.raises(RuntimeError, match=rf"redirected \(HTTP {code}\) to http://127.0.0.1:{other.server_port}/.*not followed"):
        judge_for(first).judge(["which?"])
    assert first.seen == [("POST", "/v1/chat/completions", f"Bearer {KEY}")]  # asked once, not retried
    assert other.seen == []


@pytest.mark.parametrize("body", [b"<html>A</html>", b'{"verdict": "A"}', b'{"choices": []}', b'{"choices": [{"message": {"content": ["A"]}}]}'])
def test_a_reply_that_is_not_a_chat_completion_is_an_error_not_a_verdict(servers, monkeypatch, body):
    monkeypatch.setenv("LW_TEST_API_KEY", KEY)
    server = servers(body=body)
    with pytest.raises(RuntimeError, match=r"judge endpoint http://127.0.0.1:\d+/v1/chat/completions"):
        judge_for(server).judge(["which?"])
    assert len(server.seen) == 1


def test_a_chat_completion_still_gives_a_verdict(servers, monkeypatch):
    monkeypatch.setenv("LW_TEST_API_KEY", KEY)
    server = servers(body=completion("B"))
    assert judge_for(server).judge(["which?"])[0]["verdict"] == "second"
    assert server.seen[0][2] == f"Bearer {KEY}"


def test_plain_http_to_a_remote_host_needs_allow_insecure(monkeypatch):
    with pytest.raises(ConfigError, match=r"judge\.base_url: 'http://judge\.example\.com/v1' is plain http:// .*allow_insecure"):
        config.build(JobConfig, {"evaluate": {"winrate": {"judge": {"kind": "openai", "model": "m", "base_url": "http://judge.example.com/v1"}}}}, "job.yaml")
    JudgeConfig(kind="openai", model="m", base_url="http://judge.example.com/v1", allow_insecure=True)
    JudgeConfig(kind="openai", model="m", base_url="https://judge.example.com/v1")
    JudgeConfig(kind="openai", model="m", base_url="http://localhost:8000/v1")
    with pytest.raises(ConfigValueError, match="not an http"):
        JudgeConfig(kind="openai", model="m", base_url="ftp://judge.example.com/v1")
    # the same rule for an endpoint taken from $OPENAI_BASE_URL
    monkeypatch.setenv("OPENAI_BASE_URL", "http://10.0.0.8/v1")
    with pytest.raises(ValueError, match="plain http://"):
        OpenAIJudge(JudgeConfig(kind="openai", model="m"))


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "HOME", "GITHUB_PAT", "MY_API_KEY_FILE"])
def test_api_key_env_must_name_a_key_or_token_variable(name):
    with pytest.raises(ConfigError, match=rf"judge\.api_key_env: '{name}': .*must end in _API_KEY or _TOKEN"):
        config.build(JobConfig, {"evaluate": {"winrate": {"judge": {"api_key_env": name}}}}, "job.yaml")
    for ok in ("OPENAI_API_KEY", "TOGETHER_API_KEY", "JUDGE_TOKEN"):
        JudgeConfig(api_key_env=ok)
