"""``labelwise run`` with a ``rounds:`` section: the steps of a multi-round run.

    pool -> score -> evaluate-base, then for r = 1 .. rounds.count, in run_dir/rounds/r<r>/:
    round (remainder) -> score (r >= 2: base + round r-1's adapter) -> select -> annotate
    -> train -> evaluate (the adapted model)

Every step is a stage committed with a manifest in its folder, so a rerun keeps what is done
and continues inside the round where the last run stopped. With real annotators
(annotate.simulate: false) the run stops after exporting round r's prompts and says how to
import the answers (:class:`AwaitingAnswers`); rerunning continues from there. At the end
rounds/curve.csv holds the learning curve and rounds/allocation.csv every round's allocation.
"""

from __future__ import annotations

from pathlib import Path

from labelwise import contracts, manifest


class AwaitingAnswers(Exception):
    """Round ``round`` waits for annotators' answers; the message says what to do."""

    def __init__(self, round: int, message: str):
        super().__init__(message)
        self.round = round


def steps(job, annotate_command: str = "labelwise annotate JOB.yaml") -> list:
    """The run's steps in order (labelwise.pipeline.Step): the run's pool, scores and base
    evaluation, then every round's stages. ``annotate_command`` starts the commands the
    stop-and-continue message prints (the job file and --set options of this run)."""
    from labelwise.pipeline import Step, stage_step
    from labelwise.rounds.layout import round_dir, round_job

    out = [stage_step(name, job) for name in ("pool", "score", "evaluate-base")]
    for r in range(1, job.rounds.count + 1):
        rjob, folder = round_job(job, r), round_dir(job, r)

        def step(name: str, stage: str, call, output: str, r=r, folder=folder) -> Step:
            return Step(f"r{r}/{name}", folder, stage, call, folder / output)

        out.append(step("round", "round", lambda r=r: _prepare(job, r), contracts.POOL))
        if r >= 2:
            out.append(step("score", "score", lambda r=r, rjob=rjob: _score(job, rjob, r), contracts.SCORES))
        out.append(step("select", "select", lambda rjob=rjob: _select(rjob), contracts.SELECTION))
        out.append(step("annotate", "annotate", lambda r=r, rjob=rjob: annotate_round(job, rjob, r, annotate_command),
                        contracts.LABELED))
        out.append(step("train", "train", lambda r=r, rjob=rjob: train_round(job, rjob, r), contracts.ADAPTER))
        out.append(step("evaluate", "evaluate-adapted", lambda rjob=rjob: _evaluate(rjob), contracts.METRICS))
    return out


def _prepare(job, r: int):
    from labelwise.rounds.stage import prepare

    return prepare(job, r)


def _score(job, rjob, r: int):
    """Round r's remainder scored by the current model: the base plus round r-1's adapter."""
    from labelwise.rounds.layout import round_dir
    from labelwise.scoring.stage import score_pool

    return score_pool(rjob, adapter=round_dir(job, r - 1) / contracts.ADAPTER)


def _select(rjob):
    from labelwise.selection.stage import select

    return select(rjob)


def _evaluate(rjob):
    from labelwise.evaluation.stage import evaluate

    return evaluate(rjob, adapter=Path(rjob.run_dir) / contracts.ADAPTER, label="adapted")


def train_round(job, rjob, r: int):
    """``retrain``: from the base model on the labels of rounds 1 .. r; ``continue``: from round
    r-1's adapter on round r's labels."""
    from labelwise.rounds.layout import round_dir
    from labelwise.training.stage import train

    def labels(i: int) -> tuple[str, Path]:
        return f"{contracts.round_folder(i)}/{contracts.LABELED}", round_dir(job, i) / contracts.LABELED

    if job.rounds.training == "retrain" or r == 1:
        return train(rjob, labeled=dict(labels(i) for i in range(1, r + 1)))
    return train(rjob, labeled=dict([labels(r)]), init_adapter=round_dir(job, r - 1) / contracts.ADAPTER)


def annotate_round(job, rjob, r: int, command: str):
    """Simulated: the pool's gold answers (the annotate stage). Real annotators: go on only
    when the round's labels were imported for the current to_annotate.jsonl, else stop."""
    from labelwise.annotate.stage import annotate

    if job.annotate.simulate:
        return annotate(rjob)
    folder = Path(rjob.run_dir)
    missing = unanswered(folder)
    if missing is None:
        return folder / contracts.LABELED
    n = len(contracts.read_to_annotate(folder / contracts.TO_ANNOTATE))
    answers = f"answers_r{r}.jsonl"
    raise AwaitingAnswers(r, "\n".join([
        f"round {r} of {job.rounds.count}: {n} prompts to annotate are in {folder / contracts.TO_ANNOTATE}"
        + (f" ({missing} still without an answer)" if missing < n else ""),
        "  1. export them with an empty response field to fill:",
        f"       {command} --round {r} --export {answers}",
        f"  2. fill in the response of every prompt in {answers} (JSONL or CSV: id, response)",
        "  3. import the answers:",
        f"       {command} --round {r} --answers {answers}",
        "  4. run the same `labelwise run` command again: it continues with round "
        f"{r}'s training{' and the next rounds' if r < job.rounds.count else ''}",
    ]))


def unanswered(folder: Path) -> int | None:
    """None when the round's labeled.jsonl was committed for its current to_annotate.jsonl and
    answers every prompt in it; else how many prompts are without an answer."""
    selected = {row["id"] for row in contracts.read_to_annotate(folder / contracts.TO_ANNOTATE)}
    record = manifest.read(folder, "annotate")
    labeled = folder / contracts.LABELED
    if record is None or not labeled.exists():
        return len(selected)
    current = record.get("inputs", {}).get(contracts.TO_ANNOTATE) == manifest.digest(folder / contracts.TO_ANNOTATE)
    intact = record.get("outputs", {}).get(contracts.LABELED) == manifest.digest(labeled)
    if not (current and intact):
        return len(selected)
    answered = {row["id"] for row in contracts.read_labeled(labeled)}
    return len(selected - answered) or None
