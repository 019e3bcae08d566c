"""The judge's reply parsers (judging/parse.py): think blocks, code fences, JSON, loose text;
what cannot be read is an error naming the part, never a value."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.judging.parse import (
    BANDS,
    LEVELS,
    clean,
    level_of_score,
    normalize_discipline,
    parse_bloom,
    parse_description,
    parse_disciplines,
    parse_quality,
)
from labelwise.judging.spread import discipline_spread


@pytest.mark.parametrize("reply, level, score", [
    ('{"level": "Apply", "score": 8, "reasoning": "x"}', "Apply", 8.0),
    ('<think>the score is 3? no</think>\n{"level": "Analyze", "score": 11}', "Analyze", 11.0),
    ('```json\n{"level": "evaluate", "score": "14"}\n```', "Evaluate", 14.0),
    ("Sure! Here it is: {\"level\": \"Create\", \"score\": 19} hope this helps", "Create", 19.0),
    ("score = 13", "Evaluate", 13.0),
    ("Level: Apply\nScore: 7", "Apply", 7.0),
    ("The Bloom level is Analyse, score: 10.", "Analyze", 10.0),
    ("reasoning first</think>{\"score\": 2}", "Remember", 2.0),  # the opening tag was in the prompt
    ("5", "Understand", 5.0),
])
def test_bloom_replies_that_parse(reply, level, score):
    value, error = parse_bloom(reply)
    assert error is None and value == {"level": level, "score": score}


@pytest.mark.parametrize("reply, message", [
    ("Level: Apply", r"bloom: no score in the reply 'Level: Apply'"),
    ('{"level": "Apply", "score": 25}', r"bloom: score 25 is outside 1\.\.21"),
    ("score = 0", r"outside 1\.\.21"),
    ("<think>score = 13 ... still thinking", r"bloom: no score"),  # an unfinished think block says nothing
    ("", r"bloom: no score in the reply ''"),
    (None, r"bloom: no score"),
])
def test_bloom_replies_that_do_not_parse_are_errors(reply, message):
    value, error = parse_bloom(reply)
    assert value is None and error is not None
    import re

    assert re.search(message, error)


@pytest.mark.parametrize("reply, expected", [
    ('{"disciplines": ["Physics", "Mathematics"]}', ["physics", "mathematics"]),
    ('["Organic Chemistry", "organic chemistry", "Biology"]', ["organic chemistry", "biology"]),
    ("```\n{\"disciplines\": [\"Law\"]}\n```", ["law"]),
    ("The disciplines needed:\n1. Computer Science\n2. Statistics.\n- Linguistics", ["computer science", "statistics", "linguistics"]),
    ("Disciplines: economics, history and philosophy", ["economics", "history", "philosophy"]),
    ('{"disciplines": "Music"}', ["music"]),
])
def test_discipline_replies(reply, expected):
    assert parse_disciplines(reply) == (expected, None)


@pytest.mark.parametrize("reply", ['{"disciplines": []}', "", "<think>physics</think>", '{"disciplines": [1, 2]}', "{}", '{"fields": 3}',
                                   '{"disciplines": ["<discipline>", "1234", "]}"]}'])  # the template's placeholder, no letters
def test_discipline_replies_without_a_discipline_are_errors(reply):
    value, error = parse_disciplines(reply)
    assert value is None and error.startswith("disciplines: no discipline")


@pytest.mark.parametrize("reply, expected", [
    ('{"quality": 7, "reasoning": "clear"}', 7.0),
    ("Quality: 8/10", 8.0),
    ("I would give it 6 out of 10.", 6.0),
    ("rating = 10", 10.0),
    ("<think>hmm</think>3", 3.0),
])
def test_quality_replies(reply, expected):
    assert parse_quality(reply) == (expected, None)


@pytest.mark.parametrize("reply", ['{"quality": 11}', "quality: 0", "it is fine", ""])
def test_quality_replies_that_do_not_parse(reply):
    value, error = parse_quality(reply)
    assert value is None and error.startswith("quality: ")


def test_descriptions_are_cleaned_and_unwrapped():
    assert parse_description("<think>x</think> Physics studies matter. ") == ("Physics studies matter.", None)
    assert parse_description('{"description": "Law is rules."}') == ("Law is rules.", None)
    assert parse_description("<think>only thoughts</think>")[1].startswith("description: empty")


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 21), st.sampled_from(LEVELS), st.text(st.characters(blacklist_characters="<`"), max_size=40), st.booleans(), st.booleans())
def test_a_json_bloom_reply_parses_whatever_surrounds_it(score, level, noise, think, fence):
    """Any JSON judgment survives think blocks, fences and prose around it."""
    body = json.dumps({"level": level, "score": score, "reasoning": noise})
    if fence:
        body = f"```json\n{body}\n```"
    if think:
        body = f"<think>{noise} score = 99</think>{body}"
    value, error = parse_bloom(f"{body}")
    assert error is None and value == {"level": level, "score": float(score)}


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=200)))
def test_every_parser_returns_exactly_one_of_value_and_error(text):
    for parse in (parse_bloom, parse_disciplines, parse_quality, parse_description):
        value, error = parse(text)
        assert (value is None) != (error is None)
    bloom, _ = parse_bloom(text)
    if bloom is not None:
        assert 1 <= bloom["score"] <= 21 and bloom["level"] in LEVELS
    quality, _ = parse_quality(text)
    assert quality is None or 1 <= quality <= 10


@given(st.floats(1, 21))
def test_the_level_of_a_score_is_its_band(score):
    level = level_of_score(score)
    lo, hi = BANDS[level]
    assert lo - 0.5 <= score <= hi + 0.5 or (level == "Remember" and score < lo)


@given(st.text(max_size=30))
def test_normalize_discipline_is_idempotent(name):
    once = normalize_discipline(name)
    assert normalize_discipline(once) == once and once == once.lower().strip()


def test_clean_takes_the_fence_after_removing_thoughts():
    assert clean("<think>```a```</think>text ```json\n{}\n``` more") == "{}"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.floats(-1, 1, allow_nan=False), min_size=3, max_size=3), min_size=1, max_size=6))
def test_spread_is_a_mean_cosine_distance(vectors):
    import numpy as np

    s = discipline_spread(vectors)
    assert 0.0 <= s <= 2.0
    if len(vectors) == 1:
        assert s == 0.0
    v = np.asarray(vectors)
    if len(v) >= 2 and np.all(np.linalg.norm(v, axis=1) > 1e-6) and np.allclose(v / np.linalg.norm(v, axis=1, keepdims=True), v[0] / np.linalg.norm(v[0])):
        assert s == pytest.approx(0.0, abs=1e-9)


def test_spread_of_orthogonal_and_opposite_vectors():
    assert discipline_spread([[1, 0], [0, 1]]) == pytest.approx(1.0)
    assert discipline_spread([[1, 0], [-1, 0]]) == pytest.approx(2.0)
    assert discipline_spread([[1, 0], [0, 1], [1, 0]]) == pytest.approx(2 / 3)


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["disciplines", "score", "level", "quality", "x"]), c, max_size=3),
                    max_leaves=8))
def test_any_json_reply_gives_a_value_or_an_error_never_an_exception(obj):
    text = json.dumps(obj)
    for parse in (parse_bloom, parse_disciplines, parse_quality, parse_description):
        value, error = parse(text)
        assert (value is None) != (error is None)
