"""Loaders and format adapters, on the real files in ../shared/data where they exist and on
small files in the real format (Dolly, Alpaca, Tulu FLAN, HF save_to_disk) otherwise."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelwise.config import build
from labelwise.pool.build import build_tables
from labelwise.pool.config import PoolConfig
from labelwise.pool.formats import source_records


def load(source, **kw):
    cfg = build(PoolConfig, {"source": str(source), **kw}, "job.yaml: pool")
    records, info = source_records(cfg)
    pool, test, meta = build_tables(cfg, records, info)
    return pool, test, meta


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


DOLLY = [
    {"instruction": "When did Virgin Australia start operating?", "context": "Virgin Australia commenced services on 31 August 2000.", "response": "31 August 2000.", "category": "closed_qa"},
    {"instruction": "Which is a species of fish? Tope or Rope", "context": "", "response": "Tope", "category": "classification"},
    {"instruction": "Why can camels survive long without water?", "context": "", "response": "They store fat in their humps.", "category": "open_qa"},
    {"instruction": "  ", "context": "", "response": "x", "category": "open_qa"},
    {"instruction": "Name a prime.", "context": "", "response": "7", "category": ""},
]


def test_dolly_jsonl(tmp_path):
    pool, test, meta = load(write_jsonl(tmp_path / "dolly.jsonl", DOLLY), test_fraction=0)
    assert meta["source"]["format"] == "dolly"
    row = pool[pool.task == "closed_qa"].iloc[0]
    assert row.prompt == "When did Virgin Australia start operating?\n\nVirgin Australia commenced services on 31 August 2000."
    assert row.response == "31 August 2000." and row.source == "dolly.jsonl"
    assert pool[pool.task == "classification"].iloc[0].prompt == "Which is a species of fish? Tope or Rope"
    assert meta["dropped"]["empty prompt"] == {"count": 1, "examples": [f"{tmp_path}/dolly.jsonl:4"]}
    assert meta["dropped"]["no task"]["examples"] == [f"{tmp_path}/dolly.jsonl:5"]


def test_ids_survive_moving_rows_and_folders(tmp_path):
    a = write_jsonl(tmp_path / "dolly.jsonl", DOLLY)
    (tmp_path / "moved").mkdir()
    b = write_jsonl(tmp_path / "moved" / "dolly.jsonl", list(reversed(DOLLY)))
    pa_, _, _ = load(a, test_fraction=0)
    pb, _, _ = load(b, test_fraction=0)
    assert pa_.equals(pb)


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "response": "b", "task": "t"}\n\n{"prompt": "c", oops}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: not valid JSON"):
        load(path)
    path.write_text('{"prompt": "a", "response": "b", "task": "t"}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: expected a JSON object, got list"):
        load(path)


def test_csv_mapping_template_and_errors(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text('question,context,answer,kind\n"What, exactly?",ctx one,yes,alpha\nWhy?,,no,beta\n')
    pool, _, meta = load(path, columns={"response": "answer", "task": "kind"}, prompt_template="{question}\n\n{context}", test_fraction=0)
    assert sorted(pool.prompt) == ["What, exactly?\n\nctx one", "Why?"]
    assert meta["source"]["format"] == "table"
    with pytest.raises(ValueError, match=r"qa.csv: column 'prompt' not found; columns found: question, context, answer, kind"):
        load(path, columns={"task": "kind"})
    path.write_text("prompt,response,task\na,b,t\nc,d\n")
    with pytest.raises(ValueError, match=r"qa.csv:3: 2 fields, expected 3"):
        load(path)


def test_table_without_task_column_needs_a_task(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "c", "response": "d"}])
    with pytest.raises(ValueError, match=r"no task column; set pool.columns.task, pool.task"):
        load(path)
    pool, _, _ = load(path, task="mine", test_fraction=0)
    assert set(pool.task) == {"mine"}


def test_unlabeled_data_keeps_empty_responses(tmp_path):
    path = write_jsonl(tmp_path / "u.jsonl", [{"prompt": "a", "task": "t"}, {"prompt": "b", "task": "t"}])
    pool, _, meta = load(path, columns={"response": ""}, test_fraction=0)
    assert list(pool.response) == ["", ""]
    assert any("no gold response" in w for w in meta["warnings"])


def test_parquet_through_a_pyarrow_filesystem_uri(tmp_path):
    table = pa.table({"prompt": ["p1", "p2", "p3"], "response": ["r1", "r2", "r3"], "task": ["a", "a", "b"]})
    pq.write_table(table, tmp_path / "pool.parquet")
    pool, _, meta = load(f"file://{tmp_path}/pool.parquet", test_fraction=0)
    assert sorted(pool.prompt) == ["p1", "p2", "p3"]
    assert meta["source"]["files"] == [f"{tmp_path}/pool.parquet"]
    with pytest.raises(FileNotFoundError, match="pool source not found"):
        load(f"file://{tmp_path}/nope.parquet")


def _save_hf(folder, table):
    """What datasets.Dataset.save_to_disk writes: Arrow stream files + state.json."""
    folder.mkdir(parents=True)
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_split": None}))
    (folder / "dataset_info.json").write_text("{}")


def test_hf_saved_dataset_and_dataset_dict(tmp_path):
    table = pa.table({"instruction": ["Add 2 and 2.", "Name a color."], "input": ["", ""], "output": ["4", "red"]})
    _save_hf(tmp_path / "ds", table)
    pool, _, meta = load(tmp_path / "ds", columns={"prompt": "instruction", "response": "output"}, task="hf", test_fraction=0)
    assert sorted(pool.response) == ["4", "red"] and meta["source"]["format"] == "table"
    _save_hf(tmp_path / "dd" / "train", table)
    (tmp_path / "dd" / "dataset_dict.json").write_text(json.dumps({"splits": ["train"]}))
    pool, _, _ = load(tmp_path / "dd", format="alpaca", task="hf", test_fraction=0)
    assert sorted(pool.prompt) == ["Add 2 and 2.", "Name a color."]
    with pytest.raises(ValueError, match=r"split 'validation' not found; splits: train"):
        load(tmp_path / "dd", format="alpaca", task="hf", split="validation")


def test_hub_dataset_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"hf:org/data: "):
        load("hf:org/data", task="x")


def test_alpaca_json(tmp_path):
    path = tmp_path / "alpaca_data.json"
    path.write_text(json.dumps([
        {"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat well."},
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    ]))
    pool, _, meta = load(path, task="alpaca", test_fraction=0)
    assert meta["source"]["format"] == "alpaca"
    assert sorted(pool.prompt) == ["Give three tips for staying healthy.", "Translate to French.\n\nGood morning"]


def test_tulu_and_raw_flan_jsonl(tmp_path):
    tulu = write_jsonl(tmp_path / "flan_v2_data.jsonl", [
        {"dataset": "flan_v2", "id": "flan_v2_0", "messages": [{"role": "user", "content": "Is 7 prime?"}, {"role": "assistant", "content": "yes"}]},
        {"dataset": "flan_v2", "id": "flan_v2_1", "messages": [{"role": "user", "content": "Capital of Peru?"}, {"role": "assistant", "content": "Lima"}]},
    ])
    pool, _, meta = load(tulu, task="flan_v2", test_fraction=0)
    assert meta["source"]["format"] == "flan"
    assert sorted(zip(pool.prompt, pool.response)) == [("Capital of Peru?", "Lima"), ("Is 7 prime?", "yes")]
    raw = write_jsonl(tmp_path / "flan_raw.jsonl", [
        {"inputs": "Premise: a. Hypothesis: b.", "targets": "no", "_task_name": "anli_r1", "_template_type": "zs_opt"},
        {"inputs": "Translate: hola", "targets": "hello", "_task_name": "wmt_es_en"},
    ])
    pool, _, _ = load(raw, test_fraction=0)
    assert sorted(pool.task) == ["anli_r1", "wmt_es_en"]


def test_flan_v2_cot_real_tsvs(shared_data):
    pool, test, meta = load(shared_data / "flan_v2_cot", max_per_task=200, test_max_per_task=10)
    assert meta["source"]["format"] == "flan_cot"
    assert [f.split("/")[-1] for f in meta["source"]["ignored_files"]] == ["flan_collection_info.csv"]
    assert sorted(set(pool.task)) == ["cot_aqua", "cot_creak", "cot_ecqa", "cot_gsm8k", "cot_qasc", "cot_sensemaking", "cot_strategyqa"]
    assert meta["n_read"] == 33443  # every row of the 7 files read, none lost
    assert len(test) == 70 and len(pool) == 7 * 190
    gsm = pool[pool.task == "cot_gsm8k"]
    assert gsm.response.str.fullmatch(r"-?[\d,\.]+").all()
    assert not pool.prompt.str.contains(r"\\n", regex=False).any()  # literal \n became newlines
    pool2, _, _ = load(shared_data / "flan_v2_cot" / "cot_qasc_train.tsv", response_template="{rationale} So the answer is {answer}.", max_per_task=5, test_fraction=0)
    assert pool2.response.str.endswith(".").all() and (pool2.response.str.len() > 20).all()


def test_sni_real_task_files(shared_data):
    pool, test, meta = load(shared_data / "sni", max_per_task=50, test_max_per_task=5)
    assert meta["source"]["format"] == "sni"
    assert pool.task.nunique() == 5 and len(test) == 25
    copa = pool[pool.task == "task1393_superglue_copa_text_completion"].iloc[0]
    assert copa.prompt.startswith("In this task") and copa.response in ("A", "B")
    assert meta["n_read"] == 15319


def test_alpaca_eval_real_prompt_file(shared_data):
    pool, test, meta = load(shared_data / "alpaca_eval" / "gpt4_model_outputs.json")
    assert meta["source"]["format"] == "alpaca_eval"
    assert meta["n_read"] == 805 and len(pool) + len(test) == 805
    assert set(pool.task) == {"helpful_base", "koala", "oasst", "selfinstruct", "vicuna"}


def test_niv2_lite_real_file_reports_rows_without_category(shared_data):
    pool, test, meta = load(shared_data / "niv2" / "niv2_lite.jsonl", test_fraction=0)
    assert meta["source"]["format"] == "niv2"
    assert meta["dropped"]["no task"]["count"] == 98
    assert meta["n_read"] == 1654 == meta["n_pool"] + meta["n_dropped"]
    assert "Translation" in set(pool.task)


def test_data_dir_variable_in_source(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "d.jsonl", DOLLY[:2])
    monkeypatch.setenv("LABELWISE_DATA_DIR", str(tmp_path))
    pool, _, _ = load("${LABELWISE_DATA_DIR}/d.jsonl", test_fraction=0)
    assert len(pool) == 2


def test_stage_and_config_imports_stay_light():
    import subprocess
    import sys

    code = (
        "import sys, labelwise.pool.stage, labelwise.pool.config;"
        "heavy = [m for m in ('torch', 'ray', 'transformers', 'pandas', 'pyarrow') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_rows_missing_the_task_key_or_an_optional_column_are_counted_not_fatal(tmp_path):
    rows = [
        {"instruction": "Name a prime.", "context": "", "response": "7"},  # no category key, first row
        {"instruction": "Why is the sky blue?", "response": "Scattering.", "category": "open_qa"},  # no context key
        {"instruction": "Sum 2 and 2.", "context": "", "response": "4", "category": None},
        {"instruction": "Capital of France?", "context": "Geography.", "response": "Paris", "category": "closed_qa"},
    ]
    path = write_jsonl(tmp_path / "dolly.jsonl", rows)
    pool, _, meta = load(path, format="dolly", test_fraction=0)
    assert sorted(pool.task) == ["closed_qa", "open_qa"]
    assert pool[pool.task == "open_qa"].iloc[0].prompt == "Why is the sky blue?"
    assert meta["dropped"]["no task"] == {"count": 2, "examples": [f"{path}:1", f"{path}:3"]}
    assert meta["absent_columns"]["category"] == {"count": 1, "examples": [f"{path}:1"]}
    assert meta["absent_columns"]["context"] == {"count": 1, "examples": [f"{path}:2"]}
    assert meta["n_read"] == 4 == meta["n_pool"] + meta["n_dropped"]

    from labelwise.pool.summary import format_summary

    text = format_summary(meta)
    assert "rows without column 'context' (read as empty): 1" in text and f"{path}:2" in text


def test_a_table_whose_first_row_lacks_the_task_key_keeps_its_task_column(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "c", "response": "d", "task": "x"}])
    pool, _, meta = load(path, test_fraction=0)
    assert list(pool.task) == ["x"] and meta["dropped"]["no task"]["examples"] == [f"{path}:1"]


def test_a_column_absent_from_a_whole_file_is_an_error_listing_the_columns(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"prompt": "p", "response": "r", "task": "t"}])
    write_jsonl(folder / "b.jsonl", [{"question": "q", "response": "r", "task": "t"}])
    with pytest.raises(ValueError, match=r"b.jsonl: column 'prompt' not found; columns found: question, response, task"):
        load(folder)


def test_hub_source_without_datasets_names_the_extra(monkeypatch):
    import sys

    from labelwise.pool import readers

    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(FileNotFoundError, match=r"hf:org/data: the `datasets` library is not installed: pip install 'labelwise\[hf\]'"):
        next(readers.read_hf_hub("org/data"))
