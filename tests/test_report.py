"""Recovered-vs-planted logic, chapter estimates, provenance helpers."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from craving_circuits.book import pages, provenance
from craving_circuits.io import tables
from craving_circuits.verdict import planted

TRUTH = {
    "parameters": {"preset": "paper", "seed": 1, "n_cud": 18, "n_control": 23, "n_volumes": 150,
                   "repetition_time": 2.0, "voxel_size_mm": 4},
    "effects": [
        {"effect": "up", "description": "", "scale": "z", "planted": 0.4, "present": True},
        {"effect": "zero", "description": "", "scale": "z", "planted": 0.0, "present": False},
    ],
}


def _est(rows):
    return pd.DataFrame(rows, columns=["effect", "test", "estimate", "ci_low", "ci_high", "p"])


def test_recovered_vs_planted_decisions():
    table = planted.recovered_vs_planted(_est([
        ("up", "right sign", 0.3, 0.1, 0.5, 0.001),
        ("up", "wrong sign", -0.3, -0.5, -0.1, 0.001),
        ("up", "missed", 0.1, -0.1, 0.3, 0.2),
        ("zero", "false positive", 0.2, 0.05, 0.35, 0.01),
        ("zero", "correct null", 0.02, -0.1, 0.14, 0.7),
    ]), TRUTH, alpha=0.05)
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


def test_seed_fc_estimates_maps_rows_to_planted_effects():
    contrasts = pd.DataFrame({
        "target": ["dlpfc", "thalamus_midline", "dlpfc"],
        "term": ["craving - neutral | CUD", "group x state", "group x state x drug"],
        "estimate": [0.3, 0.2, 0.1], "se": [0.1] * 3, "ci_low": [0.1] * 3, "ci_high": [0.5] * 3,
        "p": [0.001, 0.01, 0.5],
    })
    clusters = {
        "craving_cud": pd.DataFrame({
            "sign": [1, 1, -1], "peak_t": [5.0, 4.0, -4.5], "p_fwe_size": [0.01, 0.03, 0.02],
            "significant": [True, True, True], "overlap_dlpfc": [0.3, 0.0, 0.0],
            "overlap_thalamus_midline": [0.0, 0.0, 0.0],
        }),
    }
    est = planted.seed_fc_estimates(contrasts, clusters).set_index("test")
    assert est.loc["ROI mixed model: craving - neutral | CUD (dlpfc)", "effect"] == "craving_nacc_dlpfc_cud"
    assert est.loc["ROI mixed model: group x state (thalamus_midline)", "effect"] == "group_x_state_nacc_thalamus"
    assert not any("x drug" in t for t in est.index)  # no planted effect of its own
    dl = est.loc["voxelwise cluster FWE: craving_cud, positive cluster on dlpfc"]
    assert (dl["estimate"], dl["p"]) == (5.0, 0.01)
    th = est.loc["voxelwise cluster FWE: craving_cud, positive cluster on thalamus_midline"]
    assert np.isnan(th["estimate"]) and th["p"] == 1.0
    off = est.loc["voxelwise cluster FWE: craving_cud, significant clusters off the target ROIs"]
    assert off["effect"] == "fc_change_elsewhere" and off["estimate"] == 2.0 and off["p"] == 0.0


def test_tables_logs_and_banner(tmp_path):
    path = tables.write_table(pd.DataFrame({"a": [1.0, np.nan]}), tmp_path, "t")
    assert path.read_text().splitlines() == ["a", "1", "n/a"]
    (tmp_path / "runs.json").write_text(json.dumps({"runs": [
        {"name": "x", "title": "X", "status": "ok", "started": "now", "duration_s": 1.5, "commit": "abc",
         "parameters": {"preset": "tiny", "output_dir": "/somewhere", "n_jobs": 2}}]}))
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


def test_git_commit(tmp_path):
    assert provenance.git_commit(tmp_path) == "unknown"
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x")
    env = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@b", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-qm", "x"], check=True, env=env)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert provenance.git_commit(tmp_path) == head
    (tmp_path / "f").write_text("y")
    assert provenance.git_commit(tmp_path) == head + "-dirty"


def test_glutamate_estimates_map_rows_to_planted_effects():
    couplings = pd.DataFrame({
        "target": ["thalamus_midline", "dlpfc", "thalamus_midline"], "sample": ["CUD", "CUD", "all"],
        "method": ["pearson"] * 3, "n": [17, 17, 40], "term": ["a", "b", "c"], "estimate": [0.7, -0.1, 0.5],
        "se": [0.1] * 3, "ci_low": [0.4, -0.5, 0.2], "ci_high": [0.9, 0.3, 0.7], "p": [0.001, 0.6, 0.01]})
    comparison = pd.DataFrame([{"n": 17, "statistic": 3.0, "term": "diff", "estimate": 0.8, "se": 0.2,
                                "ci_low": 0.3, "ci_high": 1.2, "p": 0.003}])
    rise = pd.DataFrame([{"n": 17, "term": "rise", "estimate": 5.0, "se": 2.0, "ci_low": 1.0, "ci_high": 9.0,
                          "p": 0.02}])
    betas = pd.DataFrame({"target": ["thalamus_midline", "thalamus_midline", "dlpfc", "dlpfc"],
                          "term": ["ocdus_obsessive", "cocaine_g_per_week"] * 2, "estimate": [0.5, 0.3, 0.1, 0.0],
                          "se": [0.2] * 4, "ci_low": [0.1, -0.1, -0.3, -0.4], "ci_high": [0.9, 0.7, 0.5, 0.4],
                          "p": [0.02, 0.2, 0.6, 0.9]})
    clusters = pd.DataFrame({"sign": [1, -1], "peak_t": [4.5, -4.0], "p_fwe_size": [0.01, 0.03],
                             "significant": [True, True], "overlap_thalamus_midline": [0.4, 0.0],
                             "overlap_dlpfc": [0.0, 0.0]})
    fits = pd.DataFrame({"target": ["thalamus_midline", "dlpfc"], "r2": [0.45, 0.05], "p_f": [0.01, 0.7]})
    est = planted.glutamate_estimates(couplings, comparison, rise, betas, clusters, fits)
    by = est.set_index("test")
    model = by.loc["F test of the predictor model (thalamus_midline); estimate R²"]
    assert (model["effect"], model["estimate"], model["p"]) == ("clinical_model_thalamus_cud", 0.45, 0.01)
    assert by.loc["Pearson r within CUD (thalamus_midline)", "effect"] == "thalamus_glu_coupling_cud"
    assert "all" not in " ".join(est["test"])  # only the within-CUD correlations
    assert by.loc["standardised beta of cocaine_g_per_week (dlpfc)", "effect"] == "use_predicts_dlpfc_cud"
    thal = by.loc["voxelwise coupling, cluster on thalamus_midline"]
    assert (thal["estimate"], thal["p"]) == (4.5, 0.01)
    off = by.loc["voxelwise coupling, significant clusters off the target ROIs"]
    assert off["estimate"] == 1.0 and off["effect"] == "glu_coupling_elsewhere"
    assert set(est["effect"]) <= {e["effect"] for e in _paper_effects()}


def _paper_effects():
    from craving_circuits.simulate.cocaine import cocaine_params, planted_effects

    return planted_effects(cocaine_params("paper"))


def test_drug_estimates_map_rows_to_planted_effects():
    contrasts = pd.DataFrame({
        "target": ["dlpfc", "thalamus_midline", "dlpfc", "dlpfc"],
        "term": ["drug x state | CUD", "group x state x drug", "craving - neutral | CUD", "drug x state | control"],
        "estimate": [-0.3, -0.2, 0.4, 0.05], "se": [0.1] * 4, "ci_low": [0.1] * 4, "ci_high": [0.5] * 4,
        "p": [0.01, 0.04, 0.001, 0.6],
    })
    clusters = {
        "drug_x_state_cud": pd.DataFrame({
            "sign": [-1, 1], "peak_t": [-5.0, 4.0], "p_fwe_size": [0.01, 0.2], "significant": [True, False],
            "overlap_dlpfc": [0.4, 0.0], "overlap_thalamus_midline": [0.0, 0.1],
        }),
        "group_x_state_x_drug": pd.DataFrame(columns=["sign", "peak_t", "p_fwe_size", "significant", "overlap_dlpfc",
                                                      "overlap_thalamus_midline"]),
    }
    ratings = pd.DataFrame({"term": ["craving - neutral | CUD", "drug x state | CUD"], "estimate": [30.0, -8.0],
                            "se": [3.0, 3.0], "ci_low": [24, -14], "ci_high": [36, -2], "p": [1e-6, 0.02]})
    est = planted.drug_estimates(contrasts, clusters, ratings).set_index("test")
    assert est.loc["ROI mixed model: drug x state | CUD (dlpfc)", "effect"] == "drug_x_state_cud"
    assert est.loc["ROI mixed model: group x state x drug (thalamus_midline)", "effect"] == "group_x_state_x_drug"
    assert est.loc["ROI mixed model: drug x state | control (dlpfc)", "effect"] == "drug_x_state_control"
    assert not any("craving - neutral" in t for t in est.index)  # the seed chapter's rows stay there
    dl = est.loc["voxelwise cluster FWE: drug_x_state_cud, cluster on dlpfc"]
    assert (dl["estimate"], dl["p"]) == (-5.0, 0.01)  # a negative cluster counts: NAC lowers the rise
    th = est.loc["voxelwise cluster FWE: drug_x_state_cud, cluster on thalamus_midline"]
    assert (th["estimate"], th["p"]) == (4.0, 0.2)
    empty = est.loc["voxelwise cluster FWE: group_x_state_x_drug, cluster on dlpfc"]
    assert np.isnan(empty["estimate"]) and empty["p"] == 1.0
    off = est.loc["voxelwise cluster FWE: drug_x_state_cud, significant clusters off the target ROIs"]
    assert off["estimate"] == 0.0 and off["p"] == 1.0
    rating = est.loc["paired t on ratings: drug x state | CUD"]
    assert rating["effect"] == "nac_rating_effect_cud" and rating["estimate"] == -8.0
    with pytest.raises(ValueError, match="Unknown drug test"):
        planted.drug_estimates(contrasts, {"craving_cud": clusters["drug_x_state_cud"]})


def test_evidence_vs_planted_needs_equivalence_to_recover_an_absence():
    evidence = pd.DataFrame({
        "term": ["a", "b", "c", "d", "e"], "contrast": ["x", "x", "y", "y", "y"],
        "estimate": [0.3, -0.3, 0.01, 0.02, 0.05], "ci90_low": [0.1, -0.5, -0.1, -0.6, 0.01],
        "ci90_high": [0.5, -0.1, 0.1, 0.6, 0.09], "bound": [0.2] * 5, "p": [0.01, 0.01, 0.8, 0.9, 0.04],
        "p_equivalence": [0.5, 0.5, 0.01, 0.4, 0.01], "bf01": [0.1, 0.1, 4.0, 2.0, 1.0],
        "verdict": ["effect", "effect", "equivalent", "inconclusive", "trivial effect"],
    })
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


def test_baclofen_estimates_map_rows_to_planted_effects():
    clusters = pd.DataFrame({"sign": [1, -1], "peak_t": [5.0, -4.0], "p_fwe_size": [0.01, 0.03],
                             "significant": [True, True], "overlap_dlpfc_right": [0.4, 0.0]})
    contrasts = pd.DataFrame({"region": ["dlpfc_right"] * 3 + ["cluster"] * 3,
                              "term": ["T2 - T1 | baclofen", "T2 - T1 | placebo", "group x time"] * 2,
                              "estimate": [6.0, 1.0, 5.0, 8.0, 0.0, 8.0], "se": [1.0] * 6, "ci_low": [0.0] * 6,
                              "ci_high": [9.0] * 6, "p": [0.001, 0.3, 0.002, 0.0, 0.9, 0.0]})
    est = planted.baclofen_cbf_estimates(clusters, contrasts).set_index("test")
    assert est.loc["voxelwise cluster FWE: group x time, positive cluster on dlpfc_right", "estimate"] == 5.0
    off = est.loc["voxelwise cluster FWE: group x time, significant clusters off the ROI"]
    assert off["effect"] == "cbf_change_elsewhere" and off["estimate"] == 1.0
    model = est.loc["mixed model on the dlpfc_right ROI: group x time"]
    assert model["effect"] == "group_x_time_dlpfc_cbf" and model["estimate"] == 5.0  # the ROI, not the cluster
    assert est.loc["mixed model on the dlpfc_right ROI: T2 - T1 | placebo", "effect"] == "time_dlpfc_cbf_placebo"
    assert len(est) == 4

    t1 = pd.DataFrame({"term": ["cue response at ses-T1 (ins)"], "estimate": [0.3], "ci_low": [0.1],
                       "ci_high": [0.5], "p": [0.001]})
    assoc = pd.DataFrame({"term": ["cue change ~ dlPFC CBF change (ins)"], "estimate": [-0.4], "ci_low": [-0.7],
                          "ci_high": [-0.1], "p": [0.01]})
    voxel = pd.DataFrame({"sign": [-1], "peak_t": [-4.5], "p_fwe_size": [0.02], "significant": [True],
                          "overlap_ins": [0.2], "overlap_vm": [0.0]})
    craving = contrasts.iloc[:3].assign(estimate=[-5.0, 1.0, -6.0])
    med = pd.DataFrame({"term": ["a (x -> m)", "indirect effect (a b)"], "estimate": [5.0, -0.3],
                        "ci_low": [2.0, -0.6], "ci_high": [8.0, -0.1], "p": [0.001, 0.01]})
    est = planted.baclofen_cue_estimates(t1, assoc, voxel, craving, med, rois=("ins", "vm"))
    assert est["effect"].tolist() == ["cue_response_t1", "dlpfc_rise_cue_change", "dlpfc_rise_cue_change",
                                      "dlpfc_rise_cue_change", "cue_change_elsewhere", "group_x_time_craving",
                                      "indirect_effect_cue"]
    assert est.iloc[2]["estimate"] == -4.5 and np.isnan(est.iloc[3]["estimate"])
    assert est.iloc[5]["estimate"] == -6.0 and est.iloc[6]["estimate"] == -0.3


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
