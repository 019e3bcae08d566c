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

from labelwise import contracts, manifest, stages


class AwaitingAnswers(Exception):
    """Round ``round`` waits for annotators' answers; the message says what to do."""

    def __init__(self, round: int, message: str):
        super().__init__(message)
        self.round = round


def steps(job, annotate_command: str = "labelwise annotate JOB.yaml", run=None) -> list:
    """The run's steps in order (labelwise.stages.Step): the shared stages in the run folder
    (pool, scores, base evaluation; ``run(name, job)`` runs them, default stages.call), then
    every round's stages (:func:`round_steps`)."""
    shared = [stages.stage_step(s.name, job, run) for s in stages.scoped(stages.SHARED) if s.in_rounds]
    return shared + round_steps(job, annotate_command)


def round_steps(job, annotate_command: str = "labelwise annotate JOB.yaml") -> list:
    """Every round's steps, in the round's folder, in the order of labelwise.stages (its
    round, trial stages and the shared ones run again from a later round: score).
    ``annotate_command`` starts the commands the stop-and-continue message prints (the job
    file and --set options of this run)."""
    from labelwise.rounds.layout import round_dir, round_job

    out = []
    for r in range(1, job.rounds.count + 1):
        rjob, folder = round_job(job, r), round_dir(job, r)
        for s in stages.in_round(r):
            call = _round_call(s.name, job, rjob, r, annotate_command)
            out.append(stages.Step(f"r{r}/{s.command}", folder, s.name, call, folder / s.output))
    return out


def _round_call(name: str, job, rjob, r: int, annotate_command: str):
    """What runs stage ``name`` in round r: the stage on the round's job, with what rounds add."""
    from labelwise.rounds.layout import round_dir

    if name == "round":
        return lambda: stages.call(name, job, r=r)
    if name == "score":  # round r's remainder scored by the current model: the base plus round r-1's adapter
        return lambda: stages.call(name, rjob, adapter=round_dir(job, r - 1) / contracts.ADAPTER)
    if name == "annotate":
        return lambda: annotate_round(job, rjob, r, annotate_command)
    if name == "train":
        return lambda: train_round(job, rjob, r)
    return lambda: stages.call(name, rjob)


def train_round(job, rjob, r: int):
    """``retrain``: from the base model on the labels of rounds 1 .. r; ``continue``: from round
    r-1's adapter on round r's labels."""
    from labelwise.rounds.layout import round_dir

    def labels(i: int) -> tuple[str, Path]:
        return f"{contracts.round_folder(i)}/{contracts.LABELED}", round_dir(job, i) / contracts.LABELED

    if job.rounds.training == "retrain" or r == 1:
        return stages.call("train", rjob, labeled=dict(labels(i) for i in range(1, r + 1)))
    return stages.call("train", rjob, labeled=dict([labels(r)]), init_adapter=round_dir(job, r - 1) / contracts.ADAPTER)


def annotate_round(job, rjob, r: int, command: str):
    """Simulated: the pool's gold answers (the annotate stage). Real annotators: go on only
    when the round's labels were imported for the current to_annotate.jsonl, else stop."""
    if job.annotate.simulate:
        return stages.call("annotate", rjob)
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
    if record is None:
        return len(selected)
    # kept for the current prompts, whatever answers file it merged and however (its own inputs and settings)
    inputs = {**record.get("inputs", {}), contracts.TO_ANNOTATE: manifest.digest(folder / contracts.TO_ANNOTATE)}
    if manifest.why_rerun(folder, "annotate", inputs, record.get("settings", {}), [contracts.LABELED]) is not None:
        return len(selected)
    answered = {row["id"] for row in contracts.read_labeled(folder / contracts.LABELED)}
    return len(selected - answered) or None
