"""Annotate stage: merging answers (JSONL / CSV) into labeled.jsonl, simulation, round trip."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelwise import config, contracts, runio, textio
from labelwise.annotate.answers import export_for_annotation, read_answers
from labelwise.annotate.merge import AnnotationError
from labelwise.annotate.stage import annotate, export, main
from labelwise.job import JobConfig

TRICKY = [
    "plain",
    'commas, "quotes" and\nnewlines\r\nand a tab\there',
    "unicode: héllo — 日本語 🙂",
    "  leading and trailing spaces  ",
    "=SUM(A1:A2) looks like a formula",
    "NaN",
    "null",
]


def make_run(tmp_path, n=6, gold=None):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"id": f"id{i}", "task": f"t{i % 2}", "prompt": f"prompt {i}: {TRICKY[i % len(TRICKY)]}"} for i in range(n)]
    runio.write_jsonl(run / contracts.TO_ANNOTATE, rows)
    gold = gold or {r["id"]: f"gold {r['id']}" for r in rows}
    pool = pd.DataFrame(
        {
            "id": [r["id"] for r in rows] + ["other"],
            "task": [r["task"] for r in rows] + ["t0"],
            "prompt": [r["prompt"] for r in rows] + ["unselected"],
            "response": [gold[r["id"]] for r in rows] + ["x"],
            "source": "test",
        }
    )
    runio.write_parquet(run / contracts.POOL, pool)
    job = config.build(JobConfig, {"run_dir": str(run), "annotate": {"simulate": False}}, "test")
    return job, rows


def labeled(job):
    return textio.read_jsonl(job.run_path / contracts.LABELED)


def write_answers(path, records):
    runio.write_jsonl(path, records)
    return path


def test_simulate_takes_gold_responses_in_selection_order(tmp_path):
    job, rows = make_run(tmp_path)
    out = annotate(job, simulate=True)
    got = labeled(job)
    assert [r["id"] for r in got] == [r["id"] for r in rows]
    assert all(r["response"] == f"gold {r['id']}" for r in got)
    assert set(got[0]) == {"id", "task", "prompt", "response"}
    assert out == job.run_path / contracts.LABELED


def test_simulate_errors_when_selected_id_not_in_pool(tmp_path):
    job, rows = make_run(tmp_path)
    runio.write_jsonl(job.run_path / contracts.TO_ANNOTATE, rows + [{"id": "ghost", "task": "t0", "prompt": "p"}])
    with pytest.raises(AnnotationError, match="ghost"):
        annotate(job, simulate=True)


def test_answers_jsonl_and_missing_answers_write_nothing(tmp_path):
    job, rows = make_run(tmp_path)
    path = write_answers(tmp_path / "a.jsonl", [{"id": r["id"], "response": "r"} for r in rows[:4]])
    with pytest.raises(AnnotationError) as e:
        annotate(job, answers=path)
    assert "id4" in str(e.value) and "id5" in str(e.value) and "nothing written" in str(e.value)
    assert not (job.run_path / contracts.LABELED).exists()


def test_partial_then_more_answers_keeps_earlier_ones(tmp_path):
    job, rows = make_run(tmp_path)
    first = write_answers(tmp_path / "a.jsonl", [{"id": r["id"], "response": f"first {r['id']}"} for r in rows[:3]])
    annotate(job, answers=first, allow_partial=True)
    assert [r["id"] for r in labeled(job)] == ["id0", "id1", "id2"]
    # The second file repeats one earlier answer unchanged and adds the rest.
    second = write_answers(
        tmp_path / "b.jsonl",
        [{"id": "id2", "response": "first id2"}] + [{"id": r["id"], "response": f"second {r['id']}"} for r in rows[3:]],
    )
    annotate(job, answers=second)
    got = {r["id"]: r["response"] for r in labeled(job)}
    assert got == {**{f"id{i}": f"first id{i}" for i in range(3)}, **{f"id{i}": f"second id{i}" for i in range(3, 6)}}
    # Simulation later fills nothing new and keeps the human answers.
    annotate(job, simulate=True)
    assert {r["id"]: r["response"] for r in labeled(job)} == got


def test_changed_earlier_answer_is_an_error(tmp_path):
    job, rows = make_run(tmp_path)
    annotate(job, answers=write_answers(tmp_path / "a.jsonl", [{"id": "id0", "response": "one"}]), allow_partial=True)
    with pytest.raises(AnnotationError, match="id0"):
        annotate(job, answers=write_answers(tmp_path / "b.jsonl", [{"id": "id0", "response": "two"}]), allow_partial=True)
    assert labeled(job)[0]["response"] == "one"


@pytest.mark.parametrize(
    "records, needle",
    [
        ([{"id": "nope", "response": "x"}, {"id": "zilch", "response": "y"}], "nope.*zilch"),
        ([{"id": "id0", "response": "x"}, {"id": "id0", "response": "y"}], r"id0 \(.*a.jsonl:1 and .*a.jsonl:2\)"),
        ([{"id": "id0", "response": "  "}, {"id": "id1", "response": ""}, {"id": "id2", "response": "\n"}], r"2 answers are only whitespace.*id0.*id2"),
        ([{"id": "id0", "response": "x", "prompt": "another prompt"}], "id0.*prompt differs"),
    ],
    ids=["unknown", "duplicate", "whitespace", "wrong-prompt"],
)
def test_bad_answers_are_errors_listing_them(tmp_path, records, needle):
    job, _ = make_run(tmp_path)
    with pytest.raises(AnnotationError, match=needle):
        annotate(job, answers=write_answers(tmp_path / "a.jsonl", records), allow_partial=True)
    assert not (job.run_path / contracts.LABELED).exists()


def test_malformed_files_name_the_line(tmp_path):
    job, _ = make_run(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "id0", "response": "x"}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        annotate(job, answers=bad)
    nohead = tmp_path / "bad.csv"
    nohead.write_text("identifier,text\nid0,x\n")
    with pytest.raises(ValueError, match=r"bad.csv:1.*id and response"):
        annotate(job, answers=nohead)
    noid = tmp_path / "noid.jsonl"
    noid.write_text('{"response": "x"}\n')
    with pytest.raises(ValueError, match=r"noid.jsonl:1: record has no id"):
        read_answers(noid)


def test_csv_answers_with_answer_column(tmp_path):
    job, rows = make_run(tmp_path)
    path = tmp_path / "a.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "answer"])
        for r in rows:
            w.writerow([r["id"], f"ans,{r['id']}\nline2"])
    annotate(job, answers=path)
    assert [r["response"] for r in labeled(job)] == [f"ans,{r['id']}\nline2" for r in rows]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".tsv"])
def test_export_import_round_trip_loses_nothing(tmp_path, suffix):
    job, rows = make_run(tmp_path, n=len(TRICKY))
    path = export(job, tmp_path / f"for_annotators{suffix}")
    # An annotator fills in every response (tricky text) and sends the file back.
    records = read_answers(path)
    assert [(a.id, a.task, a.prompt) for a in records] == [(r["id"], r["task"], r["prompt"]) for r in rows]
    answers = {r["id"]: TRICKY[(i + 1) % len(TRICKY)] for i, r in enumerate(rows)}
    filled = [{**r, "response": answers[r["id"]]} for r in rows]
    export_for_annotation(filled, path, done=answers)
    annotate(job, answers=path)
    assert labeled(job) == [{"id": r["id"], "task": r["task"], "prompt": r["prompt"], "response": answers[r["id"]]} for r in rows]
    # Exporting again pre-fills the collected answers, and re-importing changes nothing.
    before = (job.run_path / contracts.LABELED).read_bytes()
    export(job, path)
    annotate(job, answers=path)
    assert (job.run_path / contracts.LABELED).read_bytes() == before


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_partial_export_round_trip(tmp_path, suffix, capsys):
    """export -> answer some -> import (partial) -> export -> answer the rest -> import."""
    job, rows = make_run(tmp_path)
    path = export(job, tmp_path / f"batch{suffix}")
    assert [a.response for a in read_answers(path)] == [""] * len(rows)  # blank cells: not answered yet

    # The annotator fills in the first half and sends the same file back.
    first = {r["id"]: f"first answer to {r['id']}, with, commas" for r in rows[:3]}
    export_for_annotation(rows, path, done=first)
    with pytest.raises(AnnotationError, match=r"3 of 6 selected prompts have no answer.*id3, id4, id5"):
        annotate(job, answers=path)  # without --allow-partial: missing, listed, nothing written
    assert not (job.run_path / contracts.LABELED).exists()
    annotate(job, answers=path, allow_partial=True)
    assert {r["id"]: r["response"] for r in labeled(job)} == first
    assert "3 left blank" in capsys.readouterr().err

    # Export again: the collected answers come pre-filled, the rest blank; answer the rest.
    path2 = export(job, tmp_path / f"batch2{suffix}")
    assert {a.id: a.response for a in read_answers(path2)} == {**first, "id3": "", "id4": "", "id5": ""}
    rest = {r["id"]: f"later answer to {r['id']}" for r in rows[3:]}
    export_for_annotation(rows, path2, done={**first, **rest})
    annotate(job, answers=path2)
    assert labeled(job) == [{**r, "response": {**first, **rest}[r["id"]]} for r in rows]

    # The first file, still half blank, imported again: its blanks do not erase anything.
    before = (job.run_path / contracts.LABELED).read_bytes()
    annotate(job, answers=path)
    assert (job.run_path / contracts.LABELED).read_bytes() == before


def test_null_answer_in_jsonl_counts_as_not_answered(tmp_path):
    job, rows = make_run(tmp_path, n=2)
    path = write_answers(tmp_path / "a.jsonl", [{"id": "id0", "response": None}, {"id": "id1", "response": "yes"}])
    annotate(job, answers=path, allow_partial=True)
    assert [r["id"] for r in labeled(job)] == ["id1"]


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1).filter(lambda s: s.strip())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.tuples(text, text), min_size=1, max_size=5), fmt=st.sampled_from([".csv", ".jsonl"]))
def test_round_trip_any_text(tmp_path_factory, texts, fmt):
    tmp = tmp_path_factory.mktemp("rt")
    rows = [{"id": f"x{i}", "task": "t", "prompt": p} for i, (p, _) in enumerate(texts)]
    done = {f"x{i}": r for i, (_, r) in enumerate(texts)}
    path = export_for_annotation(rows, tmp / f"f{fmt}", done=done)
    got = read_answers(path)
    assert [(a.id, a.prompt, a.response) for a in got] == [(r["id"], r["prompt"], done[r["id"]]) for r in rows]


def test_cli_main_reports_errors_and_partial(tmp_path, capsys):
    import argparse

    job, rows = make_run(tmp_path)
    path = write_answers(tmp_path / "a.jsonl", [{"id": "id0", "response": "x"}])
    args = argparse.Namespace(simulate=None, answers=str(path), export=None, allow_partial=None)
    assert main(job, args) == 1  # answer errors are stage errors: exit 1, like every stage
    assert "id5" in capsys.readouterr().err
    args.allow_partial = True
    assert main(job, args) == 0
    assert len(labeled(job)) == 1
    assert "partial, 5 missing" in capsys.readouterr().err


def test_cli_parses_annotate_options(tmp_path):
    from labelwise.cli import build_parser

    args = build_parser().parse_args(["annotate", "job.yaml", "--answers", "a.csv", "--allow-partial"])
    assert args.answers == "a.csv" and args.allow_partial and args.simulate is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["annotate", "job.yaml", "--answers", "a.csv", "--simulate"])


def test_config_answers_used_and_missing_input_is_explained(tmp_path):
    job, rows = make_run(tmp_path)
    with pytest.raises(AnnotationError, match="--answers FILE"):
        annotate(job)
    path = write_answers(tmp_path / "a.jsonl", [{"id": r["id"], "response": "ok"} for r in rows])
    job.annotate.answers = str(path)
    annotate(job)
    assert len(labeled(job)) == len(rows)
    with pytest.raises(config.ConfigError, match="annotate.answers"):
        config.build(JobConfig, {"annotate": {"answers": " "}}, "job.yaml")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_export_refuses_to_overwrite_answers_not_yet_imported(tmp_path, suffix, capsys):
    import argparse

    job, rows = make_run(tmp_path)
    path = export(job, tmp_path / f"batch{suffix}")
    export(job, path)  # a file with only blank answers may be written again
    filled = {r["id"]: f"answer {r['id']}" for r in rows[:4]}
    export_for_annotation(rows, path, done=filled)  # the annotators' work
    before = path.read_bytes()
    with pytest.raises(AnnotationError, match=r"holds 4 answers.*--merge.*--force.*id0 \(.*:2\)"):
        export(job, path)
    assert path.read_bytes() == before
    args = argparse.Namespace(simulate=None, answers=None, export=str(path), allow_partial=None, force=False, merge=False)
    assert main(job, args) == 1
    assert "--force" in capsys.readouterr().err
    assert path.read_bytes() == before
    # Once imported, the same answers are carried by a new export: nothing to lose.
    annotate(job, answers=path, allow_partial=True)
    export(job, path)
    assert {a.id: a.response for a in read_answers(path)} == {r["id"]: filled.get(r["id"], "") for r in rows}
    # --force overwrites answers not imported.
    export_for_annotation(rows, path, done={**filled, "id5": "late"})
    export(job, path, force=True)
    assert read_answers(path)[5].response == ""


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_export_merge_keeps_answers_and_adds_new_prompts(tmp_path, suffix):
    job, rows = make_run(tmp_path)
    path = tmp_path / f"batch{suffix}"
    # An older export held the first three prompts; two were answered since.
    export_for_annotation(rows[:3], path, done={"id0": "zero", "id2": "two"})
    export(job, path, merge=True)
    got = read_answers(path)
    assert [(a.id, a.prompt) for a in got] == [(r["id"], r["prompt"]) for r in rows]
    assert {a.id: a.response for a in got} == {"id0": "zero", "id1": "", "id2": "two", "id3": "", "id4": "", "id5": ""}
    # An answer for an id that is no longer selected is refused, not dropped.
    export_for_annotation([*rows, {"id": "gone", "task": "t0", "prompt": "p"}], path, done={"gone": "kept?"})
    before = path.read_bytes()
    with pytest.raises(AnnotationError, match=r"not in to_annotate.*: gone \(.*batch"):
        export(job, path, merge=True)
    assert path.read_bytes() == before


def test_export_options_need_export(tmp_path, capsys):
    import argparse

    job, _ = make_run(tmp_path)
    args = argparse.Namespace(simulate=True, answers=None, export=None, allow_partial=None, force=True, merge=False)
    assert main(job, args) == 2
    assert "--export" in capsys.readouterr().err


def test_answers_differing_only_in_line_endings_or_id_spaces_are_accepted(tmp_path):
    job, rows = make_run(tmp_path, n=3)
    rows[1]["prompt"] = "two lines\nof prompt"
    runio.write_jsonl(job.run_path / contracts.TO_ANNOTATE, rows)
    path = tmp_path / "from_excel.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(["id", "task", "prompt", "response"])
        for r in rows:  # Windows line endings inside the cells, spaces around the ids
            w.writerow([f" {r['id']}  ", f"{r['task']} ", r["prompt"].replace("\n", "\r\n"), f"answer {r['id']}"])
    annotate(job, answers=path)
    assert labeled(job) == [{**r, "response": f"answer {r['id']}"} for r in rows]


def test_a_changed_prompt_is_refused_saying_where_it_differs(tmp_path):
    job, rows = make_run(tmp_path, n=2)
    path = write_answers(tmp_path / "a.jsonl", [
        {"id": "id0", "prompt": rows[0]["prompt"].replace("prompt 0", "prompt 9"), "response": "x"},
        {"id": "id1", "task": "other", "response": "y"},
    ])
    with pytest.raises(AnnotationError, match=r"id0 \(.*a\.jsonl:1: prompt differs from character 8: 'prompt 9.*' in the file, 'prompt 0.*' selected\).*id1 \(.*:2: task 'other', selected 't1'\)"):
        annotate(job, answers=path)
