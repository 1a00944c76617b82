"""`craving-circuits simulate`: both studies of a preset, skipped when complete, unknown keys refused."""

import pytest

from craving_circuits.book import cli
from craving_circuits.simulate.baclofen import baclofen_params
from craving_circuits.simulate.cocaine import cocaine_params


def test_simulate_writes_the_baclofen_study_and_skips_it_when_complete(tmp_path, capsys):
    args = ["simulate", "--study", "baclofen", "--preset", "tiny_null", "--data-dir", str(tmp_path), "--n-jobs", "2"]
    assert cli.main(args) == 0
    root = tmp_path / "baclofen-tiny_null"
    truth = root / "derivatives" / "simulation" / "ground_truth.json"
    assert truth.is_file() and any(root.rglob("*_asl.nii.gz"))
    assert not (tmp_path / "cocaine-tiny_null").exists()  # --study baclofen writes only that study
    assert f"{root} ready" in capsys.readouterr().out
    files = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert cli.main(args) == 0  # complete with the same parameters: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == files
    # other parameters: a study of their own, next to the preset's
    assert cli.main([*args, "--set", "seed=7"]) == 0
    assert len(list(tmp_path.glob("baclofen-tiny_null-*"))) == 1
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == files


def test_simulate_refuses_an_unknown_baclofen_key(tmp_path, capsys):
    args = ["simulate", "--study", "baclofen", "--preset", "tiny", "--data-dir", str(tmp_path), "--set", "n_baclofn=3"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "Unknown simulation parameter 'n_baclofn'" in err and "n_baclofen" in err
    # a cocaine parameter is unknown to the baclofen study alone
    assert cli.main([*args[:-1], "n_cud=3"]) == 2
    assert "Unknown simulation parameter 'n_cud'" in capsys.readouterr().err
    assert not any(tmp_path.rglob("*.nii.gz"))


def test_simulate_refuses_a_preset_or_value_before_writing_either_study(tmp_path, capsys):
    # a preset of the cocaine study only: refused for both, pointing at --study
    assert cli.main(["simulate", "--preset", "threat_habituation", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "for the baclofen study" in err and "--study" in err
    # a value the baclofen parameters refuse stops before the cocaine study is written
    assert cli.main(["simulate", "--preset", "tiny", "--data-dir", str(tmp_path), "--set", "n_baclofen=-1"]) == 2
    assert "n_baclofen" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_set_keys_go_to_the_studies_that_declare_them():
    per_study = cli.simulation_overrides(["cocaine", "baclofen"], "tiny", {"n_cud": 3, "n_baclofen": 4, "seed": 5})
    assert per_study == {"cocaine": {"n_cud": 3, "seed": 5}, "baclofen": {"n_baclofen": 4, "seed": 5}}
    assert cocaine_params("tiny", **per_study["cocaine"]).n_cud == 3
    assert baclofen_params("tiny", **per_study["baclofen"]).n_baclofen == 4
    with pytest.raises(ValueError, match="Unknown simulation parameter 'n_baclofen'"):
        cli.simulation_overrides(["cocaine"], "tiny", {"n_baclofen": 4})
