"""The judge stage against a real OpenAI-compatible HTTP server started by the test: canned
replies (JSON, think blocks, fences, loose text, malformed ones), a 500 then success, a slow
reply past the timeout; parsed columns, recorded errors and counts; resume after a kill."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from labelwise import config, contracts, manifest
from labelwise.job import JobConfig
from labelwise.judging import schema
from labelwise.judging.stage import judge_pool

REPO = Path(__file__).resolve().parents[1]
GOOD = {"bloom": '{"level": "Apply", "score": 8, "reasoning": "uses a formula"}',
        "disciplines": '{"disciplines": ["Physics", "Mathematics"]}',
        "quality": '{"quality": 10}'}
CANNED = {
    "MARK_JSON": GOOD,
    "MARK_THINK": {"bloom": '<think>maybe score = 2</think>\n{"level": "Create", "score": 17}',
                   "disciplines": '```json\n{"disciplines": ["Law"]}\n```',
                   "quality": "<think>short</think>Quality: 4/10"},
    "MARK_LOOSE": {"bloom": "score = 13", "disciplines": "Disciplines: biology", "quality": "rating = 7"},
    "MARK_BAD": {"bloom": "I cannot rate this.", "disciplines": "{}", "quality": '{"quality": 42}'},
    "MARK_500": GOOD,
    "MARK_SLOW": GOOD,
}
DESCRIPTIONS = {"physics": "Physics studies matter, energy and their interactions.",
                "mathematics": "Mathematics studies numbers, structures and proofs.",
                "biology": "Biology studies living organisms.",
                "law": ""}  # an empty description: law's prompts get no spread


def part_of(text: str) -> str:
    if "Bloom's taxonomy" in text:
        return "bloom"
    if "academic disciplines does" in text:
        return "disciplines"
    if "Judge the quality" in text:
        return "quality"
    if "Describe the academic discipline" in text:
        return "description"
    raise AssertionError(f"unexpected judge prompt {text[:80]!r}")


class Canned(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][0]["content"]
        part = part_of(text)
        srv = self.server
        if part == "description":
            name = re.search(r'discipline "([^"]+)"', text).group(1)
            key, reply = ("description", name), DESCRIPTIONS[name]
        else:
            mark = re.search(r"MARK_[A-Z0-9]+", text).group(0)
            key, reply = (mark, part), CANNED[mark][part]
        with srv.lock:
            srv.texts.append(text)
            srv.asked.append(key)
            count = srv.asked.count(key)
        if key[0] == "MARK_500" and count == 1:
            return self._send(500, b'{"error": "overloaded"}')
        if key == ("MARK_SLOW", "bloom") and srv.slow:
            time.sleep(srv.slow)
        self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode())

    def _send(self, status, out):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        except OSError:  # the client gave up (timeout)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    srv.asked, srv.texts, srv.lock, srv.slow = [], [], threading.Lock(), 3.0
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def write_pool(run: Path, marks: list[str]) -> list[str]:
    run.mkdir(parents=True, exist_ok=True)
    ids = [f"p{i}" for i in range(len(marks))]
    pd.DataFrame({"id": ids, "task": [f"t{i % 2}" for i in range(len(marks))],
                  "prompt": [f"Question {m}: what is {i}?" for i, m in enumerate(marks)],
                  "response": "", "source": "test"}).to_parquet(run / contracts.POOL, index=False)
    return ids


def job_data(run: Path, srv, **judge) -> dict:
    return {"run_dir": str(run), "judge": {"kind": "openai", "model": "judge-m", "api_key_env": "LW_TEST_API_KEY",
                                          "base_url": f"http://127.0.0.1:{srv.server_port}/v1", "timeout_s": 1.0,
                                          "max_retries": 1, "concurrency": 4, **judge}}


def test_api_judge_parses_records_errors_retries_and_asks_again_only_what_failed(tmp_path, server, monkeypatch):
    monkeypatch.setenv("LW_TEST_API_KEY", "sk-test")
    run = tmp_path / "run"
    ids = write_pool(run, list(CANNED))
    job = config.build(JobConfig, job_data(run, server), "job.yaml")
    judge_pool(job, log=lambda *a: None)

    j = schema.read_judgments(run / contracts.JUDGMENTS).set_index("id")
    assert list(j.index) == ids and set(j["judge"]) == {f"openai:judge-m@http://127.0.0.1:{server.server_port}/v1"}
    assert pq.read_schema(run / contracts.JUDGMENTS).equals(schema.judgments_schema())
    p_json, p_think, p_loose, p_bad, p_500, p_slow = ids
    assert (j.loc[p_json, "bloom_level"], j.loc[p_json, "bloom_score"], j.loc[p_json, "quality"]) == ("Apply", 8.0, 1.0)
    assert list(j.loc[p_json, "disciplines"]) == ["physics", "mathematics"] and j.loc[p_json, "discipline_count"] == 2
    assert 0 < j.loc[p_json, "discipline_spread"] < 2 and pd.isna(j.loc[p_json, "error"])
    assert (j.loc[p_think, "bloom_level"], j.loc[p_think, "bloom_score"]) == ("Create", 17.0)
    assert list(j.loc[p_think, "disciplines"]) == ["law"] and j.loc[p_think, "quality"] == pytest.approx(3 / 9)
    assert pd.isna(j.loc[p_think, "discipline_spread"])
    assert j.loc[p_think, "error"].startswith("spread: no description of 'law' (description: empty reply")
    assert (j.loc[p_loose, "bloom_level"], j.loc[p_loose, "bloom_score"]) == ("Evaluate", 13.0)
    assert j.loc[p_loose, "discipline_spread"] == 0.0 and j.loc[p_loose, "quality"] == pytest.approx(6 / 9)
    bad = j.loc[p_bad]
    assert pd.isna(bad["bloom_score"]) and pd.isna(bad["bloom_level"]) and bad["disciplines"] is None
    assert pd.isna(bad["quality"]) and pd.isna(bad["discipline_count"])
    assert bad["error"] == ("bloom: no score in the reply 'I cannot rate this.'; disciplines: no discipline in the "
                            "reply '{}'; quality: score 42 is outside 1..10")
    assert pd.isna(j.loc[p_500, "error"]) and j.loc[p_500, "bloom_score"] == 8.0  # retried after the 500
    assert [k for k in server.asked if k[0] == "MARK_500"].count(("MARK_500", "bloom")) == 2
    slow = j.loc[p_slow]
    assert pd.isna(slow["bloom_score"]) and slow["quality"] == 1.0
    assert re.match(r"bloom: request failed: RuntimeError: judge endpoint http://127\.0\.0\.1:\d+/v1/chat/completions "
                    r"\(model judge-m\) failed: .*timed out", slow["error"])
    assert server.asked.count(("MARK_SLOW", "bloom")) == 2  # max_retries: 1

    summary = json.loads((run / contracts.JUDGE_SUMMARY).read_text())
    assert summary["prompts"] == 6 and summary["request_errors"] == 1
    assert summary["parsed"] == {"bloom": 4, "disciplines": 5, "quality": 5, "all": 3}
    assert summary["errors"] == {"bloom": 2, "disciplines": 1, "quality": 1, "spread": 1}
    assert summary["descriptions"] == {"disciplines": 4, "described": 3, "failed": 1, "request_errors": 0}
    disc = schema.read_disciplines(run / contracts.DISCIPLINES)
    assert sorted(disc["discipline"]) == ["biology", "mathematics", "physics"]
    assert {len(e) for e in disc["embedding"]} == {384}

    # the next run asks again only the failed request (and no description), then parses it
    server.asked.clear()
    server.slow = 0
    judge_pool(job, log=lambda *a: None)
    assert server.asked == [("MARK_SLOW", "bloom")]
    j = schema.read_judgments(run / contracts.JUDGMENTS).set_index("id")
    assert j.loc[p_slow, "bloom_score"] == 8.0 and pd.isna(j.loc[p_slow, "error"])
    assert json.loads((run / contracts.JUDGE_SUMMARY).read_text())["request_errors"] == 0
    # nothing left to ask: the stage is kept
    server.asked.clear()
    before = manifest.read(run, "judge")
    judge_pool(job, log=lambda *a: None)
    assert server.asked == [] and manifest.read(run, "judge") == before


def test_a_killed_judge_run_keeps_its_finished_rounds(tmp_path, server, monkeypatch):
    """SIGKILL after the second round's shard: the rerun asks only the prompts of later rounds."""
    server.slow = 0
    run = tmp_path / "run"
    ids = write_pool(run, ["MARK_JSON", "MARK_LOOSE"] * 3)
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(job_data(run, server, shard_prompts=2)))
    env = {**os.environ, "PYTHONPATH": str(REPO / "platform"), "LW_TEST_API_KEY": "sk",
           manifest.FAULT_ENV: "judge:2:kill"}
    proc = subprocess.run([sys.executable, "-m", "labelwise.cli", "judge", str(job_file)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert not (run / contracts.JUDGMENTS).exists()
    assert len(server.asked) == 4 * 3  # two rounds of two prompts, three parts each
    server.asked.clear()
    monkeypatch.setenv("LW_TEST_API_KEY", "sk")
    judge_pool(config.build(JobConfig, job_data(run, server, shard_prompts=2), "job.yaml"), log=lambda *a: None)
    asked = [k for k in server.asked if k[0] != "description"]
    assert len(asked) == 2 * 3  # only the last round's two prompts
    j = schema.read_judgments(run / contracts.JUDGMENTS)
    assert list(j["id"]) == ids and j["error"].isna().all()
    assert list(j["bloom_score"]) == [8.0, 13.0] * 3


def test_the_judge_section_is_validated_like_the_evaluation_judge():
    from labelwise.config import ConfigError

    with pytest.raises(ConfigError, match=r"job\.yaml: judge\.temperature: unknown key"):
        config.build(JobConfig, {"judge": {"temperature": 0.5}}, "job.yaml")
    with pytest.raises(ConfigError, match=r"judge\.api_key_env: 'AWS_SECRET_ACCESS_KEY': .*_API_KEY or _TOKEN"):
        config.build(JobConfig, {"judge": {"api_key_env": "AWS_SECRET_ACCESS_KEY"}}, "job.yaml")
    with pytest.raises(ConfigError, match=r"judge\.base_url: 'http://judge\.example\.com/v1' is plain http://"):
        config.build(JobConfig, {"judge": {"kind": "openai", "base_url": "http://judge.example.com/v1"}}, "job.yaml")
    with pytest.raises(ConfigError, match=r"judge\.shard_prompts: must be positive"):
        config.build(JobConfig, {"judge": {"shard_prompts": 0}}, "job.yaml")
    assert config.build(JobConfig, {}, "job.yaml").judge is None  # no section: the stage is off


def test_with_answer_shows_the_bloom_judge_the_greedy_answer_from_scores(tmp_path, server, monkeypatch):
    monkeypatch.setenv("LW_TEST_API_KEY", "sk")
    run = tmp_path / "run"
    ids = write_pool(run, ["MARK_JSON", "MARK_LOOSE"])
    pd.DataFrame({"id": ids, "answer": ["GREEDY-ANSWER-0", None]}).to_parquet(run / contracts.SCORES, index=False)
    judge_pool(config.build(JobConfig, job_data(run, server, with_answer=True), "job.yaml"), log=lambda *a: None)
    bloom = {re.search(r"MARK_[A-Z]+", t).group(0): t for t in server.texts if part_of(t) == "bloom"}
    assert "# A model's answer" in bloom["MARK_JSON"] and "GREEDY-ANSWER-0" in bloom["MARK_JSON"]
    assert "# A model's answer" not in bloom["MARK_LOOSE"]
    assert not any("GREEDY" in t for t in server.texts if part_of(t) != "bloom")
    assert json.loads((run / contracts.JUDGE_SUMMARY).read_text())["run"]["answers_shown"] == 1
