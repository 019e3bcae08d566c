"""Label Studio push / pull (labelwise annotate --push / --pull) against a real server.

One Label Studio server for the module, started from .venv-labelstudio (`make labelstudio`;
LABELWISE_LABEL_STUDIO names another executable) with a temporary data folder and SQLite on
a free port; its user and API token come from the environment. The pure parts (the push
plan, the choice among annotators) are tested without a server, with hypothesis.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise import cli, config, contracts, runio, textio
from labelwise.annotate import studio_sync
from labelwise.annotate.merge import AnnotationError
from labelwise.annotate.pick import Disagreement, Picked, Vote, normalize, pick
from labelwise.annotate.studio_tasks import Task, plan_push, task_data, textarea_result
from labelwise.job import JobConfig

REPO = Path(__file__).resolve().parents[1]
SERVER = Path(os.environ.get("LABELWISE_LABEL_STUDIO", REPO / ".venv-labelstudio" / "bin" / "label-studio"))
EMPTY_DB = SERVER.parent.parent / "empty-data" / "label_studio.sqlite3"  # migrated once by `make labelstudio`
TOKEN_ENV = "LABELWISE_TEST_LS_TOKEN"
ADMIN = "annotator.one@example.com"
START_TIMEOUT = 900  # seconds; migrating a new database on a loaded 2-core machine takes minutes

TRICKY = [
    "plain answer",
    'commas, "quotes" and\nnewlines\r\nand a tab\there',
    "unicode: héllo — 日本語 🙂 and a combining e\u0301",
    "  leading and trailing spaces  \n",
    "<b>not html</b> & {\"json\": 'like'} \\ backslash",
    "ends with a newline\n",
]


def _unavailable(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI runs these tests: `make test` installs both)")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(url, token) of a Label Studio started for this module; stopped afterwards."""
    try:
        import label_studio_sdk  # noqa: F401
    except ImportError:
        _unavailable("the Label Studio SDK is not installed (pip install 'labelwise[labelstudio]')")
    if not SERVER.exists():
        _unavailable(f"{SERVER} is absent (`make labelstudio` installs the server)")
    data = tmp_path_factory.mktemp("label-studio-data")
    if EMPTY_DB.exists():
        shutil.copy(EMPTY_DB, data / EMPTY_DB.name)
    port, token = _free_port(), secrets.token_hex(20)
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "DJANGO_DB": "sqlite",
        "LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_USERNAME": ADMIN,
        "LABEL_STUDIO_PASSWORD": secrets.token_hex(8),
        "LABEL_STUDIO_USER_TOKEN": token,
    }
    log = open(data / "server.log", "w")
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(SERVER), "start", "--no-browser", "--data-dir", str(data), "--port", str(port),
         "--internal-host", "127.0.0.1", "--enable-legacy-api-token", "--log-level", "WARNING"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Label Studio exited with {proc.returncode}:\n{(data / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - started > START_TIMEOUT:
                pytest.fail(f"Label Studio did not answer within {START_TIMEOUT} s")
            time.sleep(0.5)
        print(f"\nLabel Studio up in {time.monotonic() - started:.1f} s", file=sys.stderr)
        yield url, token
    finally:
        try:
            import psutil

            cpu = psutil.Process(proc.pid).cpu_times()
            print(f"\nLabel Studio used {cpu.user + cpu.system:.1f} s of CPU", file=sys.stderr)
        except Exception:  # already gone, or psutil missing: the figure is only informative
            pass
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (start_new_session)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture
def token_env(server, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, server[1])
    return server[1]


@pytest.fixture(scope="module")
def sdk(server):
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=server[0], api_key=server[1])


def make_run(tmp_path, url, project, n=6, pick_="latest", greedy=True):
    """A run folder after `select` (to_annotate.jsonl, allocation.csv) and `score` (scores.parquet)."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    rows = [{"id": f"id{i}", "task": f"task {i % 2}", "prompt": f"Q{i}: {TRICKY[i % len(TRICKY)]}"} for i in range(n)]
    runio.write_jsonl(run / contracts.TO_ANNOTATE, rows)
    alloc = pd.DataFrame({"task": ["task 0", "task 1"], "pool_size": [10, 12], "confidence": [0.5, 0.2],
                          "allocated": [2.5, 3.5], "selected": [(n + 1) // 2, n // 2]})
    runio.write_csv(run / contracts.ALLOCATION, alloc)
    if greedy:  # the last prompt failed to score: it gets no prediction
        scores = pd.DataFrame({"id": [r["id"] for r in rows], "task": [r["task"] for r in rows],
                               "answer": [f"greedy {i}: {TRICKY[-1 - i % len(TRICKY)]}" for i in range(n)],
                               "error": [None] * (n - 1) + ["oom"]})
        runio.write_parquet(run / contracts.SCORES, scores)
    ls = {"url": url, "project": project, "token_env": TOKEN_ENV, "pick": pick_}
    job_data = {"run_dir": str(run), "annotate": {"simulate": False, "label_studio": ls}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job_data))
    return config.build(JobConfig, job_data, "test"), rows


def project_tasks(sdk, title):
    """{data.id: task} of the project titled ``title`` (one task per id), and its id."""
    (project,) = [p for p in sdk.projects.list(title=title) if p.title == title]
    tasks = [t.model_dump() for t in sdk.tasks.list(project=project.id, fields="all")]
    by_id = {t["data"]["id"]: t for t in tasks}
    assert len(by_id) == len(tasks), "an id has several tasks"
    return by_id, project.id


def answer(sdk, task, text, user=None):
    """Submit an answer as an annotator does in the editor (POST /api/tasks/ID/annotations)."""
    kwargs = {"completed_by": user} if user is not None else {}
    return sdk.annotations.create(id=task["id"], result=textarea_result(text), **kwargs)


def labeled(job):
    return textio.read_jsonl(job.run_path / contracts.LABELED)


@pytest.mark.labelstudio
def test_push_pull_round_trip_is_byte_exact_and_repush_loses_nothing(tmp_path, server, token_env, sdk, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    job, rows = make_run(tmp_path, server[0], "round trip")
    assert cli.main(["annotate", str(tmp_path / "job.yaml"), "--push"]) == 0
    tasks, _ = project_tasks(sdk, "round trip")
    assert sorted(tasks) == sorted(r["id"] for r in rows)
    for i, r in enumerate(rows):
        t = tasks[r["id"]]
        assert t["data"] == task_data(r, studio_sync.read_allocation(job.run_path))
        assert t["data"]["prompt"] == r["prompt"] and t["data"]["allocation"] == (2.5 if i % 2 == 0 else 3.5)
        preds = [p["result"][0]["value"]["text"] for p in t["predictions"]]
        assert preds == ([] if i == len(rows) - 1 else [[f"greedy {i}: {TRICKY[-1 - i]}"]])

    counts = studio_sync.push(job)  # again: nothing new
    assert (counts["created"], counts["updated"], counts["predictions_added"], counts["unchanged"]) == (0, 0, 0, len(rows))
    assert counts["project_changed"] == []

    # Annotators answer the first three; one accepts the prediction unchanged.
    answers = {rows[0]["id"]: TRICKY[1], rows[1]["id"]: TRICKY[2], rows[2]["id"]: tasks[rows[2]["id"]]["predictions"][0]["result"][0]["value"]["text"][0]}
    for rid, text in answers.items():
        answer(sdk, tasks[rid], text)
    job_yaml = str(tmp_path / "job.yaml")
    assert cli.main(["annotate", job_yaml, "--pull"]) == 1
    printed = capsys.readouterr()
    assert "labelwise annotate: error: 3 of 6 selected prompts have no answer" in printed.err
    assert not (job.run_path / contracts.LABELED).exists()
    assert cli.main(["annotate", job_yaml, "--pull", "--allow-partial"]) == 0
    got = {r["id"]: r for r in labeled(job)}
    assert {k: v["response"] for k, v in got.items()} == answers  # byte for byte
    assert all(v["annotators"] == [ADMIN] and v["answered_at"] for v in got.values())
    assert [r["id"] for r in labeled(job)] == [r["id"] for r in rows[:3]]

    # A new selection changes allocations, a new scoring the greedy answers: re-push updates
    # the unanswered tasks only (the last prompt still has no greedy answer).
    alloc = pd.read_csv(job.run_path / contracts.ALLOCATION)
    alloc["allocated"] = [4.0, 1.0]
    runio.write_csv(job.run_path / contracts.ALLOCATION, alloc)
    scores = pd.read_parquet(job.run_path / contracts.SCORES)
    scores["answer"] = "rescored: " + scores["answer"]
    runio.write_parquet(job.run_path / contracts.SCORES, scores)
    counts = studio_sync.push(job)
    assert (counts["created"], counts["updated"], counts["predictions_added"], counts["answered_untouched"]) == (0, 3, 2, 3)
    after, _ = project_tasks(sdk, "round trip")
    assert len(after) == len(rows)
    for rid in answers:
        assert after[rid]["data"] == tasks[rid]["data"] and len(after[rid]["annotations"]) == 1
        assert [(p["id"], p["result"]) for p in after[rid]["predictions"]] == [(p["id"], p["result"]) for p in tasks[rid]["predictions"]]
    assert after[rows[3]["id"]]["data"]["allocation"] == 1.0
    assert [p["result"][0]["value"]["text"][0] for p in after[rows[3]["id"]]["predictions"]][-1].startswith("rescored: ")

    for r in rows[3:]:
        answer(sdk, after[r["id"]], f"answer to {r['id']}\n\twith «quotes» \"too\"")
    studio_sync.pull(job)
    final = labeled(job)
    assert [r["id"] for r in final] == [r["id"] for r in rows]
    assert [r["response"] for r in final[:3]] == list(answers.values())  # kept
    assert final[5]["response"] == 'answer to id5\n\twith «quotes» "too"'

    # The token is in no file of the run folder and in nothing logged or printed.
    token = token_env
    out = capsys.readouterr()
    assert token not in printed.out + printed.err + out.out + out.err + caplog.text
    for f in job.run_path.rglob("*"):
        if f.is_file():
            assert token.encode() not in f.read_bytes(), f


@pytest.mark.labelstudio
def test_latest_and_agreed_among_two_annotators(tmp_path, server, token_env, sdk):
    latest_job, rows = make_run(tmp_path / "a", server[0], "two annotators", n=3)
    studio_sync.push(latest_job)
    tasks, _ = project_tasks(sdk, "two annotators")
    bob = sdk.users.create(username="bob", email="bob@example.com").id
    # id0: both agree once normalized; id1: they differ; id2: only bob answered.
    answer(sdk, tasks["id0"], "Paris")
    answer(sdk, tasks["id0"], "  paris\n", user=bob)
    answer(sdk, tasks["id1"], "Yes")
    answer(sdk, tasks["id1"], "No", user=bob)
    answer(sdk, tasks["id2"], "Only Bob", user=bob)

    studio_sync.pull(latest_job)
    got = {r["id"]: r for r in labeled(latest_job)}
    assert {k: v["response"] for k, v in got.items()} == {"id0": "  paris\n", "id1": "No", "id2": "Only Bob"}
    assert got["id1"]["annotators"] == ["bob@example.com"]

    agreed_job, _ = make_run(tmp_path / "b", server[0], "two annotators", n=3, pick_="agreed")
    with pytest.raises(AnnotationError, match=r"1 prompts have no agreed answer.*id1 \(task \d+: 2 annotators, 2 different"):
        studio_sync.pull(agreed_job)
    assert not (agreed_job.run_path / contracts.LABELED).exists()
    studio_sync.pull(agreed_job, allow_partial=True)
    got = {r["id"]: r for r in labeled(agreed_job)}
    assert set(got) == {"id0", "id2"}
    assert got["id0"]["response"] == "  paris\n"  # the latest of the agreeing answers, as written
    assert got["id0"]["annotators"] == [ADMIN, "bob@example.com"]
    # A third annotator answers: id1 now has a majority; id0 (agreed before) does not any more
    # and keeps the answer already in labeled.jsonl, as earlier answers always are.
    carol = sdk.users.create(username="carol", email="carol@example.com").id
    answer(sdk, tasks["id1"], "no", user=carol)
    answer(sdk, tasks["id0"], "Lyon", user=carol)
    answer(sdk, tasks["id0"], "Marseille", user=bob)  # bob changes his mind: one vote each, his latest
    studio_sync.pull(agreed_job)
    got = {r["id"]: r for r in labeled(agreed_job)}
    assert {k: v["response"] for k, v in got.items()} == {"id0": "  paris\n", "id1": "no", "id2": "Only Bob"}
    assert got["id1"]["annotators"] == ["bob@example.com", "carol@example.com"]


@pytest.mark.labelstudio
def test_pull_refuses_unknown_and_twice_answered_ids_like_answers_files(tmp_path, server, token_env, sdk):
    job, rows = make_run(tmp_path, server[0], "checks", n=2, greedy=False)
    studio_sync.push(job)
    tasks, project = project_tasks(sdk, "checks")
    assert all(not t["predictions"] for t in tasks.values())  # not scored: no predictions
    answer(sdk, tasks["id0"], "a")
    answer(sdk, tasks["id1"], "b")
    # Someone imports a task by hand: a prompt that was not selected, then a copy of id0.
    (ghost,) = sdk.projects.import_tasks(project, request=[{"data": {"id": "ghost", "task": "x", "prompt": "p"}}], return_task_ids=True).task_ids
    sdk.annotations.create(id=ghost, result=textarea_result("c"))
    with pytest.raises(AnnotationError, match=r"answers for ids that were not selected: ghost"):
        studio_sync.pull(job)
    sdk.tasks.delete(str(ghost))
    (copy,) = sdk.projects.import_tasks(project, request=[{"data": dict(tasks["id0"]["data"])}], return_task_ids=True).task_ids
    sdk.annotations.create(id=copy, result=textarea_result("a"))
    counts = studio_sync.push(job)
    assert counts["created"] == 0 and counts["answered_untouched"] == 3
    with pytest.raises(AnnotationError, match=r"ids answered more than once: id0"):
        studio_sync.pull(job)
    assert not (job.run_path / contracts.LABELED).exists()


@pytest.mark.labelstudio
def test_a_wrong_token_and_an_unknown_project_are_clear_errors(tmp_path, server, monkeypatch):
    job, _ = make_run(tmp_path, server[0], "never pushed")
    wrong = "0" * 40
    monkeypatch.setenv(TOKEN_ENV, wrong)
    with pytest.raises(RuntimeError, match=f"HTTP 401 \\(is the token in {TOKEN_ENV} right") as e:
        studio_sync.push(job)
    assert wrong not in str(e.value)
    monkeypatch.setenv(TOKEN_ENV, server[1])
    with pytest.raises(AnnotationError, match="no project titled 'never pushed'.*--push` first"):
        studio_sync.pull(job)


# ---- without a server -------------------------------------------------------------------------


def test_config_validates_label_studio_keys_and_never_takes_a_token(tmp_path):
    def build(ls):
        return config.build(JobConfig, {"annotate": {"label_studio": ls}}, "job.yaml")

    cfg = build({"url": "https://ls.example.com", "project": "p"}).annotate.label_studio
    assert (cfg.token_env, cfg.pick) == ("LABEL_STUDIO_API_KEY", "latest")
    for ls, needle in [
        ({"url": "ls.example.com"}, "annotate.label_studio.url: must start with http"),
        ({"token_env": "a3f9" * 10}, "annotate.label_studio.token_env: looks like a token itself"),
        ({"token_env": "MY-TOKEN"}, "annotate.label_studio.token_env: must be the name of an environment variable"),
        ({"pick": "majority"}, "annotate.label_studio.pick: expected one of 'latest', 'agreed'"),
        ({"token": "x"}, "annotate.label_studio.token: unknown key"),
        ({"project": " "}, "annotate.label_studio.project: must be a project title"),
    ]:
        with pytest.raises(config.ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
            build(ls)


def test_missing_token_and_missing_sdk_are_named(tmp_path, monkeypatch):
    job, _ = make_run(tmp_path, "http://127.0.0.1:9", "p")
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(RuntimeError, match=f"environment variable {TOKEN_ENV} is not set"):
        studio_sync.push(job)
    monkeypatch.setenv(TOKEN_ENV, "t" * 12)
    monkeypatch.setitem(sys.modules, "label_studio_sdk", None)  # as if not installed
    with pytest.raises(RuntimeError, match=r"pip install 'labelwise\[labelstudio\]'"):
        studio_sync.push(job)
    no_ls = config.build(JobConfig, {"run_dir": str(job.run_path)}, "test")
    assert cli.main(["annotate", str(tmp_path / "job.yaml"), "--push", "--set", "annotate.label_studio=null"]) == 1
    with pytest.raises(AnnotationError, match="need annotate.label_studio"):
        studio_sync.pull(no_ls)


def test_network_errors_name_the_server_not_the_token(tmp_path, monkeypatch):
    job, _ = make_run(tmp_path, f"http://127.0.0.1:{_free_port()}", "p")
    token = secrets.token_hex(20)
    monkeypatch.setenv(TOKEN_ENV, token)
    try:
        import label_studio_sdk  # noqa: F401
    except ImportError:
        _unavailable("the Label Studio SDK is not installed (pip install 'labelwise[labelstudio]')")
    with pytest.raises(RuntimeError, match=r"Label Studio at http://127\.0\.0\.1:\d+: listing projects") as e:
        studio_sync.push(job)
    assert token not in str(e.value)


VOTE = st.builds(
    Vote,
    response=st.sampled_from(["Paris", "paris ", "PARIS\n", "Lyon", "lyon", "Nice"]),
    annotator=st.sampled_from(["a", "b", "c", "d"]),
    at=st.integers(0, 10**6).map(lambda s: f"2026-11-30T{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{s % 997:06d}Z"),
    annotation=st.integers(1, 10**6),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(VOTE, min_size=1, max_size=8, unique_by=lambda v: v.annotation), st.randoms())
def test_pick_rules_hold_for_any_votes(votes, rnd):
    from labelwise.annotate.pick import one_vote_each

    each = one_vote_each(votes)
    assert len(each) == len({v.annotator for v in votes})
    shuffled = list(votes)
    rnd.shuffle(shuffled)
    for how in ("latest", "agreed"):
        assert pick(votes, how) == pick(shuffled, how)  # order of listing does not matter
    latest = pick(votes, "latest")
    assert isinstance(latest, Picked) and latest.response == each[-1].response
    agreed = pick(votes, "agreed")
    if isinstance(agreed, Picked):
        alike = [v for v in each if normalize(v.response) == normalize(agreed.response)]
        assert 2 * len(alike) > len(each) and agreed.annotators == tuple(v.annotator for v in alike)
        assert agreed.response == alike[-1].response
    else:
        assert isinstance(agreed, Disagreement) and 2 * agreed.largest <= agreed.annotators == len(each)


def _apply(plan, existing, next_id):
    """What the server holds after a push that follows ``plan``."""
    by_task = {t.task_id: t for t in existing}
    for task_id, data in plan.update:
        by_task[task_id].data = data
    for task_id, text in plan.predict:
        by_task[task_id].predictions.append({"model_version": "v", "result": textarea_result(text)})
    for item in plan.create:
        by_task[next_id] = Task(next_id, item["data"], [], list(item.get("predictions", [])))
        next_id += 1
    return list(by_task.values())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from([f"id{i}" for i in range(8)]), unique=True, max_size=8),
    st.sets(st.sampled_from([f"id{i}" for i in range(8)])),
    st.sets(st.sampled_from([f"id{i}" for i in range(8)])),
    st.sets(st.sampled_from([f"id{i}" for i in range(8)])),
)
def test_a_push_plan_is_idempotent_and_never_touches_answered_tasks(ids, on_server, answered, greedy_ids):
    selected = [{"id": i, "task": "t", "prompt": f"prompt {i}"} for i in ids]
    allocation = {"t": {"allocated": 1.5, "selected": len(ids), "pool_size": 9}}
    greedy = {i: f"greedy {i}" for i in greedy_ids}
    existing = [
        Task(k, {"id": i, "task": "t", "prompt": "old"}, [{"id": k}] if i in answered else [], [])
        for k, i in enumerate(sorted(on_server))
    ]
    before = {t.task_id: (dict(t.data), list(t.predictions)) for t in existing if t.answered}
    plan = plan_push(selected, allocation, greedy, existing, "v")
    touched = {t for t, _ in plan.update} | {t for t, _ in plan.predict}
    assert not touched & set(before)
    after = _apply(plan, existing, len(existing))
    again = plan_push(selected, allocation, greedy, after, "v")
    assert (again.create, again.update, again.predict) == ([], [], [])
    ids_on_server = [str(t.data["id"]) for t in after]
    assert sorted(ids_on_server) == sorted(set(ids) | on_server)  # one task per id, nothing removed
    for t in after:
        if t.task_id in before:
            assert (t.data, t.predictions) == before[t.task_id]
        elif t.data["id"] in ids:
            assert t.data == task_data({"id": t.data["id"], "task": "t", "prompt": f"prompt {t.data['id']}"}, allocation)
            assert [p["result"] for p in t.predictions] == ([textarea_result(greedy[t.data["id"]])] if t.data["id"] in greedy else [])


def test_who_and_when_go_into_labeled_jsonl_and_stay_there(tmp_path):
    """An answers file's annotators / answered_at (what a pull writes) are carried into
    labeled.jsonl and kept by later merges; a wrong type names the line."""
    from labelwise.annotate.stage import annotate

    job, rows = make_run(tmp_path, "http://127.0.0.1:9", "p", n=2, greedy=False)
    first = tmp_path / "first.jsonl"
    runio.write_jsonl(first, [{"id": "id0", "response": "a\n", "annotators": ["x@example.com"], "answered_at": "2026-11-30T10:00:00Z"}])
    annotate(job, answers=first, allow_partial=True)
    second = tmp_path / "second.csv"
    second.write_text("id,response,annotators,answered_at\nid1,b,y@example.com,2026-12-01\n", encoding="utf-8")
    annotate(job, answers=second)
    assert labeled(job) == [
        {"id": "id0", "task": "task 0", "prompt": rows[0]["prompt"], "response": "a\n", "annotators": ["x@example.com"], "answered_at": "2026-11-30T10:00:00Z"},
        {"id": "id1", "task": "task 1", "prompt": rows[1]["prompt"], "response": "b", "annotators": ["y@example.com"], "answered_at": "2026-12-01"},
    ]
    assert contracts.read_labeled(job.run_path / contracts.LABELED)  # still a valid labeled.jsonl
    bad = tmp_path / "bad.jsonl"
    runio.write_jsonl(bad, [{"id": "id0", "response": "a\n", "annotators": [3]}])
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: annotators must be a list of names"):
        annotate(job, answers=bad)


def test_each_round_gets_its_own_project(tmp_path):
    """With rounds, `annotate --round N --push` works in run_dir/rounds/rN: one project per round."""
    import types

    from labelwise.annotate.studio_sync import project_title

    def job(run_dir, project=None):
        return types.SimpleNamespace(run_dir=str(run_dir), annotate=types.SimpleNamespace(
            label_studio=types.SimpleNamespace(project=project)))

    run = tmp_path / "myrun"
    assert project_title(job(run)) == "labelwise myrun"
    assert project_title(job(run / "rounds" / "r2")) == "labelwise myrun round 2"
    assert project_title(job(run / "rounds" / "r2", "Team A")) == "Team A round 2"
    assert project_title(job(tmp_path / "r2")) == "labelwise r2"  # not under rounds/: a plain run named r2
