"""Reading a judge's replies: Bloom level and score, disciplines, prompt quality, descriptions.

Every parser takes the raw reply and returns ``(value, error)``: exactly one of them is None.
A reply is cleaned first (:func:`clean`): think blocks (``<think>...</think>``, or everything
up to a lone ``</think>`` whose opening tag was in the prompt) are removed, and a fenced code
block (```json ... ```) stands for the whole reply. Then a JSON object is looked for anywhere
in the text; without one, loose text is read ("score = 13", "Level: Apply", "Quality: 7/10",
a bullet list of disciplines).
"""

from __future__ import annotations

import json
import math
import re

PARSER_VERSION = 2  # in the stage's settings (not the reply cache key): a change re-parses cached replies
LEVELS = ("Remember", "Understand", "Apply", "Analyze", "Evaluate", "Create")
BANDS = {"Remember": (1, 3), "Understand": (4, 6), "Apply": (7, 9), "Analyze": (10, 12), "Evaluate": (13, 15), "Create": (16, 21)}
# word stems a judge may use for each level (Analyse, Application, Creating, ...)
_LEVEL_STEMS = [("rememb", "Remember"), ("recall", "Remember"), ("understand", "Understand"), ("comprehen", "Understand"),
                ("appl", "Apply"), ("analy", "Analyze"), ("evaluat", "Evaluate"), ("creat", "Create")]
MAX_DISCIPLINES = 10
_SHOWN = 80  # characters of a reply quoted in an error

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.S)
_NUMBER = r"(-?\d+(?:\.\d+)?)"
_SCORE_TEXT = re.compile(r"\bscore\b[^0-9\n-]{0,12}?" + _NUMBER, re.I)
_QUALITY_TEXT = re.compile(r"\b(?:quality|score|rating)\b[^0-9\n-]{0,12}?" + _NUMBER, re.I)
_OUT_OF = re.compile(_NUMBER + r"\s*(?:/|out of)\s*10\b", re.I)
_LEVEL_TEXT = re.compile(r"\blevel\b[^A-Za-z\n]{0,6}([A-Za-z]+)", re.I)
_LIST_LINE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.+?)\s*$", re.M)
_DISCIPLINES_LINE = re.compile(r"\bdisciplines?\b[^:\n]*:\s*(.+)", re.I)


def clean(reply: str | None) -> str:
    """The reply without think blocks; the inside of its first code fence when it has one."""
    text = _THINK.sub("", reply or "")
    if re.search(r"</think>", text, re.I):  # the opening tag was in the prompt (Qwen3 templates)
        text = re.split(r"</think>", text, flags=re.I)[-1]
    text = re.sub(r"<think>.*", "", text, flags=re.S | re.I)  # a think block that never ended
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    return text.strip()


def find_json(text: str):
    """The first JSON object (or list) in ``text``, or None."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                value, _ = decoder.raw_decode(text[i:])
            except ValueError:
                continue
            if isinstance(value, (dict, list)):
                return value
    return None


def _shown(reply) -> str:
    text = " ".join((reply or "").split())
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*" + _NUMBER + r"\s*(?:/\s*\d+)?\s*", value)
        return float(m.group(1)) if m else None
    return None


def _field(obj: dict, *names):
    lower = {str(k).lower(): v for k, v in obj.items()}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def level_name(word) -> str | None:
    """The Bloom level a word names (case and word form free: 'analyse', 'Application')."""
    if not isinstance(word, str):
        return None
    w = word.strip().lower()
    for stem, level in _LEVEL_STEMS:
        if w.startswith(stem):
            return level
    return None


def level_of_score(score: float) -> str:
    for level, (lo, hi) in BANDS.items():
        if score <= hi + 0.5:
            return level
    return "Create"


def parse_bloom(reply: str | None) -> tuple[dict | None, str | None]:
    """``{"level", "score"}`` (score in 1..21; the level from the reply, else from the score's
    band) or an error. A reply with a level but no score is an error: the score ranks."""
    text = clean(reply)
    obj = find_json(text)
    level = score = None
    if isinstance(obj, dict):
        level = level_name(_field(obj, "level", "bloom_level", "bloom level"))
        score = _number(_field(obj, "score", "bloom_score", "bloom score"))
    if level is None:
        m = _LEVEL_TEXT.search(text)
        level = level_name(m.group(1)) if m else None
    score, error = _score("bloom", reply, text, score, (_SCORE_TEXT,), 21)
    if error:
        return None, error
    return {"level": level or level_of_score(score), "score": score}, None


def _score(part: str, reply, text: str, score: float | None, patterns, top: int) -> tuple[float | None, str | None]:
    """The score found in JSON (``score``), else by the first of ``patterns`` that matches,
    else a reply that is only a number; an error unless it is in 1..top."""
    for pattern in patterns:
        m = pattern.search(text) if score is None else None
        score = float(m.group(1)) if m else score
    if score is None and re.fullmatch(_NUMBER, text):
        score = float(text)
    if score is None:
        return None, f"{part}: no score in the reply {_shown(reply)}"
    if not 1 <= score <= top:
        return None, f"{part}: score {score:g} is outside 1..{top}"
    return score, None


def normalize_discipline(name) -> str:
    """A discipline's normal name: lower case, single spaces, no numbering, quotes or trailing
    punctuation ('1. Organic Chemistry.' -> 'organic chemistry')."""
    text, before = str(name), None
    while text != before:  # until stable: '1. 2) x' and '.0.0' lose every layer
        before = text
        text = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", text)
        text = re.sub(r"[\"'`*_<>\[\]{}]", "", text)
        text = " ".join(text.split()).strip(" .,;:").lower()
    return text


def _discipline_list(names) -> list[str]:
    out = []
    for n in names:
        if isinstance(n, dict):  # [{"name": "physics"}, ...]
            n = _field(n, "name", "discipline")
        if not isinstance(n, str):
            continue
        norm = normalize_discipline(n)
        if re.search(r"[^\W\d_]", norm) and norm != "discipline" and len(norm) <= 60 and norm not in out:
            out.append(norm)
    return out[:MAX_DISCIPLINES]


def parse_disciplines(reply: str | None) -> tuple[list[str] | None, str | None]:
    """The distinct normalized disciplines (at most MAX_DISCIPLINES) or an error."""
    text = clean(reply)
    obj = find_json(text)
    names = None
    if isinstance(obj, dict):
        names = _field(obj, "disciplines", "discipline", "fields", "subjects")
        names = [names] if isinstance(names, str) else names
    elif isinstance(obj, list):
        names = obj
    if obj is None:  # no JSON at all: loose text
        m = _DISCIPLINES_LINE.search(text)
        items = _LIST_LINE.findall(text)
        if items:
            names = items
        elif m:
            names = re.split(r",|;|\band\b", m.group(1))
        elif text and "\n" not in text and len(text) <= 200:
            names = re.split(r",|;", text)
    found = _discipline_list(names if isinstance(names, list) else [])
    if not found:
        return None, f"disciplines: no discipline in the reply {_shown(reply)}"
    return found, None


def parse_quality(reply: str | None) -> tuple[float | None, str | None]:
    """The quality score in 1..10, or an error."""
    text = clean(reply)
    obj = find_json(text)
    score = None
    if isinstance(obj, dict):
        score = _number(_field(obj, "quality", "score", "rating"))
    return _score("quality", reply, text, score, (_QUALITY_TEXT, _OUT_OF), 10)


def parse_description(reply: str | None) -> tuple[str | None, str | None]:
    """The description text (cleaned; a JSON {"description": ...} is unwrapped) or an error."""
    text = clean(reply)
    obj = find_json(text) if text.startswith("{") else None
    if isinstance(obj, dict) and isinstance(_field(obj, "description"), str):
        text = _field(obj, "description").strip()
    if not text:
        return None, f"description: empty reply {_shown(reply)}"
    return text, None
