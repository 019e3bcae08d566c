"""labelwise.stages: the one list of stages, and what run, sweep and rounds read from it."""

from __future__ import annotations

from labelwise import contracts, stages


def test_the_table_gives_the_config_inputs_each_command_reads():
    from labelwise.job import READ_BY

    assert READ_BY == {
        "pool.source": {"pool", "run", "sweep"},
        "model.name": {"score", "train", "evaluate", "run", "sweep"},
        "annotate.answers": {"annotate", "run"},  # a sweep's trials annotate with the gold answers
        "evaluate": {"evaluate", "run", "sweep"},
    }
    assert stages.unread("score") == {"annotate.answers", "evaluate"}
    assert stages.unread("evaluate-base") == set()


def test_scopes_split_the_stages_between_the_sweep_folder_its_trials_and_the_rounds():
    assert [s.name for s in stages.scoped(stages.SHARED)] == ["pool", "score", "judge", "evaluate-base"]
    assert [s.command for s in stages.scoped(stages.TRIAL)] == ["select", "annotate", "train", "evaluate"]
    assert [s.command for s in stages.in_round(1)] == ["round", "select", "annotate", "train", "evaluate"]
    assert [s.command for s in stages.in_round(2)] == ["round", "score", "select", "annotate", "train", "evaluate"]
    assert stages.SHARED_FILES == (contracts.POOL, contracts.TEST, contracts.POOL_META, contracts.SCORES,
                                   contracts.SCORE_SUMMARY, contracts.JUDGMENTS)
    assert "round" not in stages.NAMES and "round" not in [c for c, _, _ in stages.commands()]
