"""Recovered-vs-planted logic, result tables and provenance helpers."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from craving_circuits.book import pages, provenance
from craving_circuits.io import tables
from craving_circuits.verdict import planted

TRUTH = {
    "parameters": {
        "preset": "paper",
        "seed": 1,
        "n_cud": 18,
        "n_control": 23,
        "n_volumes": 150,
        "repetition_time": 2.0,
        "voxel_size_mm": 4,
    },
    "effects": [
        {"effect": "up", "description": "", "scale": "z", "planted": 0.4, "present": True},
        {"effect": "zero", "description": "", "scale": "z", "planted": 0.0, "present": False},
    ],
}


def _est(rows):
    return pd.DataFrame(rows, columns=["effect", "test", "estimate", "ci_low", "ci_high", "p"])


def test_recovered_vs_planted_decisions():
    table = planted.recovered_vs_planted(
        _est(
            [
                ("up", "right sign", 0.3, 0.1, 0.5, 0.001),
                ("up", "wrong sign", -0.3, -0.5, -0.1, 0.001),
                ("up", "missed", 0.1, -0.1, 0.3, 0.2),
                ("zero", "false positive", 0.2, 0.05, 0.35, 0.01),
                ("zero", "correct null", 0.02, -0.1, 0.14, 0.7),
            ]
        ),
        TRUTH,
        alpha=0.05,
    )
    assert list(table.columns) == planted.RECOVERY_COLUMNS
    assert table["found"].tolist() == [True, False, False, True, False]
    assert table["agree"].tolist() == [True, False, False, False, True]
    assert table["planted"].tolist() == [0.4, 0.4, 0.4, 0.0, 0.0]
    with pytest.raises(ValueError, match="not a planted effect"):
        planted.recovered_vs_planted(_est([("other", "t", 1, 0, 2, 0.01)]), TRUTH)
    real = planted.recovered_vs_planted(_est([("up", "t", 0.3, 0.1, 0.5, 0.01)]), None)
    assert np.isnan(real.loc[0, "planted"]) and real.loc[0, "agree"] is None and bool(real.loc[0, "found"])
    with pytest.raises(ValueError, match="lack the column"):
        planted.recovered_vs_planted(pd.DataFrame({"effect": ["up"]}), TRUTH)


def test_tables_logs_and_banner(tmp_path):
    path = tables.write_table(pd.DataFrame({"a": [1.0, np.nan]}), tmp_path, "t")
    assert path.read_text().splitlines() == ["a", "1", "n/a"]
    (tmp_path / "runs.json").write_text(
        json.dumps(
            {
                "runs": [
                    {
                        "name": "x",
                        "title": "X",
                        "status": "ok",
                        "started": "now",
                        "duration_s": 1.5,
                        "commit": "abc",
                        "parameters": {"preset": "tiny", "output_dir": "/somewhere", "n_jobs": 2},
                    }
                ]
            }
        )
    )
    log = provenance.run_log(tmp_path)
    assert log.loc[0, "parameters"] == "preset=tiny, n_jobs=2"
    with pytest.raises(FileNotFoundError, match="make book"):
        provenance.run_log(tmp_path / "none")
    assert "18 CUD, 23 controls" in pages.study_banner(None, TRUTH)
    versions = provenance.package_versions().set_index("package")["version"]
    assert versions["numpy"] == np.__version__
    sizes = provenance.disk_usage(tmp_path)
    assert sizes.empty  # no sub-folders
    excl = tables.combine_exclusions(None, pd.DataFrame(columns=["participant_id"]))
    assert excl.empty and "reason" in excl.columns


def test_baclofen_banner_says_what_was_planted():
    truth = {
        "parameters": {"preset": "null", "seed": 3, "n_baclofen": 21, "n_placebo": 22, "voxel_size_mm": 4},
        "effects": [
            {"effect": "cue_response_t1", "present": True},
            {"effect": "group_x_time_dlpfc_cbf", "present": False},
        ],
    }
    line = pages.baclofen_banner("data/baclofen-null", truth)
    assert "preset `null` (seed 3; 21 baclofen, 22 placebo; 4 mm voxels)" in line
    assert "1 of 2 effects planted (`cue_response_t1`); the others are zero" in line
    nothing = {**truth, "effects": [{**e, "present": False} for e in truth["effects"]]}
    assert "every planted effect is zero" in pages.baclofen_banner("x", nothing)
    everything = {**truth, "effects": [{**e, "present": True} for e in truth["effects"]]}
    assert "all 2 effects planted" in pages.baclofen_banner("x", everything)
    assert "no ground truth" in pages.baclofen_banner("my/bids", None)


def test_git_commit(tmp_path):
    assert provenance.git_commit(tmp_path) == "unknown"
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x")
    env = {
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@b",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@b",
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-qm", "x"], check=True, env=env)
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert provenance.git_commit(tmp_path) == head
    (tmp_path / "f").write_text("y")
    assert provenance.git_commit(tmp_path) == head + "-dirty"


def test_evidence_vs_planted_needs_equivalence_to_recover_an_absence():
    evidence = pd.DataFrame(
        {
            "term": ["a", "b", "c", "d", "e"],
            "contrast": ["x", "x", "y", "y", "y"],
            "estimate": [0.3, -0.3, 0.01, 0.02, 0.05],
            "ci90_low": [0.1, -0.5, -0.1, -0.6, 0.01],
            "ci90_high": [0.5, -0.1, 0.1, 0.6, 0.09],
            "bound": [0.2] * 5,
            "p": [0.01, 0.01, 0.8, 0.9, 0.04],
            "p_equivalence": [0.5, 0.5, 0.01, 0.4, 0.01],
            "bf01": [0.1, 0.1, 4.0, 2.0, 1.0],
            "verdict": ["effect", "effect", "equivalent", "inconclusive", "trivial effect"],
        }
    )
    table = planted.evidence_vs_planted(evidence, {"x": "up", "y": "zero"}, TRUTH)
    assert list(table.columns) == planted.EVIDENCE_RECOVERY_COLUMNS
    assert table["effect"].tolist() == ["up", "up", "zero", "zero", "zero"]
    # right sign; wrong sign; equivalence shown; nothing found but nothing shown; inside the bounds
    assert table["agree"].tolist() == [True, False, True, False, True]
    real = planted.evidence_vs_planted(evidence, ["up"] * 5, None)
    assert real["planted"].isna().all() and real["agree"].isna().all()
    with pytest.raises(ValueError, match="one per row"):
        planted.evidence_vs_planted(evidence, ["up"], TRUTH)
    with pytest.raises(ValueError, match="No planted effect given"):
        planted.evidence_vs_planted(evidence, {"x": "up"}, TRUTH)


def test_side_by_side_and_read_table(tmp_path):
    a = pd.DataFrame({"term": ["t1", "t2"], "estimate": [1.0, 2.0], "p": [0.1, 0.2]})
    b = pd.DataFrame({"term": ["t2", "t3"], "estimate": [3.0, 4.0], "p": [0.3, 0.4]})
    wide = pages.side_by_side({"first": a, "second": b})
    assert wide.index.tolist() == ["t1", "t2", "t3"]
    assert wide[("second", "estimate")].tolist()[1:] == [3.0, 4.0] and np.isnan(wide[("second", "p")].iloc[0])
    assert wide.loc["t2", ("first", "p")] == 0.2
    with pytest.raises(ValueError, match="unique"):
        pages.side_by_side({"a": pd.concat([a, a])})
    with pytest.raises(ValueError, match="lacks"):
        pages.side_by_side({"a": a}, columns=["bf01"])
    tables.write_table(a, tmp_path, "evidence")
    pd.testing.assert_frame_equal(tables.read_table(tmp_path, "evidence"), a, check_dtype=False)
    with pytest.raises(FileNotFoundError, match="other.tsv"):
        tables.read_table(tmp_path, "other")


def test_result_hashes_cover_tables_and_skip_hidden_and_excluded(tmp_path):
    import hashlib

    from craving_circuits.book import provenance

    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "t.tsv").write_text("x\n1\n")
    (tmp_path / "a" / "sub" / "u.tsv").write_text("y\n2\n")
    (tmp_path / "a" / ".tmp-1234-t.tsv").write_text("partial")
    (tmp_path / "a" / "run.json").write_text("{}")
    (tmp_path / "b" / "v.tsv").write_text("z\n")
    hashes = provenance.result_hashes(tmp_path, exclude=("b",))
    assert list(hashes["file"]) == ["a/sub/u.tsv", "a/t.tsv"]
    assert hashes.loc[1, "sha256"] == hashlib.sha256(b"x\n1\n").hexdigest() and hashes.loc[1, "bytes"] == 4
    with pytest.raises(FileNotFoundError, match="make notebooks"):
        provenance.result_hashes(tmp_path / "nothing")
