"""The pool stage: a user's data (or a built-in pool) -> pool.parquet + test.parquet.

records.py  Raw records, stable ids, column mapping and prompt templates
readers.py  JSONL / JSON / CSV / TSV / Parquet / HF-saved readers, local or pyarrow fs URIs
formats.py  format adapters (Dolly, Alpaca, AlpacaEval, FLAN CoT, Tulu FLAN, SNI, niv2)
multitask.py builtin:multitask (the packaged default: 21 real tasks in data/, made by
            scripts/build_builtin_pool.py)
bigbench.py builtin:bigbench (real BIG-bench tasks from a local copy: pool.bigbench_path or
            LABELWISE_BIGBENCH, the bigbench 1.0.0 sdist or a folder; indexed once per copy)
skills.py   builtin:skills (seeded generated tasks with exact answers)
infer.py    k-means task inference on sentence embeddings
build.py    cleaning, duplicates, task filters and caps, held-out split (plain functions)
summary.py  the printed pool summary
stage.py    build_pool / read_pool / read_test / read_meta / pool_dataset, `labelwise pool`
"""
