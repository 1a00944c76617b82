"""The columns of every tidy table the book reads or writes, in one place.

Each constant is a list of column names, in order. The modules that build a
table import its constant from here (and re-export it under their own name
where their API has always had it, e.g. ``perfusion.RUN_COLUMNS``).

Inputs read from a study
------------------------
* :data:`EXCLUSION_COLUMNS`: every run, session or participant left out, at
  any stage, with the file and the reason (one table per chapter).
* :data:`MRS_COLUMNS`: the long MRS table (one row per spectrum and metabolite).
* :data:`ASL_RUN_COLUMNS`, :data:`TASK_RUN_COLUMNS`: the runs of the baclofen
  study (pCASL, smoking-cue task).

Intermediate and result tables
------------------------------
* :data:`RESULT_COLUMNS`: every test's tidy row (``term, estimate, se, ci_low,
  ci_high, p``), with identifying columns in front where a table has them.
* :data:`ROI_COLUMNS`: ROI-to-ROI Fisher z of each run (long format).
* :data:`CLUSTER_COLUMNS`: clusters of a permutation test.
* :data:`EVIDENCE_COLUMNS`, :data:`MRS_QC_COLUMNS`, :data:`MULTIVERSE_COLUMNS`:
  the tables of the equivalence tests, the MRS quality control and the
  multiverse.
* :data:`RECOVERY_COLUMNS`, :data:`EVIDENCE_RECOVERY_COLUMNS`: estimates against
  the planted truth of a simulated study; :data:`MAP_RECOVERY_COLUMNS`: measured
  maps (CBF, cue responses) against the true maps.
* :data:`LEDGER_COLUMNS`, :data:`CALIBRATION_COLUMNS`,
  :data:`CALIBRATION_SUMMARY_COLUMNS`, :data:`VOXEL_CALIBRATION_COLUMNS`: the
  verdict chapters.

Stacked replicates
------------------
Any tidy table may hold several replicates of a study at once (the simulated
studies of the calibration): a column :data:`REPLICATE` labels each row's
replicate, and every table computed from it carries the same column in front.
A table without it is one replicate.
"""

from __future__ import annotations

__all__ = [
    "EXCLUSION_COLUMNS",
    "RESULT_COLUMNS",
    "ROI_COLUMNS",
    "CLUSTER_COLUMNS",
    "MRS_COLUMNS",
    "MRS_QC_COLUMNS",
    "ASL_RUN_COLUMNS",
    "TASK_RUN_COLUMNS",
    "EVIDENCE_COLUMNS",
    "MULTIVERSE_COLUMNS",
    "RECOVERY_COLUMNS",
    "EVIDENCE_RECOVERY_COLUMNS",
    "MAP_RECOVERY_COLUMNS",
    "LEDGER_COLUMNS",
    "CALIBRATION_COLUMNS",
    "CALIBRATION_SUMMARY_COLUMNS",
    "VOXEL_CALIBRATION_COLUMNS",
    "REPLICATE",
]

# --------------------------------------------------------------------------- inputs

#: Runs, sessions or participants left out, with their reason.
EXCLUSION_COLUMNS = ["participant_id", "session_id", "state", "stage", "file", "reason"]

#: The long MRS table: one row per spectrum (participant, session, state) and metabolite.
MRS_COLUMNS = [
    "participant_id",
    "session_id",
    "state",
    "metabolite",
    "value_tcr",
    "value_water",
    "crlb_percent",
    "fwhm_hz",
    "snr",
]

#: pCASL runs of a perfusion study, with their companion files.
ASL_RUN_COLUMNS = ["participant_id", "group", "session_id", "asl", "asl_json", "aslcontext", "m0"]

#: Cue-task runs, with their fMRIPrep outputs, events and repetition time.
TASK_RUN_COLUMNS = ["participant_id", "group", "session_id", "bold", "confounds", "events", "t_r"]

# --------------------------------------------------------------------------- results

#: Every test's tidy row.
RESULT_COLUMNS = ["term", "estimate", "se", "ci_low", "ci_high", "p"]

#: ROI-to-ROI Fisher z of each run and denoising strategy.
ROI_COLUMNS = ["participant_id", "group", "session_id", "drug", "state", "strategy", "seed", "target", "fisher_z"]

#: Clusters of a permutation test (before their table adds coordinates, labels and ROI overlaps).
CLUSTER_COLUMNS = ["cluster_id", "sign", "size", "mass", "peak_t", "peak_voxel", "p_fwe_size", "p_fwe_mass"]

#: Columns of :func:`craving_circuits.stats.equivalence.evidence_table`.
EVIDENCE_COLUMNS = RESULT_COLUMNS + [
    "n",
    "dz",
    "bound",
    "bound_dz",
    "ci90_low",
    "ci90_high",
    "p_equivalence",
    "equivalent_within_dz",
    "bf01",
    "prior_scale",
    "detectable_dz",
    "verdict",
    "bayes_factor",
]

#: Spectra left out by MRS quality control, with the criterion that failed.
MRS_QC_COLUMNS = ["participant_id", "session_id", "state", "metabolite", "criterion", "value", "limit"]

#: One row per denoising specification, target and contrast.
MULTIVERSE_COLUMNS = [
    "strategy",
    "confounds",
    "gsr",
    "band_pass",
    "target",
    "term",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "p",
    "significant",
]

# --------------------------------------------------------------------------- the verdict

#: Estimates against the planted truth.
RECOVERY_COLUMNS = [
    "estimand",
    "effect",
    "test",
    "planted",
    "estimate",
    "ci_low",
    "ci_high",
    "p",
    "planted_present",
    "found",
    "agree",
]

#: Equivalence evidence against the planted truth.
EVIDENCE_RECOVERY_COLUMNS = [
    "effect",
    "term",
    "planted",
    "estimate",
    "ci90_low",
    "ci90_high",
    "bound",
    "p",
    "p_equivalence",
    "bf01",
    "verdict",
    "planted_present",
    "agree",
]

#: Measured maps against the true maps of a simulated study: bias and correlations per region.
MAP_RECOVERY_COLUMNS = ["region", "term", "n", "estimate", "se", "ci_low", "ci_high", "p"]

#: The claims ledger, in order.
LEDGER_COLUMNS = [
    "claim_id",
    "study",
    "claim",
    "test",
    "statistic",
    "estimate",
    "ci_low",
    "ci_high",
    "p",
    "verdict",
    "detail",
    "planted",
    "planted_present",
    "agree",
    "calibration",
    "source",
]

#: One row per Monte Carlo replicate and claim.
CALIBRATION_COLUMNS = [
    "condition",
    "replicate",
    "study",
    "claim_id",
    "test",
    "planted_present",
    "estimate",
    "p",
    "found",
    "equivalent",
]

#: Rates per claim and condition, with Clopper-Pearson intervals.
CALIBRATION_SUMMARY_COLUMNS = [
    "study",
    "claim_id",
    "test",
    "condition",
    "planted_present",
    "measure",
    "n",
    "count",
    "rate",
    "ci_low",
    "ci_high",
    "nominal",
    "criterion",
    "holds",
]

#: One row per voxelwise null replicate and test.
VOXEL_CALIBRATION_COLUMNS = [
    "replicate",
    "condition",
    "study",
    "test",
    "cluster_forming_p",
    "n_clusters",
    "min_p_fwe",
    "found",
]

#: The column that labels the replicate of each row of a table of stacked replicates.
REPLICATE = "replicate"
