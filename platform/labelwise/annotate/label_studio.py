"""Talking to a Label Studio server through its SDK (``pip install 'labelwise[labelstudio]'``).

The token is read from the environment variable that ``annotate.label_studio.token_env``
names, handed to the SDK and nowhere else: it is never written to a file, and an error from
the server or the network is reported with the token replaced by ``***``. The SDK is imported
only here, when a push or a pull runs.
"""

from __future__ import annotations

import contextlib
import os

from labelwise.annotate.studio_tasks import LABEL_CONFIG, Task

EXTRA = "labelwise[labelstudio]"
PAGE = 500  # tasks per page when listing, and per import request


class LabelStudioError(RuntimeError):
    """The server or the network refused a request (the message names what and why)."""


def read_token(token_env: str) -> str:
    token = os.environ.get(token_env, "").strip()
    if not token:
        raise LabelStudioError(
            f"annotate.label_studio.token_env: the environment variable {token_env} is not set; "
            f"put the Label Studio API token there (Account & Settings in Label Studio)"
        )
    return token


def _sdk():
    try:
        import label_studio_sdk
    except ImportError:
        raise LabelStudioError(
            f"annotate --push/--pull need the Label Studio SDK: pip install '{EXTRA}'"
        ) from None
    return label_studio_sdk


def _plain(x):
    return x.model_dump() if hasattr(x, "model_dump") else dict(x)


class Server:
    """One Label Studio server, as one user (the token's)."""

    def __init__(self, url: str, token_env: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self._token = read_token(token_env)
        self._token_env = token_env
        self._ls = _sdk().LabelStudio(base_url=self.url, api_key=self._token, timeout=timeout)

    @contextlib.contextmanager
    def _request(self, what: str):
        from label_studio_sdk.core.api_error import ApiError

        try:
            yield
        except ApiError as e:
            hint = f" (is the token in {self._token_env} right?)" if e.status_code in (401, 403) else ""
            raise LabelStudioError(self._scrub(f"Label Studio at {self.url}: {what}: HTTP {e.status_code}{hint}: {e.body}")) from None
        except Exception as e:  # the network (httpx), or a reply the SDK cannot read
            if isinstance(e, LabelStudioError):
                raise
            raise LabelStudioError(self._scrub(f"Label Studio at {self.url}: {what}: {type(e).__name__}: {e}")) from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***")

    def project(self, title: str, create: bool, model_version: str | None = None) -> tuple[int | None, list[str]]:
        """The id of the project titled ``title`` (None when absent and not ``create``), and
        the settings changed: with ``create`` it is created, or its labeling config and
        prediction settings are brought up to date."""
        with self._request(f"listing projects titled {title!r}"):
            found = [p for p in self._ls.projects.list(title=title, page_size=PAGE) if p.title == title]
        if len(found) > 1:
            raise LabelStudioError(
                f"Label Studio at {self.url}: {len(found)} projects are titled {title!r} "
                f"(ids {', '.join(str(p.id) for p in found)}); rename all but one, or set annotate.label_studio.project"
            )
        settings = {"label_config": LABEL_CONFIG, "show_collab_predictions": True}
        if model_version:
            settings["model_version"] = model_version
        if not found:
            if not create:
                return None, []
            with self._request(f"creating project {title!r}"):
                return self._ls.projects.create(title=title, **settings).id, ["created"]
        project, changed = found[0], {}
        if create:
            with self._request(f"reading project {title!r}"):
                current = _plain(self._ls.projects.get(project.id))
            changed = {k: v for k, v in settings.items() if current.get(k) != v}
            if changed:
                with self._request(f"updating project {title!r} ({', '.join(changed)})"):
                    self._ls.projects.update(project.id, **changed)
        return project.id, list(changed)

    def tasks(self, project: int) -> list[Task]:
        """Every task of the project, with its annotations and predictions."""
        out = []
        with self._request(f"listing the tasks of project {project}"):
            for t in self._ls.tasks.list(project=project, fields="all", page_size=PAGE):
                t = _plain(t)
                out.append(Task(
                    task_id=int(t["id"]),
                    data=dict(t.get("data") or {}),
                    annotations=[_plain(a) for a in t.get("annotations") or []],
                    predictions=[_plain(p) for p in t.get("predictions") or []],
                ))
        return out

    def users(self) -> dict[int, str]:
        """User id -> email (or username) for everyone the token's user can see."""
        with self._request("listing users"):
            return {u.id: u.email or u.username or f"user {u.id}" for u in self._ls.users.list()}

    def import_tasks(self, project: int, items: list[dict]) -> int:
        n = 0
        for start in range(0, len(items), PAGE):
            chunk = items[start:start + PAGE]
            with self._request(f"importing {len(chunk)} tasks into project {project}"):
                n += self._ls.projects.import_tasks(project, request=chunk).task_count or 0
        return n

    def update_task(self, task_id: int, data: dict) -> None:
        with self._request(f"updating task {task_id}"):
            self._ls.tasks.update(str(task_id), data=data)

    def add_prediction(self, task_id: int, result: list[dict], model_version: str) -> None:
        with self._request(f"adding a prediction to task {task_id}"):
            self._ls.predictions.create(task=task_id, result=result, model_version=model_version)
