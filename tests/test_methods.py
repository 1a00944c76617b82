"""Methods paragraphs written from a run: parameters, counts, versions and citations come from the inputs."""

import re
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest

from craving_circuits import __version__
from craving_circuits.baclofen import asl, chapters
from craving_circuits.baclofen import layout as baclofen_layout
from craving_circuits.book import methods
from craving_circuits.cocaine import (
    denoise,
    drug,
    firstlevel,
    glutamate,
    layout,
    mrs,
    multiverse,
    ratings,
    secondlevel,
)
from craving_circuits.io import tables
from craving_circuits.verdict import planted

BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"
CONN = denoise.parse_strategy("conn", (0.008, 0.09))


@pytest.fixture(scope="module")
def seed(tiny_study_dir, tmp_path_factory):
    """The seed chapter's steps on the tiny study (the notebook's variables)."""
    study = layout.open_study(tiny_study_dir)
    runs, exclusions = layout.collect_runs(study)
    analysis, mask_img, _ = firstlevel.seed_analysis(runs, CONN)
    first = firstlevel.first_level(runs, analysis, mask_img, tmp_path_factory.mktemp("first"), n_jobs=1)
    diff, diff_table, diff_exclusions = secondlevel.state_difference_maps(first.runs, first.maps, "both")
    return dict(
        study=study,
        truth=planted.load_ground_truth(study),
        runs=runs,
        first=first,
        diff_table=diff_table,
        exclusions=tables.combine_exclusions(exclusions, first.exclusions, diff_exclusions),
    )


def _seed_text(seed, **changes):
    args = dict(chosen=CONN, smoothing_fwhm=6.0, cluster_forming_p=0.001, n_permutations=5000, alpha=0.05)
    kwargs = dict(
        study=seed["study"],
        truth=seed["truth"],
        runs=seed["first"].runs,
        participants=seed["diff_table"],
        exclusions=seed["exclusions"],
        bib=BIB,
    )
    for key, value in changes.items():
        (args if key in args else kwargs)[key] = value
    return methods.seed_connectivity(**args, **kwargs)


def _check_common(text):
    """Versions, resolved citations, a reference per citation, no raw keys."""
    assert f"nilearn {version('nilearn')}" in text
    assert f"craving_circuits {__version__}" in text
    assert "{cite" not in text and "[" not in text.split("**References**")[0]
    body, refs = text.split("**References**")
    cite = methods.Citations(BIB)
    cited = [k for k in cite.entries if cite.p(k)[1:-1] in body or cite.t(k) in body]
    assert cited, "no author-year citation"
    assert len(refs.strip().splitlines()) == len(cited), "a reference without its citation, or the reverse"
    for key in cited:
        first_author = cite.p(key)[1:].split(",")[0].split(" ")[0]
        assert re.search(rf"^- {first_author}, .*\({cite.entries[key].fields['year']}\)", refs, re.M), key
    keys = methods.Citations(BIB).entries.keys()
    assert not any(k in body for k in keys), "a raw BibTeX key in the text"


def test_seed_connectivity_states_parameters_counts_and_versions(seed):
    text = _seed_text(seed)
    _check_common(text)
    assert "(Abraham et al., 2014)" in text and "(Nichols & Holmes, 2002; Winkler et al., 2014)" in text
    assert "one-tailed p < 0.001" in text and "5000 permutations" in text and "6 mm FWHM" in text
    assert f"{len(seed['first'].runs)} runs" in text
    n = seed["diff_table"]["group"].value_counts()
    assert f"{n['CUD']} CUD and {n['control']} control participants" in text
    assert "simulated study (preset `tiny`" in text
    assert "10 mm spheres at (+/-44, 30, 32)" in text and "within 8 mm of the midline" in text  # atlas.ROIS
    assert "global signal" not in text.lower()
    assert "No run, session or participant was excluded." in text

    other = _seed_text(seed, smoothing_fwhm=8.0, cluster_forming_p=0.01, n_permutations=100, alpha=0.1)
    assert "8 mm FWHM" in other and "p < 0.01 per sign" in other and "100 permutations" in other
    assert "90 % confidence" in other and "5000" not in other


def test_seed_connectivity_follows_the_strategy(seed):
    none = _seed_text(seed, chosen=denoise.parse_strategy("none", (None, None)))
    assert "`none`" in none and "no temporal filter" in none
    assert "Censored" not in none and "Power et al." not in none and "load_confounds" not in none
    gsr = _seed_text(seed, chosen=denoise.parse_strategy("compcor+gsr", (0.01, 0.1)))
    assert "global signal was regressed out" in gsr and "0.01-0.1 Hz" in gsr and "(Murphy & Fox, 2017)" in gsr


def test_exclusions_are_counted_with_their_reasons(seed):
    # the runs of one participant's session that collect_runs would drop, and a censored run
    row = seed["runs"].iloc[0]
    made = pd.DataFrame(
        [
            dict(
                row[["participant_id", "session_id", "state"]],
                stage="inputs",
                file="x/c.tsv",
                reason="confounds file missing; copy fMRIPrep's desc-confounds_timeseries.tsv next to the BOLD run",
            ),
            dict(
                row[["participant_id", "session_id"]],
                state="neutral",
                stage="seed connectivity",
                file="x",
                reason="/data/sub-01_bold.nii.gz: only 12 of 60 volumes left after scrubbing (minimum 20)",
            ),
            dict(
                participant_id="sub-02",
                session_id="",
                state="",
                stage="drug contrast",
                file="",
                reason="no craving - neutral contrast under NAC",
            ),
        ]
    )
    text = _seed_text(seed, exclusions=tables.combine_exclusions(seed["exclusions"], made))
    assert (
        "2 runs (1 for a missing confounds file, 1 for too few volumes left after censoring) and 1 participant "
        "(for no craving - neutral contrast in one of the drug sessions) were excluded" in text
    )
    assert "/data" not in text and "sub-01" not in text


def test_restricted_sessions_are_counted(seed):
    first = seed["first"]
    _, table, excl = secondlevel.state_difference_maps(first.runs, first.maps, "placebo")
    text = _seed_text(
        seed, sessions="placebo", participants=table, exclusions=tables.combine_exclusions(seed["exclusions"], excl)
    )
    assert "taken from the placebo session only" in text
    assert f"In all, {len(excl)} sessions (for a session outside the analysed drug condition) were excluded" in text


def test_real_data_names_the_dataset_not_its_path(seed, tmp_path):
    text = _seed_text(seed, truth=None)
    assert "simulated" not in text and "the BIDS dataset" in text and str(seed["study"].bids_dir) not in text


def _glutamate_text(seed, max_crlb=20.0, **changes):
    study = seed["study"]
    mrs_table = mrs.read_mrs(study.mrs_file)
    kept, qc = mrs.quality_control(mrs_table, "Glu", max_crlb=max_crlb, max_fwhm_hz=12.8, min_snr=None)
    glu_changes, glu_exclusions = mrs.session_changes(kept, "value_water")
    fc_changes = secondlevel.roi_state_differences(seed["first"].roi, CONN.name)
    drugs = seed["runs"][["participant_id", "session_id", "drug"]].drop_duplicates()
    table, change_exclusions = glutamate.participant_changes(
        fc_changes, glu_changes, layout.read_participants(study), drugs, "both", "delta_pct"
    )
    args = dict(
        chosen=CONN,
        metabolite="Glu",
        scale="value_water",
        change="delta_pct",
        max_crlb=max_crlb,
        max_fwhm_hz=12.8,
        min_snr=None,
        n_bootstrap=5000,
        smoothing_fwhm=6.0,
        cluster_forming_p=0.01,
        n_permutations=5000,
        sesoi_r=0.5,
        alpha=0.05,
    )
    args.update(changes)
    text = methods.thalamus_glutamate(
        **args,
        study=study,
        truth=seed["truth"],
        mrs_table=mrs_table,
        qc_exclusions=qc,
        glu_exclusions=glu_exclusions,
        changes=table,
        change_exclusions=change_exclusions,
        bib=BIB,
    )
    return text, qc, glu_exclusions, table


def test_thalamus_glutamate(seed):
    text, qc, glu_exclusions, table = _glutamate_text(seed, max_crlb=10.0)
    _check_common(text)
    failed = qc.drop_duplicates(["participant_id", "session_id", "state"])
    assert f"{len(failed)} failed at least one criterion" in text
    assert f"crlb: {(qc['criterion'] == 'crlb').sum()}" in text
    assert "a CRLB above 10 %" in text and "(Kreis, 2016)" in text
    assert (
        f"In all, {len(glu_exclusions)} sessions (for no usable spectrum of one of the two states) were excluded"
        in text
    )
    assert "r = 0.5" in text and "5000 resamples" in text and "(Steiger, 1980)" in text
    n = table["group"].value_counts()
    assert f"{n['CUD']} CUD and {n['control']} control participants" in text

    no_crlb, qc0, _, _ = _glutamate_text(seed, max_crlb=None, sesoi_r=0.3, n_bootstrap=200)
    assert "CRLB above" not in no_crlb and "(Kreis, 2016)" not in no_crlb and "without the CRLB limit" not in no_crlb
    assert "r = 0.3" in no_crlb and "200 resamples" in no_crlb


def test_nac_null_effect(seed):
    fc_changes = secondlevel.roi_state_differences(seed["first"].roi, CONN.name)
    fc_dd, fc_excl = drug.drug_differences(fc_changes, by=("target",))
    rating_table = layout.read_craving_ratings(seed["study"])
    rating_dd, rating_excl = drug.drug_differences(ratings.rating_changes(rating_table), by=())
    # one participant loses a session's contrast: it is excluded from the drug contrast and counted
    dropped = fc_changes[~((fc_changes["participant_id"] == "sub-02") & (fc_changes["drug"] == "NAC"))]
    fc_dd2, fc_excl2 = drug.drug_differences(dropped, by=("target",))
    args = dict(
        chosen=CONN,
        sesoi_dz=0.8,
        prior_scale=0.707,
        power=0.8,
        smoothing_fwhm=6.0,
        cluster_forming_p=0.001,
        n_permutations=5000,
        alpha=0.05,
    )
    kwargs = dict(study=seed["study"], truth=seed["truth"], rating_differences=rating_dd, bib=BIB)
    text = methods.nac_null_effect(
        **args, double_differences=fc_dd, exclusions=tables.combine_exclusions(fc_excl, rating_excl), **kwargs
    )
    _check_common(text)
    assert "±0.8 standard deviations" in text and "scale r = 0.707" in text and "80 % power" in text
    assert "90 % confidence interval" in text and "(Rouder et al., 2009)" in text
    assert "No run, session or participant was excluded." in text
    assert "Welch's t" in text
    n_rating = rating_dd.loc[rating_dd["group"] == "CUD", "participant_id"].nunique()
    assert f"the rating contrasts, analysed in CUD only, {n_rating} CUD participants." in text
    other = methods.nac_null_effect(
        **{**args, "sesoi_dz": 0.5, "prior_scale": 1.0, "power": 0.9},
        double_differences=fc_dd2,
        exclusions=fc_excl2,
        **kwargs,
    )
    assert "±0.5" in other and "r = 1" in other and "90 % power" in other
    assert "1 participant (for no craving - neutral contrast in one of the drug sessions) was excluded" in other
    n = fc_dd2.drop_duplicates("participant_id")["group"].value_counts()
    assert f"{n['CUD']} CUD and {n['control']} control participants" in other


@pytest.fixture(scope="module")
def baclofen_runs(tmp_path_factory):
    root = baclofen_layout.simulated_study("tiny", tmp_path_factory.mktemp("baclofen"), n_jobs=1)
    runs, exclusions = baclofen_layout.collect_asl_runs(root, ("ses-T1", "ses-T2"))
    return root, runs, exclusions


def test_baclofen_cbf(baclofen_runs):
    root, runs, exclusions = baclofen_runs
    truth = planted.load_ground_truth(root)
    constants = asl.read_asl_constants(runs.iloc[0]["asl_json"], 0.9)
    participants = runs[["participant_id", "group"]].drop_duplicates()
    args = dict(
        constants=constants,
        smoothing_fwhm=6.0,
        global_covariate=True,
        cluster_forming_p=0.001,
        n_permutations=5000,
        alpha=0.05,
    )
    kwargs = dict(root=root, truth=truth, runs=runs, participants=participants, exclusions=exclusions, bib=BIB)
    text = methods.baclofen_cbf(**args, **kwargs)
    _check_common(text)
    assert "(Alsop et al., 2015)" in text and f"{len(runs)} pCASL runs" in text
    assert f"post-labelling delay {constants.post_labeling_delay:g} s" in text and "kept 0.9 of the label" in text
    assert "change of mean grey-matter CBF as a covariate" in text and "repeated without the global" in text
    n = participants["group"].value_counts()
    assert f"{n['baclofen']} baclofen and {n['placebo']} placebo participants" in text

    # a session's run left out at collection, and no global adjustment
    gone = runs.iloc[[0]].assign(
        session_id="ses-T2",
        state="rest",
        stage="time contrast",
        file="",
        reason="needs both ses-T1 and ses-T2, has ['ses-T1']",
    )
    other = methods.baclofen_cbf(**{**args, "global_covariate": False}, **{**kwargs, "exclusions": gone})
    assert "without adjustment for global CBF" in other and "as a covariate" not in other
    assert "subtracting" not in other and "repeated with the global adjustment" in other
    assert "1 participant (for no map in one of the two sessions) was excluded" in other

    # ASLPrep's maps: no quantification sentence, no constants
    assert chapters.quantification_constants(runs, aslprep_dir="derivatives/aslprep") is None
    aslprep = methods.baclofen_cbf(**{**args, "constants": None}, **kwargs)
    assert "quantified by ASLPrep; quantification was not repeated" in aslprep and "post-labelling" not in aslprep
    assert "(Alsop et al., 2015)" not in aslprep


def test_baclofen_mediation(baclofen_runs):
    root, _, _ = baclofen_runs
    runs, exclusions = baclofen_layout.collect_task_runs(root, None, "smokingcue", ("ses-T1", "ses-T2"))
    participants = runs[["participant_id", "group"]].drop_duplicates()
    med = participants.iloc[1:]
    args = dict(
        confounds=["motion", "wm_csf"],
        high_pass=0.008,
        smoothing_fwhm=6.0,
        cluster_forming_p=0.01,
        n_permutations=5000,
        n_bootstrap=5000,
        alpha=0.05,
    )
    kwargs = dict(
        root=root,
        truth=planted.load_ground_truth(root),
        runs=runs,
        participants=participants,
        mediation_table=med,
        exclusions=exclusions,
        bib=BIB,
    )
    text = methods.baclofen_mediation(**args, **kwargs)
    _check_common(text)
    assert f"{len(runs)} smoking-cue task runs" in text and "`motion` and `wm_csf`" in text
    assert "0.008 Hz" in text and "(Imai et al., 2010)" in text
    n = med["group"].value_counts()
    assert f"{n.get('baclofen', 0)} baclofen and {n.get('placebo', 0)} placebo participants; the indirect" in text
    other = methods.baclofen_mediation(**{**args, "n_bootstrap": 999, "high_pass": 0.01}, **kwargs)
    assert "999 resamples" in other and "0.01 Hz" in other and "5000 resamples" not in other


def test_multiverse(seed):
    common = dict(
        study=seed["study"], truth=seed["truth"], runs=seed["first"].runs, exclusions=seed["exclusions"], bib=BIB
    )
    specs = multiverse.specifications(["none", "conn"], [False], [(0.008, 0.09)])
    table = pd.DataFrame({"target": ["dlpfc", "dlpfc"], "term": ["craving - neutral | CUD", "group x state"]})
    text = methods.multiverse(specs, 0.05, table=table, **common)
    _check_common(text)
    assert "2 confound sets (`none`, `conn`) without global signal regression" in text
    assert "2 specifications" in text and "alpha = 0.05" in text and "(Steegen et al., 2016" in text
    assert "2 target-term pairs: dlpfc, craving - neutral | CUD; dlpfc, group x state" in text
    both = multiverse.specifications(["conn"], [False, True], [(0.008, 0.09), (0.01, 0.1)])
    other = methods.multiverse(both, 0.1, **common)
    assert "with and without global signal regression" in other and "4 specifications" in other
    assert "0.01-0.1 Hz" in other and "alpha = 0.1" in other


def test_unknown_citation_and_missing_bibliography(tmp_path):
    cite = methods.Citations(BIB)
    with pytest.raises(KeyError, match="references.bib"):
        cite.p("nosuchkey2099")
    with pytest.raises(FileNotFoundError, match="bib="):
        methods.Citations(tmp_path / "none.bib")
    assert cite.p("nichols2002", "power2014") == "(Nichols & Holmes, 2002; Power et al., 2014)"
    assert cite.t("kreis2016") == "Kreis (2016)"


def test_write_methods(tmp_path):
    assert methods.write_methods(tmp_path / "out", "text\n") == "text\n"
    assert (tmp_path / "out" / "methods.md").read_text() == "text\n"


def test_exclusion_sentence_without_rows_and_with_a_table_without_stage():
    empty = pd.DataFrame(columns=["participant_id", "reason"])
    assert methods.exclusion_sentence(empty) == "No run, session or participant was excluded."
    where = " from at least one analysis"
    assert methods.exclusion_sentence(empty, "participant", where) == "No participant was excluded from any analysis."
    rows = pd.DataFrame({"participant_id": ["sub-01", "sub-01", "sub-02"], "reason": ["no covariate value"] * 3})
    assert methods.exclusion_sentence(rows, "participant") == (
        "In all, 2 participants (for no value of the covariate) were excluded."
    )
