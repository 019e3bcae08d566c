"""Label Studio tasks as plain data: the labeling config, what a task holds, what a push
changes, and the answers a pull reads. No I/O (labelwise.annotate.label_studio talks to the
server).

A task's data is ``{id, task, prompt, allocation, task_selected, task_pool_size}``: the
selected prompt's id, its task name, and its task's allocation (allocation.csv: the budget
share α_t the selector gave the task, how many of its prompts were selected, its pool size).
The answer is one free-text area (``response``) on the prompt; the base model's greedy
answer comes as a prediction in the same shape, which annotators accept or correct.
"""

from __future__ import annotations

import dataclasses

from labelwise.annotate.merge import AnnotationError, listing
from labelwise.annotate.pick import Disagreement, Vote, pick

FROM_NAME, TO_NAME = "response", "prompt"
LABEL_CONFIG = f"""<View>
  <Header value="$task"/>
  <Text name="{TO_NAME}" value="$prompt"/>
  <Header value="Answer (a suggestion from the base model may be filled in: accept it or correct it)" size="5"/>
  <TextArea name="{FROM_NAME}" toName="{TO_NAME}" rows="8" maxSubmissions="1" editable="true" required="true"/>
</View>"""


def task_data(row: dict, allocation: dict[str, dict]) -> dict:
    """The data of the task for one selected row {id, task, prompt}."""
    a = allocation.get(row["task"], {})
    return {
        "id": row["id"],
        "task": row["task"],
        "prompt": row["prompt"],
        "allocation": a.get("allocated"),
        "task_selected": a.get("selected"),
        "task_pool_size": a.get("pool_size"),
    }


def textarea_result(text: str) -> list[dict]:
    """An annotation's or a prediction's result holding one free-text answer."""
    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "textarea", "value": {"text": [text]}}]


def answer_text(result: list, where: str) -> str | None:
    """The free-text answer in an annotation's result (None when it holds none). Several
    text entries are an error: joining them would change the answer."""
    texts = [
        r.get("value", {}).get("text")
        for r in result or []
        if isinstance(r, dict) and r.get("from_name") == FROM_NAME and r.get("type") == "textarea"
    ]
    if not texts:
        return None
    entries = [t for ts in texts for t in (ts if isinstance(ts, list) else [ts])]
    if len(entries) != 1 or not isinstance(entries[0], str):
        raise AnnotationError(
            f"{where}: expected one text answer, found {len(entries)} entries; keep one in Label Studio"
        )
    return entries[0]


@dataclasses.dataclass
class Task:
    """A task already on the server."""

    task_id: int
    data: dict
    annotations: list[dict]  # submitted ones and skipped ones, as the server lists them
    predictions: list[dict]

    @property
    def answered(self) -> bool:
        return bool(self.annotations)


@dataclasses.dataclass
class PushPlan:
    create: list[dict]  # import items: {"data": ..., "predictions": [...]}
    update: list[tuple[int, dict]]  # (task id, new data) for unanswered tasks whose data changed
    predict: list[tuple[int, str]]  # (task id, greedy answer) for unanswered tasks lacking it
    answered: int  # tasks with annotations: never touched
    unchanged: int
    several: list[str]  # selected ids with more than one task on the server
    foreign: list[int]  # tasks on the server whose id is not selected (left as they are)


def _has_prediction(task: Task, text: str, model_version: str) -> bool:
    return any(
        p.get("model_version") == model_version and p.get("result") == textarea_result(text)
        for p in task.predictions
    )


def plan_push(selected: list[dict], allocation: dict[str, dict], greedy: dict[str, str],
              existing: list[Task], model_version: str) -> PushPlan:
    """What a push must change so that the project holds one task per selected prompt.

    A selected id without a task is created (with the greedy answer as a prediction, when
    there is one); a task that has annotations is never touched; an unanswered task gets the
    current data and the greedy answer if it lacks them. Pushing twice changes nothing the
    second time."""
    by_id: dict[str, list[Task]] = {}
    for t in existing:
        by_id.setdefault(str(t.data.get("id")), []).append(t)
    selected_ids = {r["id"] for r in selected}
    plan = PushPlan([], [], [], 0, 0, [], [t.task_id for t in existing if str(t.data.get("id")) not in selected_ids])
    for row in selected:
        data = task_data(row, allocation)
        text = greedy.get(row["id"])
        tasks = by_id.get(row["id"], [])
        if len(tasks) > 1:
            plan.several.append(row["id"])
        if not tasks:
            item = {"data": data}
            if text:
                item["predictions"] = [{"model_version": model_version, "result": textarea_result(text)}]
            plan.create.append(item)
            continue
        for t in tasks:
            if t.answered:
                plan.answered += 1
                continue
            changed = False
            if t.data != data:
                plan.update.append((t.task_id, data))
                changed = True
            if text and not _has_prediction(t, text, model_version):
                plan.predict.append((t.task_id, text))
                changed = True
            plan.unchanged += not changed
    return plan


def pulled_answers(tasks: list[Task], users: dict[int, str], how: str) -> tuple[list[dict], list[tuple[str, str]], int]:
    """The answers records of a pull, one per task with a submitted answer (in task order):
    {id, response, annotators, answered_at, label_studio_task, votes}. Also returns the ids
    with no agreed answer, as (id, "id (task N: why)"): their records have a blank response,
    so they count as unanswered; and the number of skipped or empty annotations ignored."""
    records, disagreements, ignored = [], [], 0
    nameless = []
    for t in tasks:
        votes = []
        for a in t.annotations:
            where = f"Label Studio task {t.task_id}, annotation {a.get('id')}"
            text = None if a.get("was_cancelled") else answer_text(a.get("result"), where)
            if text is None:
                ignored += 1
                continue
            who = a.get("completed_by")
            who = who.get("id") if isinstance(who, dict) else who
            votes.append(Vote(text, users.get(who, f"user {who}"), str(a.get("updated_at") or a.get("created_at")), int(a["id"])))
        if not votes:
            continue
        rid = t.data.get("id")
        if rid in (None, ""):
            nameless.append(str(t.task_id))
            continue
        chosen = pick(votes, how)
        if isinstance(chosen, Disagreement):
            disagreements.append((str(rid), (
                f"{rid} (task {t.task_id}: {chosen.annotators} annotators, {chosen.distinct} different "
                f"answers, at most {chosen.largest} alike)"
            )))
            record = {"id": str(rid), "response": ""}
        else:
            record = {"id": str(rid), "response": chosen.response, "annotators": list(chosen.annotators),
                      "answered_at": chosen.answered_at}
        records.append({**record, "label_studio_task": t.task_id, "votes": len(votes)})
    if nameless:
        raise AnnotationError(
            f"Label Studio: {len(nameless)} answered tasks have no data.id (not pushed by labelwise?): "
            f"tasks {listing(nameless)}"
        )
    return records, disagreements, ignored
