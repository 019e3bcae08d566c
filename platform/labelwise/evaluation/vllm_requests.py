"""Evaluation and judge requests on vLLM (``evaluate.engine`` / ``judge.engine``: vllm), through
Ray Data's LLM API. The same request kinds as the HF runner (evaluation/runner.py), the same
tokens (evaluation/tokens.py splits and truncates them), results in request order:

* ``loglik``: one request per continuation, the context + continuation token ids with
  ``prompt_logprobs=0`` (the log-probability of every prompt token as the model saw it) and
  one generated token that is thrown away; the continuation's tokens' log-probabilities are
  summed. Requests of one context share its prefill through vLLM's prefix cache.
* ``generate``: greedy, ``max_new_tokens``, stop strings; the text is cut at the first stop
  string as the HF runner cuts it.
* ``answer``: both, for one prompt (the held-out benchmark): the gold continuation's
  log-likelihood and, when asked, the greedy answer, as two requests. They do not share the
  prompt's prefill: vLLM does not read its prefix cache for a request that asks for
  prompt_logprobs, and every request asks (with 0) so that Ray Data's blocks keep one type
  for the field.

A LoRA adapter (a trained model's evaluation, a judge adapter) is served as a vLLM LoRA
request on the base model (``enable_lora``), so no merged copy of the weights is written.
"""

from __future__ import annotations

import functools

from labelwise.evaluation import tokens as tok_mod


def _request(row: dict, *, lora: str | None) -> dict:
    p = row["params"]  # back from Arrow: plain types again
    params = {
        "temperature": 0.0,
        "max_tokens": int(p["max_tokens"]),
        "prompt_logprobs": int(p["prompt_logprobs"]),
        "detokenize": bool(p["detokenize"]),
        "skip_special_tokens": True,
        "stop": [str(x) for x in (p.get("stop") if p.get("stop") is not None else [])],
    }
    out = {"key": row["key"], "tokenized_prompt": [int(x) for x in row["ids"]], "sampling_params": params}
    if lora:
        out["model"] = lora
    return out


def _result(row: dict) -> dict:
    """Keep what the requests need: generated text, prompt log-probs of the actual tokens."""
    plp = row.get("prompt_logprobs")
    ids = row.get("prompt_token_ids") or []
    actual = None
    if plp is not None:
        actual = []
        for i, entry in enumerate(plp):
            if entry is None:  # the first token has no log-probability
                actual.append(None)
                continue
            tok = ids[i]
            hit = entry.get(tok, entry.get(str(tok)))
            actual.append(None if hit is None else float(hit["logprob"]))
    return {"key": row["key"], "text": row.get("generated_text") or "", "prompt_logprobs": actual}


def plan(kind: str, payloads: list[dict], tokenizer, max_length: int, context_limit: int) -> tuple[list[dict], callable]:
    """Engine rows for ``payloads`` and a function that turns the results by key into the
    runner's result dicts (in order)."""
    rows: list[dict] = []
    # every request has the same keys: Ray Data stores the rows in Arrow, where a key missing
    # from some rows comes back as None
    score_only = {"temperature": 0.0, "max_tokens": 1, "prompt_logprobs": 0, "detokenize": False,
                  "skip_special_tokens": True, "stop": []}

    def loglik_rows(i: int, context: str, continuations: list[str]) -> list[tuple[str, int]]:
        keys = []
        for j, cont in enumerate(continuations):
            ctx_ids, cont_ids = tok_mod.split_pair(tokenizer, context, cont)
            # as the HF runner's units: the last max_length + 1 tokens (one less at the
            # model's own limit, which must also hold the one generated token)
            whole = (ctx_ids + cont_ids)[-min(max_length + 1, context_limit - 1):]
            if len(cont_ids) >= len(whole):
                raise ValueError(f"request {i}: continuation longer than max_length={max_length}")
            key = f"{i}:ll:{j}"
            rows.append({"key": key, "ids": whole, "params": score_only})
            keys.append((key, len(cont_ids)))
        return keys

    def gen_row(i: int, prompt: str, max_new: int, stop: list[str]) -> str:
        ids = tok_mod.encode(tokenizer, prompt)[-max(1, max_length - max_new):]
        key = f"{i}:gen"
        # prompt_logprobs 0 here too, unused: Ray Data's blocks turn a column of ints and
        # Nones into floats, which vLLM refuses
        params = {"temperature": 0.0, "max_tokens": int(max_new), "prompt_logprobs": 0, "detokenize": True,
                  "skip_special_tokens": True, "stop": list(stop)}
        rows.append({"key": key, "ids": ids, "params": params})
        return key

    wanted: list[dict] = []
    for i, p in enumerate(payloads):
        if kind == "loglik":
            wanted.append({"ll": loglik_rows(i, p["context"], list(p["continuations"]))})
        elif kind == "generate":
            wanted.append({"gen": gen_row(i, p["prompt"], int(p["max_new_tokens"]), p.get("stop") or []), "stop": p.get("stop") or []})
        elif kind == "answer":
            w = {"ll": loglik_rows(i, p["context"], [p["continuation"]]), "stop": p.get("stop") or []}
            if p.get("generate"):
                w["gen"] = gen_row(i, p["context"], int(p["max_new_tokens"]), w["stop"])
            wanted.append(w)
        else:
            raise ValueError(f"unknown request kind {kind!r} (known: loglik, generate, answer)")

    def assemble(results: dict[str, dict]) -> list[dict]:
        out = []
        for w in wanted:
            r: dict = {}
            if "ll" in w:
                sums, counts = [], []
                for key, n in w["ll"]:
                    lps = results[key]["prompt_logprobs"][-n:]
                    if any(x is None for x in lps):
                        raise RuntimeError(f"vLLM returned no prompt log-probability for request {key}")
                    sums.append(float(sum(lps)))
                    counts.append(n)
                r.update(logprobs=sums, n_tokens=counts)
            if "gen" in w:
                r["text"] = tok_mod.cut_at_stop(results[w["gen"]]["text"], w["stop"])
            elif kind == "answer":
                r["text"] = None
            out.append(r)
        return out

    return rows, assemble


def run_on_vllm(kind: str, payloads: list[dict], spec, settings, *, ray_config=None, engine_kwargs=None,
                max_replicas: int | None = None) -> list[dict]:
    """Answer ``payloads`` (all of one ``kind``) on vLLM; results in request order."""
    from ray.data.llm import build_processor

    from labelwise import engines
    from labelwise.models import load_tokenizer, pick_device, pick_dtype, resolve
    from labelwise.ray_start import init_ray

    if not payloads:
        return []
    ray = init_ray(ray_config)
    device = spec.model.device
    if device == "auto":
        device = "cuda" if ray.cluster_resources().get("GPU", 0) else pick_device("auto")
    dtype = str(pick_dtype(spec.model.dtype, device)).removeprefix("torch.")
    tokenizer = load_tokenizer(spec.model)
    from transformers import AutoConfig

    context = getattr(AutoConfig.from_pretrained(resolve(spec.model.name)), "max_position_embeddings", None) or 2048
    max_length = min(settings.max_length or context, context)
    rows, assemble = plan(kind, payloads, tokenizer, max_length, int(context))
    lora_kwargs, lora = engines.lora(spec.adapter)
    extra = {"max_model_len": int(context), **lora_kwargs}
    kwargs = engines.engine_kwargs(engine_kwargs or {}, device=device, dtype=dtype, extra=extra)
    config = engines.processor_config(
        str(resolve(spec.model.name)), device=device, kwargs=kwargs, batch_size=max(1, settings.batch_size),
        replicas=engines.replicas(device, kwargs, max_replicas),
    )
    processor = build_processor(
        config,
        preprocess=functools.partial(_request, lora=lora),
        postprocess=_result,
        preprocess_map_kwargs=engines.light_map_kwargs(),
        postprocess_map_kwargs=engines.light_map_kwargs(),
    )
    ds = processor(ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // max(settings.batch_size, 1), 64))))
    results = {r["key"]: r for r in ds.take_all()}
    missing = [r["key"] for r in rows if r["key"] not in results]
    if missing:
        raise RuntimeError(f"vLLM returned no result for {len(missing)} of {len(rows)} requests (e.g. {missing[0]})")
    return assemble(results)
