"""NAcc MRS table: reading checks, quality control by criterion, change scores, QC summaries.

Every expected number below is worked out by hand from the small tables built
here (or recomputed with plain pandas), never taken from the module's output.
"""

import numpy as np
import pandas as pd
import pytest

from craving_circuits.cocaine import mrs
from craving_circuits.io.files import write_tsv


def _row(pid, ses, state, metabolite="Glu", tcr=1.0, water=10.0, crlb=5.0, fwhm=8.0, snr=20.0):
    return dict(zip(mrs.MRS_COLUMNS, [pid, ses, state, metabolite, tcr, water, crlb, fwhm, snr]))


def _table(rows):
    return pd.DataFrame(rows, columns=mrs.MRS_COLUMNS)


# --------------------------------------------------------------------------- read_mrs


def _valid_table():
    return _table(
        [
            _row("sub-01", "ses-1", "neutral"),
            _row("sub-01", "ses-1", "neutral", "NAA", 1.5, 12.0),
            _row("sub-01", "ses-1", "craving", water=11.0),
            _row("sub-01", "ses-1", "craving", "NAA", 1.5, 12.0),
            _row("sub-02", "ses-1", "neutral", water=np.nan, crlb=np.nan),
            _row("sub-02", "ses-1", "craving"),
        ]
    )


def test_read_mrs_round_trip_with_bids_missing_values(tmp_path):
    table = _valid_table()
    path = write_tsv(tmp_path / "mrs.tsv", table)
    assert "n/a" in path.read_text()
    back = mrs.read_mrs(path)
    assert list(back.columns) == mrs.MRS_COLUMNS
    assert (
        back[["participant_id", "session_id", "state", "metabolite"]].values.tolist()
        == table[["participant_id", "session_id", "state", "metabolite"]].values.tolist()
    )
    numeric = ["value_tcr", "value_water", "crlb_percent", "fwhm_hz", "snr"]
    np.testing.assert_allclose(back[numeric].to_numpy(float), table[numeric].to_numpy(float))
    assert back["value_water"].isna().tolist() == [False] * 4 + [True, False]


def test_read_mrs_missing_file_names_it(tmp_path):
    path = tmp_path / "nowhere" / "nacc_metabolites.tsv"
    with pytest.raises(FileNotFoundError, match="nacc_metabolites.tsv"):
        mrs.read_mrs(path)


def test_read_mrs_missing_columns_are_listed(tmp_path):
    path = write_tsv(tmp_path / "mrs.tsv", _valid_table().drop(columns=["snr", "fwhm_hz"]))
    with pytest.raises(ValueError) as err:
        mrs.read_mrs(path)
    assert "'snr'" in str(err.value) and "'fwhm_hz'" in str(err.value)
    assert "'crlb_percent'" not in str(err.value).split("needs")[0]


def test_read_mrs_unknown_state(tmp_path):
    table = _valid_table()
    table.loc[5, "state"] = "baseline"
    path = write_tsv(tmp_path / "mrs.tsv", table)
    with pytest.raises(ValueError, match="baseline"):
        mrs.read_mrs(path)


def test_read_mrs_duplicate_spectrum_metabolite_names_the_spectrum(tmp_path):
    table = _valid_table()
    table = pd.concat([table, table.iloc[[5]]], ignore_index=True)  # sub-02 ses-1 craving Glu twice
    table.loc[len(table) - 1, "value_water"] = 10.5  # not an exact duplicate row: same spectrum, new value
    path = write_tsv(tmp_path / "mrs.tsv", table)
    with pytest.raises(ValueError) as err:
        mrs.read_mrs(path)
    message = str(err.value)
    assert "sub-02" in message and "craving" in message and "ses-1" in message
    assert "sub-01" not in message


# --------------------------------------------------------------------------- quality control


def _qc_table():
    """Thirteen spectra, one Glu and one NAA row each (except B), each planted to pass or fail one way."""
    glu = {
        "A": _row("sub-01", "ses-1", "neutral"),  # passes
        "C": _row("sub-02", "ses-1", "neutral", water=-1.0),  # invalid value (negative)
        "D": _row("sub-02", "ses-1", "craving", tcr=np.nan, water=9.0),  # invalid value (missing tCr ratio)
        "E": _row("sub-03", "ses-1", "neutral", crlb=np.nan),  # invalid crlb (missing)
        "F": _row("sub-03", "ses-1", "craving", crlb=-2.0),  # invalid crlb (negative)
        "G": _row("sub-04", "ses-1", "neutral", crlb=25.0),  # crlb above 20
        "H": _row("sub-04", "ses-1", "craving", crlb=20.0),  # crlb at the limit: passes
        "I": _row("sub-05", "ses-1", "neutral", fwhm=13.0),  # fwhm above 12.8
        "J": _row("sub-05", "ses-1", "craving", fwhm=12.8),  # fwhm at the limit: passes
        "K": _row("sub-06", "ses-1", "neutral", snr=4.0),  # snr below 5
        "L": _row("sub-06", "ses-1", "craving", snr=5.0),  # snr at the limit: passes
        "M": _row("sub-07", "ses-1", "neutral", crlb=30.0, fwhm=15.0),  # fails crlb and fwhm
    }
    rows = []
    for r in glu.values():
        rows += [r, {**r, "metabolite": "NAA", "value_tcr": 1.5, "value_water": 12.0, "crlb_percent": 3.0}]
    # B: the spectrum has NAA but no Glu row
    rows.append(_row("sub-01", "ses-1", "craving", "NAA", 1.5, 12.0, 3.0))
    return _table(rows), glu


SPEC = {k: (v["participant_id"], v["session_id"], v["state"]) for k, v in _qc_table()[1].items()}
SPEC["B"] = ("sub-01", "ses-1", "craving")


def _exclusion_set(exclusions):
    return sorted((r.participant_id, r.session_id, r.state, r.criterion) for r in exclusions.itertuples(index=False))


def _expected(spec_criteria):
    return sorted(SPEC[k] + (c,) for k, c in spec_criteria)


def _kept_spectra(kept):
    return sorted(map(tuple, kept[mrs.SPECTRUM].values.tolist()))


def test_quality_control_each_criterion_exact():
    table, glu = _qc_table()
    before = table.copy()
    kept, excl = mrs.quality_control(table, "Glu", max_crlb=20.0, max_fwhm_hz=12.8, min_snr=5.0)
    pd.testing.assert_frame_equal(table, before)  # input untouched

    assert list(excl.columns) == mrs.QC_COLUMNS
    assert _exclusion_set(excl) == _expected(
        [
            ("B", "missing"),
            ("C", "invalid value"),
            ("D", "invalid value"),
            ("E", "invalid crlb"),
            ("F", "invalid crlb"),
            ("G", "crlb"),
            ("I", "fwhm"),
            ("K", "snr"),
            ("M", "crlb"),
            ("M", "fwhm"),
        ]
    )
    assert set(excl["metabolite"]) == {"Glu"}
    # the spectrum failing two criteria is listed once per criterion
    assert (excl["participant_id"] == "sub-07").sum() == 2

    # value and limit of each failure: the measured quantity and the limit it broke
    by = {(r.participant_id, r.state, r.criterion): (r.value, r.limit) for r in excl.itertuples(index=False)}
    assert by[("sub-04", "neutral", "crlb")] == (25.0, 20.0)
    assert by[("sub-07", "neutral", "crlb")] == (30.0, 20.0)
    assert by[("sub-07", "neutral", "fwhm")] == (15.0, 12.8)
    assert by[("sub-05", "neutral", "fwhm")] == (13.0, 12.8)
    assert by[("sub-06", "neutral", "snr")] == (4.0, 5.0)
    assert by[("sub-03", "craving", "invalid crlb")][0] == -2.0
    assert np.isnan(by[("sub-03", "neutral", "invalid crlb")][0])
    assert by[("sub-02", "neutral", "invalid value")][0] == -1.0
    assert np.isnan(by[("sub-01", "craving", "missing")][0])

    # kept: exactly the Glu rows of A, H, J, L, unchanged
    assert _kept_spectra(kept) == sorted(SPEC[k] for k in "AHJL")
    expected_rows = _table([glu[k] for k in "AHJL"])
    pd.testing.assert_frame_equal(
        kept.sort_values(mrs.SPECTRUM).reset_index(drop=True),
        expected_rows.sort_values(mrs.SPECTRUM).reset_index(drop=True),
        check_dtype=False,
    )


@pytest.mark.parametrize(
    "off, now_kept, gone",
    [
        ({"max_crlb": None}, "AGHJL", [("G", "crlb"), ("M", "crlb")]),
        ({"max_fwhm_hz": None}, "AHIJL", [("I", "fwhm"), ("M", "fwhm")]),
        ({"min_snr": None}, "AHJKL", [("K", "snr")]),
    ],
)
def test_quality_control_limit_none_disables_only_that_criterion(off, now_kept, gone):
    table, _ = _qc_table()
    limits = {"max_crlb": 20.0, "max_fwhm_hz": 12.8, "min_snr": 5.0, **off}
    kept, excl = mrs.quality_control(table, "Glu", **limits)
    full = [
        ("B", "missing"),
        ("C", "invalid value"),
        ("D", "invalid value"),
        ("E", "invalid crlb"),
        ("F", "invalid crlb"),
        ("G", "crlb"),
        ("I", "fwhm"),
        ("K", "snr"),
        ("M", "crlb"),
        ("M", "fwhm"),
    ]
    assert _exclusion_set(excl) == _expected([f for f in full if f not in gone])
    assert _kept_spectra(kept) == sorted(SPEC[k] for k in now_kept)


def test_quality_control_all_limits_off_still_checks_validity():
    table, _ = _qc_table()
    kept, excl = mrs.quality_control(table, "Glu", max_crlb=None, max_fwhm_hz=None, min_snr=None)
    assert _exclusion_set(excl) == _expected(
        [("B", "missing"), ("C", "invalid value"), ("D", "invalid value"), ("E", "invalid crlb"), ("F", "invalid crlb")]
    )
    assert _kept_spectra(kept) == sorted(SPEC[k] for k in "AGHIJKLM")


def test_quality_control_defaults_are_crlb_20_fwhm_12_8_no_snr():
    table, _ = _qc_table()
    kept, excl = mrs.quality_control(table)
    assert set(excl["criterion"]) == {"missing", "invalid value", "invalid crlb", "crlb", "fwhm"}
    assert _kept_spectra(kept) == sorted(SPEC[k] for k in "AHJKL")


def test_quality_control_other_metabolite_and_unknown_metabolite():
    table, _ = _qc_table()
    kept, excl = mrs.quality_control(table, "NAA")
    # every spectrum has a valid NAA row; M's linewidth (15 Hz) and I's (13 Hz) still fail
    assert _exclusion_set(excl) == _expected([("I", "fwhm"), ("M", "fwhm")])
    assert set(kept["metabolite"]) == {"NAA"} and len(kept) == 11
    with pytest.raises(ValueError, match="GABA"):
        mrs.quality_control(table, "GABA")


# --------------------------------------------------------------------------- change scores


def _kept_for_changes():
    return _table(
        [
            _row("sub-01", "ses-1", "neutral", tcr=1.25, water=10.0),
            _row("sub-01", "ses-1", "craving", tcr=1.5, water=11.0),
            _row("sub-01", "ses-2", "craving", tcr=0.8, water=7.0),  # rows out of order on purpose
            _row("sub-01", "ses-2", "neutral", tcr=1.0, water=8.0),
            _row("sub-02", "ses-1", "craving", tcr=1.0, water=9.0),  # no neutral spectrum
            _row("sub-03", "ses-2", "neutral", tcr=1.0, water=9.0),  # no craving spectrum
        ]
    )


def test_session_changes_exact_by_hand_water_and_tcr():
    kept = _kept_for_changes()
    before = kept.copy()
    changes, excl = mrs.session_changes(kept)
    pd.testing.assert_frame_equal(kept, before)
    assert set(changes.columns) == {"participant_id", "session_id", "neutral", "craving", "delta", "delta_pct"}
    changes = changes.sort_values(["participant_id", "session_id"]).reset_index(drop=True)
    assert changes[["participant_id", "session_id"]].values.tolist() == [["sub-01", "ses-1"], ["sub-01", "ses-2"]]
    np.testing.assert_allclose(
        changes[["neutral", "craving", "delta", "delta_pct"]].to_numpy(float),
        [[10.0, 11.0, 1.0, 10.0], [8.0, 7.0, -1.0, -12.5]],
    )

    tcr, _ = mrs.session_changes(kept, scale="value_tcr")
    tcr = tcr.sort_values(["participant_id", "session_id"]).reset_index(drop=True)
    np.testing.assert_allclose(
        tcr[["neutral", "craving", "delta", "delta_pct"]].to_numpy(float),
        [[1.25, 1.5, 0.25, 20.0], [1.0, 0.8, -0.2, -20.0]],
    )

    excl = excl.sort_values("participant_id").reset_index(drop=True)
    assert excl.values.tolist() == [
        ["sub-02", "ses-1", "no usable neutral spectrum"],
        ["sub-03", "ses-2", "no usable craving spectrum"],
    ]


def test_session_changes_columns_in_documented_order():
    changes, excl = mrs.session_changes(_kept_for_changes())
    assert list(changes.columns) == ["participant_id", "session_id", "neutral", "craving", "delta", "delta_pct"]
    assert list(excl.columns) == ["participant_id", "session_id", "reason"]


def test_session_changes_after_quality_control_lists_the_failed_state():
    table = _table(
        [
            _row("sub-01", "ses-1", "neutral", water=10.0),
            _row("sub-01", "ses-1", "craving", water=12.0),
            _row("sub-02", "ses-1", "neutral", water=10.0),
            _row("sub-02", "ses-1", "craving", water=12.0, crlb=35.0),
        ]
    )
    kept, _ = mrs.quality_control(table)
    changes, excl = mrs.session_changes(kept)
    assert changes["participant_id"].tolist() == ["sub-01"]
    np.testing.assert_allclose(changes["delta_pct"], [20.0])
    assert excl.values.tolist() == [["sub-02", "ses-1", "no usable craving spectrum"]]


def test_session_changes_rejects_two_metabolites_and_bad_scale():
    kept = _kept_for_changes()
    mixed = pd.concat([kept, kept.assign(metabolite="NAA")], ignore_index=True)
    with pytest.raises(ValueError, match="one metabolite"):
        mrs.session_changes(mixed)
    with pytest.raises(ValueError, match="scale"):
        mrs.session_changes(kept, scale="value_cr")


# --------------------------------------------------------------------------- summaries


def test_qc_summary_counts_spectra_per_criterion_and_kept():
    table, _ = _qc_table()
    kept, excl = mrs.quality_control(table, "Glu", min_snr=5.0)
    summary = mrs.qc_summary(table, excl)
    assert list(summary.columns) == ["criterion", "spectra", "share"]
    assert summary["criterion"].iloc[-1] == "kept"
    counts = dict(zip(summary["criterion"], summary["spectra"]))
    # 13 spectra; A, H, J and L pass; M counts under both crlb and fwhm
    assert counts == {"missing": 1, "invalid value": 2, "invalid crlb": 2, "crlb": 2, "fwhm": 2, "snr": 1, "kept": 4}
    assert counts["kept"] == len(kept)
    np.testing.assert_allclose(summary["share"], summary["spectra"] / 13)


def test_qc_summary_when_every_spectrum_passes():
    table = _table([_row("sub-01", "ses-1", "neutral"), _row("sub-01", "ses-1", "craving")])
    kept, excl = mrs.quality_control(table)
    assert excl.empty and len(kept) == 2
    summary = mrs.qc_summary(table, excl)
    assert summary["criterion"].tolist() == ["kept"]
    assert summary["spectra"].tolist() == [2]
    np.testing.assert_allclose(summary["share"], [1.0])


def test_filtering_bias_low_readings_with_high_crlb_shift_the_mean_up():
    # same absolute fit uncertainty (1.5 units) for every spectrum, so CRLB % = 150 / value:
    # 6 -> 25 %, 7 -> 21.4 % (removed by a 20 % limit), 8 -> 18.75 %, ... 12 -> 12.5 % (kept)
    values = np.arange(6.0, 13.0)
    rows = [_row(f"sub-{i:02d}", "ses-1", "neutral", water=v, crlb=150.0 / v) for i, v in enumerate(values)]
    rows += [
        _row("sub-90", "ses-1", "neutral", water=0.0, crlb=5.0),  # invalid value: left out of both
        _row("sub-91", "ses-1", "neutral", water=50.0, crlb=np.nan),  # invalid CRLB: left out of both
        _row("sub-01", "ses-1", "neutral", "NAA", water=12.0, crlb=30.0),
        _row("sub-02", "ses-1", "neutral", "NAA", water=14.0, crlb=3.0),
        _row("sub-03", "ses-1", "neutral", "NAA", water=16.0, crlb=20.0),
    ]  # at the limit: kept
    table = _table(rows)
    bias = mrs.filtering_bias(table, metabolites=("Glu", "NAA"), max_crlb=20.0)
    assert list(bias.columns) == ["metabolite", "n_all", "mean_all", "n_kept", "mean_kept", "shift_pct"]
    glu = bias.set_index("metabolite").loc["Glu"]
    assert (glu["n_all"], glu["n_kept"]) == (7, 5)
    np.testing.assert_allclose([glu["mean_all"], glu["mean_kept"], glu["shift_pct"]], [9.0, 10.0, 100 / 9])
    assert glu["mean_kept"] > glu["mean_all"]
    naa = bias.set_index("metabolite").loc["NAA"]
    assert (naa["n_all"], naa["n_kept"]) == (3, 2)
    np.testing.assert_allclose([naa["mean_all"], naa["mean_kept"], naa["shift_pct"]], [14.0, 15.0, 100 / 14])

    # the same numbers with plain pandas
    valid = table[(table["value_water"] > 0) & table["crlb_percent"].notna() & (table["crlb_percent"] >= 0)]
    for m, row in bias.set_index("metabolite").iterrows():
        sub = valid[valid["metabolite"] == m]
        k = sub[sub["crlb_percent"] <= 20.0]
        assert (row["n_all"], row["n_kept"]) == (len(sub), len(k))
        np.testing.assert_allclose(
            [row["mean_all"], row["mean_kept"]], [sub["value_water"].mean(), k["value_water"].mean()]
        )
        np.testing.assert_allclose(row["shift_pct"], 100 * (k["value_water"].mean() / sub["value_water"].mean() - 1))
