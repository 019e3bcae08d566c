"""Score stage on the real packaged model: logconf equals a separate teacher-forced pass."""

from __future__ import annotations

import pytest
import torch

from labelwise.scoring.greedy import greedy_score
from labelwise.prompting import prompt_ids
from labelwise.scoring.scorer import Scorer, make_batch

PROMPTS = [
    "What is the capital of France?",
    "Name three fruits.",
    "Explain in one sentence why the sky is blue, for a child who is five years old.",
    "2+2=",
]


@pytest.mark.slow
def test_logconf_equals_teacher_forced_log_probs(packaged_model_dir):
    torch.set_num_threads(2)
    scorer = Scorer({"name": "smollm2-135m-instruct", "device": "cpu"}, max_new_tokens=20)
    tok, model = scorer.tokenizer, scorer.model
    ids = [prompt_ids(tok, p, True) for p in PROMPTS]
    assert len({len(s) for s in ids}) > 2  # the batch is really left-padded
    rows = scorer.score_batch(make_batch([f"p{i}" for i in range(len(ids))], ["t"] * len(ids), ids))
    assert any(r["eos"] for r in rows) and any(r["n_tokens"] == 20 for r in rows)
    streamed = greedy_score(model, ids, max_new_tokens=20, stop_ids=scorer.stop_ids, pad_id=scorer.pad_id)
    for prompt, row, answer in zip(ids, rows, streamed.tokens):
        assert len(answer) == row["n_tokens"]
        assert row["answer"] == tok.decode(answer, skip_special_tokens=True)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + answer])).logits[0].double()
        logp = torch.log_softmax(logits, -1)[len(prompt) - 1 : -1]
        per_token = logp[torch.arange(len(answer)), torch.tensor(answer)]
        assert (logp.argmax(-1) == torch.tensor(answer)).all()  # greedy
        assert abs(row["logconf"] - per_token.sum().item()) <= 1e-3 * len(answer)
        assert row["mean_logprob"] == pytest.approx(per_token.mean().item(), abs=1e-3)
        assert row["error"] is None and len(row["embedding"]) == model.config.hidden_size
    assert "Paris" in rows[0]["answer"]
