"""Methods paragraphs written from a chapter's own run, ready to paste into a paper.

Each analysis chapter ends with one call of this module: the function of the
chapter takes the parameters and tables the notebook has in scope and returns
Markdown of one or two paragraphs in the past tense (which data, which steps,
which tests with their settings, how many participants and runs were analysed
and excluded, and why), a sentence naming the software with its installed
versions, and the list of the works cited. In the manner of the CONN toolbox's
and ASLPrep's boilerplate, every number comes from the inputs and every
citation from the book's bibliography (``book/references.bib``), so the text
describes the run that produced it: change a parameter and the paragraph
changes with it.

Citations are author-year, "(Abraham et al., 2014)"; an unknown key raises an
error naming the bibliography file.
"""

from __future__ import annotations

import codecs
import json
import platform
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import latexcodec  # noqa: F401  (registers the "ulatex" codec)
import pandas as pd
from pybtex.database import parse_file

from craving_circuits import __version__
from craving_circuits.cocaine.denoise import CONFOUND_SETS
from craving_circuits.io.atlas import ROIS
from craving_circuits.io.files import write_text

__all__ = [
    "SOFTWARE",
    "Citations",
    "software_sentence",
    "exclusion_sentence",
    "data_sentence",
    "seed_connectivity",
    "thalamus_glutamate",
    "nac_null_effect",
    "baclofen_cbf",
    "baclofen_mediation",
    "multiverse",
    "write_methods",
]

#: Distributions named in the software sentence, in this order.
SOFTWARE = ("nilearn", "nibabel", "numpy", "scipy", "statsmodels", "pandas")

#: Default bibliography, relative to the working directory (the repository root when notebooks run).
DEFAULT_BIB = "book/references.bib"

#: The bibliography of the checkout this package is installed from (editable installs), when the
#: working directory is not the repository root.
_CHECKOUT_BIB = Path(__file__).resolve().parents[3] / DEFAULT_BIB

#: The unit of a row of an exclusion table, by its ``stage``.
STAGE_UNITS = {
    "inputs": "run",
    "seed connectivity": "run",
    "collect": "run",
    "cbf": "run",
    "cue GLM": "run",
    "second level": "session",
    "ratings": "session",
    "drug contrast": "participant",
    "time contrast": "participant",
    "mediation": "participant",
    "craving ratings": "participant",
}

#: Short wording of the exclusion reasons the package writes (regular expression, wording).
REASONS = (
    (r"preprocessed BOLD not found", "a missing preprocessed BOLD image"),
    (r"confounds file missing", "a missing confounds file"),
    (r"JSON sidecar missing", "a missing or incomplete JSON sidecar"),
    (r"no drug recorded", "no recorded drug"),
    (r"no row in|not in participants\.tsv", "no row in participants.tsv"),
    (r"image cannot be read", "an unreadable image"),
    (r"not 4D", "an image that was not 4D"),
    (r"grid .*differs", "a grid unlike the study's"),
    (r"repetition time .*differs", "a repetition time unlike the study's"),
    (r"another run of this state", "a second run of the same state in the session"),
    (r"only \d+ of \d+ volumes left", "too few volumes left after censoring"),
    (r"restricted to", "a session outside the analysed drug condition"),
    (r"no analysable \w+ run in this session", "no analysable run of the other state in the session"),
    (r"no craving - neutral (contrast|change) under", "no craving - neutral contrast in one of the drug sessions"),
    (r"craving rating missing|craving missing", "a missing craving rating"),
    (r"is not one of sessions", "a session outside the analysed ones"),
    (r"needs both", "no map in one of the two sessions"),
    (r"non-finite CBF", "non-finite CBF values in the brain mask"),
    (r"unlike the first map", "a CBF map on another grid"),
    (r"no covariate value", "no value of the covariate"),
    (r"no usable \w+ spectrum", "no usable spectrum of one of the two states"),
    (r"no session with a connectivity change and a usable glutamate change", "no session with both changes"),
    (r"left out of the predictor model", "a missing clinical score (predictor models only)"),
    (r"^missing ", "a missing input file"),
)

_PLURAL = {"run": "runs", "session": "sessions", "participant": "participants", "spectrum": "spectra"}


# ----------------------------------------------------------------------------- citations


def _latex_to_text(text: str) -> str:
    """Unicode text of a BibTeX field (accents decoded, protecting braces removed)."""
    return codecs.decode(str(text), "ulatex").replace("{", "").replace("}", "").replace("\\&", "&")


class Citations:
    """Author-year citations from a BibTeX file, remembering what was cited.

    Parameters
    ----------
    bib : path
        The bibliography (``book/references.bib``).
    """

    def __init__(self, bib: str | Path = DEFAULT_BIB):
        self.path = Path(bib)
        if not self.path.is_file() and str(bib) == DEFAULT_BIB and _CHECKOUT_BIB.is_file():
            self.path = _CHECKOUT_BIB  # a notebook run outside the repository root, from a checkout
        if not self.path.is_file():
            raise FileNotFoundError(
                f"Bibliography {self.path} not found; run from the repository root or pass "
                f"bib=<path of references.bib>."
            )
        self.entries = parse_file(str(self.path)).entries
        self.cited: list[str] = []

    def _entry(self, key: str):
        if key not in self.entries:
            raise KeyError(f"Citation key {key!r} is not in {self.path}; add the entry or fix the key.")
        if key not in self.cited:
            self.cited.append(key)
        return self.entries[key]

    def _last_names(self, key: str) -> list[str]:
        entry = self._entry(key)
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        return [_latex_to_text(" ".join(p.prelast_names + p.last_names)) for p in people]

    def _names(self, key: str, joiner: str) -> str:
        names = self._last_names(key)
        if len(names) == 1:
            return names[0]
        if len(names) == 2:
            return f"{names[0]} {joiner} {names[1]}"
        return f"{names[0]} et al."

    def p(self, *keys: str) -> str:
        """Parenthetical citation, e.g. ``(Nichols & Holmes, 2002; Winkler et al., 2014)``."""
        return "(" + "; ".join(f"{self._names(k, '&')}, {self._entry(k).fields['year']}" for k in keys) + ")"

    def t(self, key: str) -> str:
        """Narrative citation, e.g. ``Power et al. (2014)``."""
        return f"{self._names(key, 'and')} ({self._entry(key).fields['year']})"

    def _reference(self, key: str) -> str:
        entry = self.entries[key]
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = []
        for person in people:
            last = _latex_to_text(" ".join(person.prelast_names + person.last_names))
            initials = " ".join(
                f"{_latex_to_text(n).strip('.')[:1]}." for n in person.first_names + person.middle_names if n.strip()
            )
            names.append(f"{last}, {initials}".rstrip(", ") if initials else last)
        if names and names[-1] == "others":
            authors = ", ".join(names[:-1]) + ", et al."
        elif len(names) > 1:
            authors = ", ".join(names[:-1]) + ", & " + names[-1]
        else:
            authors = "".join(names)
        f = {k: _latex_to_text(v) for k, v in entry.fields.items()}
        text = f"{authors} ({f.get('year', 'n.d.')}). "
        if entry.type == "book":
            text += f"*{f['title']}*. " + ", ".join(x for x in (f.get("publisher"), f.get("address")) if x) + "."
        elif entry.type == "inproceedings":
            pages = f" (pp. {f['pages'].replace('--', '–')})" if "pages" in f else ""
            text += f"{f['title']}. In *{f.get('booktitle', '')}*{pages}."
        else:
            text += f"{f['title']}. *{f.get('journal', '')}*"
            if "volume" in f:
                text += f", *{f['volume']}*" + (f"({f['number']})" if "number" in f else "")
            if "pages" in f:
                text += f", {f['pages'].replace('--', '–')}"
            text += "."
        if "doi" in f:
            text += f" https://doi.org/{f['doi']}"
        return text

    def reference_list(self) -> str:
        """Markdown list of the cited works, sorted by first author and year."""
        keys = sorted(self.cited, key=lambda k: (self._last_names(k)[:1], self.entries[k].fields.get("year", "")))
        return "\n".join(f"- {self._reference(k)}" for k in keys)


# ----------------------------------------------------------------------------- shared sentences


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "(not installed)"


def software_sentence(cite: Citations, packages=SOFTWARE) -> str:
    """The "Software" sentence: Python, this package and the libraries with their installed versions."""
    refs = {"nilearn": cite.p("abraham2014"), "statsmodels": cite.p("seabold2010")}
    libs = [f"{name} {_version(name)}" + (f" {refs[name]}" if name in refs else "") for name in packages]
    return (
        f"**Software.** The analyses ran in Python {platform.python_version()} with craving_circuits "
        f"{__version__}, using {', '.join(libs[:-1])} and {libs[-1]}."
    )


def _count(n: int, unit: str) -> str:
    return f"{n} {unit if n == 1 else _PLURAL.get(unit, unit + 's')}"


def _short_reason(reason: str) -> str:
    text = str(reason)
    for pattern, wording in REASONS:
        if re.search(pattern, text):
            return wording
    text = re.sub(r"^\S*/\S*:\s*", "", text).split(";")[0]
    text = re.sub(r"\S*/\S+", "a file", text)
    return re.sub(r"ses-\w+", "the session", re.sub(r"sub-\w+", "the participant", text)).strip()


def _row_unit(row: pd.Series, unit: str | None) -> str:
    if unit:
        return unit
    stage = row.get("stage")
    if stage in STAGE_UNITS:
        return STAGE_UNITS[stage]
    if pd.isna(row.get("session_id")) or row.get("session_id") in ("", None):
        return "participant"
    return "session" if row.get("state") in ("", "both", None) or pd.isna(row.get("state")) else "run"


def exclusion_sentence(exclusions: pd.DataFrame | None, unit: str | None = None, where: str = "") -> str:
    """How many runs, sessions or participants an exclusion table lists, with the reasons summarised.

    Parameters
    ----------
    exclusions : pandas.DataFrame or None
        Rows with at least ``participant_id`` and ``reason`` (the package's
        exclusion tables; ``stage`` tells the unit of a row, see
        :data:`STAGE_UNITS`).
    unit : str, optional
        The unit of every row ("run", "session", "participant", "spectrum"),
        where the table has no ``stage``.
    where : str
        Appended to the verb, e.g. " from the glutamate analysis".

    Returns
    -------
    sentence : str
        E.g. "2 runs were excluded (1 for a missing confounds file, 1 for too
        few volumes left after censoring)." or "No run, session or participant
        was excluded."
    """
    if exclusions is None or not len(exclusions):
        nothing = f"No {unit}" if unit else "No run, session or participant"
        return f"{nothing} was excluded{where.replace('at least one', 'any')}."
    rows = exclusions.assign(
        _unit=[_row_unit(row, unit) for _, row in exclusions.iterrows()],
        _reason=exclusions["reason"].map(_short_reason),
    )
    parts = []
    for u in ("run", "spectrum", "session", "participant"):
        sub = rows[rows["_unit"] == u]
        if sub.empty:
            continue
        if u == "participant":
            sub = sub.drop_duplicates(["participant_id", "_reason"])
        reasons = sub["_reason"].value_counts(sort=True)
        why = ", ".join(f"{n} for {r}" for r, n in reasons.items()) if len(reasons) > 1 else f"for {reasons.index[0]}"
        n = sub["participant_id"].nunique() if u == "participant" else len(sub)
        parts.append(f"{_count(n, u)} ({why})")
    verb = "was" if len(parts) == 1 and parts[0].startswith("1 ") else "were"
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"In all, {listed} {verb} excluded{where}."


def _groups(table: pd.DataFrame, order=None) -> str:
    """'8 CUD and 6 control participants' from a table with ``participant_id, group``."""
    counts = table.drop_duplicates("participant_id")["group"].value_counts()
    names = [g for g in (order or sorted(counts.index)) if g in counts.index]
    if not names:
        return "no participants"
    parts = [f"{counts[g]} {g}" for g in names]
    total = int(counts[names].sum())
    return (parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]) + (
        " participant" if total == 1 else " participants"
    )


def _dataset_name(bids_dir) -> str:
    path = Path(bids_dir)
    try:
        name = json.loads((path / "dataset_description.json").read_text()).get("Name")
    except (OSError, ValueError):
        name = None
    return f"{name} (`{path.name}`)" if name else f"`{path.name}`"


def _fmriprep_version(fmriprep_dir) -> str:
    try:
        generated = json.loads((Path(fmriprep_dir) / "dataset_description.json").read_text()).get("GeneratedBy", [])
        found = [g.get("Version") for g in generated if str(g.get("Name", "")).lower() == "fmriprep"]
    except (OSError, ValueError, AttributeError):
        found = []
    return f" {found[0]}" if found and found[0] else ""


def data_sentence(cite: Citations, bids_dir, truth: dict | None, fmriprep_dir=None) -> str:
    """Which data were analysed: a simulated study (its preset and seed) or the user's BIDS dataset."""
    if truth is not None:
        p = truth.get("parameters", {})
        seed = f", seed {p['seed']}" if "seed" in p else ""
        return (
            f"The data were a simulated study (preset `{p.get('preset', '?')}`{seed}) written by craving_circuits "
            f"with planted effects, as a BIDS dataset {cite.p('gorgolewski2016')}"
            + (f" with fMRIPrep-style derivatives {cite.p('esteban2019')}" if fmriprep_dir is not None else "")
            + "."
        )
    text = f"The data were the BIDS dataset {_dataset_name(bids_dir)} {cite.p('gorgolewski2016')}"
    if fmriprep_dir is not None:
        text += f", preprocessed with fMRIPrep{_fmriprep_version(fmriprep_dir)} {cite.p('esteban2019')}"
    return text + "."


def _assemble(cite: Citations, paragraphs: list[str]) -> str:
    return "\n\n".join([*paragraphs, software_sentence(cite), "**References**", cite.reference_list()]) + "\n"


def _band(strategy) -> str:
    hp, lp = strategy.high_pass, strategy.low_pass
    if hp and lp:
        return f"a Butterworth band-pass filter of {hp:g}-{lp:g} Hz"
    if hp:
        return f"a Butterworth high-pass filter at {hp:g} Hz"
    if lp:
        return f"a Butterworth low-pass filter at {lp:g} Hz"
    return "no temporal filter"


def _denoising(cite: Citations, strategy, runs: pd.DataFrame | None) -> str:
    """Sentences on the cleaning of the runs under ``strategy`` (a cocaine.denoise.Strategy)."""
    desc = CONFOUND_SETS[strategy.confounds].rstrip(".")
    desc = desc[0].lower() + desc[1:]
    text = (
        f"Each run was cleaned with nilearn's `signal.clean` (linear detrending, {_band(strategy)}, confounds "
        f"filtered like the signals and regressed out after filtering {cite.p('lindquist2019')}, no "
        f"standardisation). The denoising strategy was `{strategy.confounds}`: {desc}"
    )
    if strategy.confounds != "none":
        text += ", read with nilearn's `load_confounds` together with fMRIPrep's cosine drift regressors"
    text += "."
    if strategy.global_signal:
        text += f" The global signal was regressed out as well {cite.p('murphy2017')}."
    if strategy.confounds in ("scrubbing", "conn"):
        text += (
            f" Censored volumes {cite.p('power2014')} were interpolated before filtering and removed before "
            f"regression, and a run with fewer than max(20, T/3) of its T volumes left was excluded."
        )
    if runs is not None and len(runs) and {"n_kept", "n_volumes"} <= set(runs.columns):
        text += (
            f" A median of {runs['n_kept'].median():g} of {runs['n_volumes'].median():g} volumes per run "
            f"entered the analysis (range {runs['n_kept'].min():g}-{runs['n_kept'].max():g})."
        )
    return text


def _cluster_inference(cite: Citations, cluster_forming_p, n_permutations, alpha) -> str:
    return (
        f"Family-wise error was controlled at the cluster level by permutation {cite.p('nichols2002', 'winkler2014')}: "
        f"a cluster-forming threshold of one-tailed p < {cluster_forming_p:g} per sign, face-connected clusters "
        f"of each sign, and the null distribution of the largest cluster of either sign over "
        f"{n_permutations:d} permutations; clusters with an FWE-corrected p < {alpha:g} are reported"
    )


def _roi(name: str) -> str:
    """An ROI as the atlas module defines it, e.g. "dorsolateral prefrontal cortex (...), 10 mm spheres at ..."."""
    spec = ROIS[name]
    text = spec.description[0].lower() + spec.description[1:]
    return text + (f", probability of at least {spec.min_probability:g} %" if spec.atlas_labels else "")


def _seed_sentence(cite: Citations) -> str:
    return f"The seed was the {_roi('nacc')} {cite.p('desikan2006', 'makris2006', 'frazier2005', 'goldstein2007')}"


def _ci(alpha: float) -> str:
    return f"{100 * (1 - alpha):g} %"


# ----------------------------------------------------------------------------- the chapters


def seed_connectivity(
    chosen,
    smoothing_fwhm: float,
    cluster_forming_p: float,
    n_permutations: int,
    alpha: float,
    *,
    study,
    truth: dict | None,
    runs: pd.DataFrame,
    participants: pd.DataFrame,
    exclusions: pd.DataFrame,
    sessions: str = "both",
    comparison_strategies=(),
    bib: str | Path = DEFAULT_BIB,
) -> str:
    """Methods of the seed-connectivity chapter (``nacc_seed_fc``).

    Parameters
    ----------
    chosen : cocaine.denoise.Strategy
        The denoising strategy of the seed maps.
    smoothing_fwhm, cluster_forming_p, n_permutations, alpha
        The notebook's parameters of the group tests.
    study : cocaine.layout.Study
    truth : dict or None
        The planted truth (None for one's own data).
    runs : pandas.DataFrame
        The analysed runs (``first.runs``: one row per run, with ``n_kept`` and ``n_volumes``).
    participants : pandas.DataFrame
        The participants of the group maps (``diff_table``: ``participant_id, group, n_sessions``).
    exclusions : pandas.DataFrame
        Every exclusion of the chapter (``all_exclusions``).
    sessions : {"both", "placebo", "NAC"}
    comparison_strategies : sequence of Strategy
        The strategies whose ROI couplings are shown for comparison.
    bib : path
        The bibliography.

    Returns
    -------
    markdown : str
    """
    cite = Citations(bib)
    n_sessions = int(participants["n_sessions"].sum()) if "n_sessions" in participants else None
    averaged = (
        "averaged over each participant's sessions with both states"
        if sessions == "both"
        else f"taken from the {sessions} session only"
    )
    first = (
        f"{data_sentence(cite, study.bids_dir, truth, study.fmriprep_dir)} Seed connectivity was computed with "
        f"craving_circuits {__version__} and nilearn {cite.p('abraham2014')} from "
        f"{_count(len(runs), 'run')} (neutral and craving states) of {_groups(runs, ['CUD', 'control'])}. "
        f"{_denoising(cite, chosen, runs)} {_seed_sentence(cite)}; each voxel's value was the Fisher z of its "
        f"Pearson correlation with the seed's mean time series. ROI couplings were the Fisher z between the mean "
        f"time series of the seed and of two target ROIs: the {_roi('dlpfc')}; and the {_roi('thalamus_midline')}."
    )
    if len(comparison_strategies):
        names = ", ".join(f"`{s.confounds}{'+gsr' if s.global_signal else ''}`" for s in comparison_strategies)
        noun = "strategy" if len(comparison_strategies) == 1 else "strategies"
        first += f" The ROI couplings were also computed under the {noun} {names} for comparison."
    second = (
        f"Each participant's craving - neutral difference of the seed maps was {averaged} "
        f"({_groups(participants, ['CUD', 'control'])}"
        + (f", {_count(n_sessions, 'session')}" if n_sessions is not None else "")
        + f"), smoothed with a {smoothing_fwhm:g} mm FWHM Gaussian kernel, and tested with a one-sample t test "
        f"within each group (sign flipping) and with Welch's t between the groups (sign flipping of the "
        f"residuals within each group's variance group; {cite.p('winkler2014')[1:-1]}). "
        f"{_cluster_inference(cite, cluster_forming_p, n_permutations, alpha)}. At the ROI level, each "
        f"participant's mean craving - neutral change was tested against zero with a one-sample t test within "
        f"each group and compared between groups with Welch's t test ({_ci(alpha)} confidence intervals, "
        f"alpha = {alpha:g}). {exclusion_sentence(exclusions)}"
    )
    return _assemble(cite, [first, second])


def thalamus_glutamate(
    chosen,
    metabolite: str,
    scale: str,
    change: str,
    max_crlb: float | None,
    max_fwhm_hz: float | None,
    min_snr: float | None,
    n_bootstrap: int,
    smoothing_fwhm: float,
    cluster_forming_p: float,
    n_permutations: int,
    sesoi_r: float,
    alpha: float,
    *,
    study,
    truth: dict | None,
    mrs_table: pd.DataFrame,
    qc_exclusions: pd.DataFrame,
    glu_exclusions: pd.DataFrame,
    changes: pd.DataFrame,
    change_exclusions: pd.DataFrame,
    sessions: str = "both",
    bib: str | Path = DEFAULT_BIB,
) -> str:
    """Methods of the glutamate chapter (``thalamus_glutamate``).

    Parameters
    ----------
    chosen : cocaine.denoise.Strategy
    metabolite, scale, change, max_crlb, max_fwhm_hz, min_snr
        The spectra's quality limits and the change score (None: no limit).
    n_bootstrap, smoothing_fwhm, cluster_forming_p, n_permutations, sesoi_r, alpha
        The statistics' parameters.
    study, truth
        As in :func:`seed_connectivity`.
    mrs_table : pandas.DataFrame
        All spectra (``mrs.read_mrs``).
    qc_exclusions : pandas.DataFrame
        One row per failed criterion (``mrs.quality_control``).
    glu_exclusions : pandas.DataFrame
        Sessions without a glutamate change (``mrs.session_changes``).
    changes : pandas.DataFrame
        One row per participant (``glutamate.participant_changes``: ``participant_id, group``).
    change_exclusions : pandas.DataFrame
        Participants left out (``participant_id, reason``), with the covariate
        test's and predictor models' if combined.
    sessions : {"both", "placebo", "NAC"}
    bib : path
    """
    cite = Citations(bib)
    spectra = mrs_table.drop_duplicates(["participant_id", "session_id", "state"])
    failed = (
        qc_exclusions.drop_duplicates(["participant_id", "session_id", "state"])
        if len(qc_exclusions)
        else qc_exclusions
    )
    limits = [
        f"a CRLB above {max_crlb:g} %" if max_crlb is not None else None,
        f"a linewidth above {max_fwhm_hz:g} Hz" if max_fwhm_hz is not None else None,
        f"an SNR below {min_snr:g}" if min_snr is not None else None,
    ]
    limits = [x for x in limits if x]
    qc = "Spectra with a missing or non-positive value or an invalid CRLB" + (
        f", or with {' or '.join(limits)}," if limits else ""
    )
    by_criterion = (
        qc_exclusions["criterion"].value_counts().sort_index() if len(qc_exclusions) else pd.Series(dtype=int)
    )
    counts = "; ".join(f"{criterion}: {n}" for criterion, n in by_criterion.items())
    unit_change = (
        "percent change from the neutral state" if change == "delta_pct" else "difference from the neutral state"
    )
    scale_text = "water-scaled" if scale == "value_water" else "tCr-scaled"
    averaged = "averaged over the sessions with both changes" if sessions == "both" else f"of the {sessions} session"
    first = (
        f"{data_sentence(cite, study.bids_dir, truth, study.fmriprep_dir)} {qc} were excluded "
        f"{cite.p('wilson2019', 'lin2021')}: of {_count(len(spectra), 'spectrum')}, "
        f"{len(failed)} failed at least one criterion"
        + (f" ({counts}; a spectrum can fail several)" if counts else "")
        + f". The {metabolite} change of a session was the {unit_change} of the {scale_text} value, and the "
        f"connectivity change the craving - neutral difference of the ROI couplings (strategy "
        f"`{chosen.confounds}{'+gsr' if chosen.global_signal else ''}`, {_band(chosen)}). Each participant's "
        f"changes were {averaged}. "
        f"{exclusion_sentence(glu_exclusions, unit='session', where=' from the change scores')} "
        f"{exclusion_sentence(change_exclusions, unit='participant', where=' from at least one analysis')} "
        f"The analyses used {_groups(changes, ['CUD', 'control'])}."
    )
    second = (
        f"The mean {metabolite} change in CUD was tested against zero with a one-sample t test. Couplings were "
        f"Pearson's and Spearman's correlations between the connectivity and {metabolite} changes, within CUD "
        f"and across groups, with t-based p-values and percentile bootstrap {_ci(alpha)} confidence intervals "
        f"({n_bootstrap:d} resamples of participants; {cite.p('efron1993')[1:-1]}). The thalamic and dlPFC "
        f"couplings were compared with Steiger's test for dependent correlations {cite.p('steiger1980')} and a "
        f"paired bootstrap interval. The absence of a coupling was tested with two one-sided tests on Fisher's z "
        f"against a smallest correlation of interest of r = {sesoi_r:g} {cite.p('schuirmann1987', 'lakens2017')}. "
        f"Robustness was checked with Huber's M-estimator {cite.p('huber1964')} and Cook's distances "
        f"{cite.p('cook1977')}. "
        f"Voxelwise, each CUD participant's craving - neutral seed map, smoothed with a {smoothing_fwhm:g} mm "
        f"FWHM Gaussian kernel, was regressed on the {metabolite} change, the slope tested by Freedman-Lane "
        f"permutation. {_cluster_inference(cite, cluster_forming_p, n_permutations, alpha)}. Obsessive thinking "
        f"(OCDUS) and log cocaine use were related to the connectivity changes by ordinary least squares on "
        f"z-scored variables, with Shapiro-Wilk {cite.p('shapiro1965')} and Breusch-Pagan "
        f"{cite.p('breusch1979', 'koenker1981')} residual diagnostics."
    )
    if max_crlb is not None:
        second += (
            f" Because a limit on the relative CRLB biases the kept values upwards {cite.p('kreis2016')}, the main "
            f"correlations were repeated without the CRLB limit and without any limit."
        )
    return _assemble(cite, [first, second])


def nac_null_effect(
    chosen,
    sesoi_dz: float,
    prior_scale: float,
    power: float,
    smoothing_fwhm: float,
    cluster_forming_p: float,
    n_permutations: int,
    alpha: float,
    *,
    study,
    truth: dict | None,
    double_differences: pd.DataFrame,
    rating_differences: pd.DataFrame,
    exclusions: pd.DataFrame,
    bib: str | Path = DEFAULT_BIB,
) -> str:
    """Methods of the NAC chapter (``nac_null_effect``).

    Parameters
    ----------
    chosen : cocaine.denoise.Strategy
    sesoi_dz, prior_scale, power
        The SESOI (standardised), the Cauchy prior scale of the Bayes factor
        and the power of the sensitivity analysis.
    smoothing_fwhm, cluster_forming_p, n_permutations, alpha
    study, truth
    double_differences : pandas.DataFrame
        ``fc_dd`` of ``drug.drug_differences`` (``participant_id, group, sequence``).
    rating_differences : pandas.DataFrame
        ``rating_dd``, the same for the craving ratings.
    exclusions : pandas.DataFrame
        The chapter's exclusions combined.
    bib : path
    """
    cite = Citations(bib)
    ci = f"{100 * (1 - 2 * alpha):g} %"
    first = (
        f"{data_sentence(cite, study.bids_dir, truth, study.fmriprep_dir)} The NAC effect was the double "
        f"difference of each participant's craving - neutral change, NAC session minus placebo session, of the "
        f"NAcc couplings (strategy `{chosen.confounds}{'+gsr' if chosen.global_signal else ''}`, {_band(chosen)}) "
        f"and of the craving ratings. The connectivity contrasts used {_groups(double_differences, ['CUD', 'control'])}"
        f" and the rating contrasts, analysed in CUD only, {_groups(rating_differences, ['CUD'])}. "
        f"{exclusion_sentence(exclusions)} Within each group the drug effect was the mean of the two sequence "
        f"groups' mean double differences, with a variance pooled within sequences and n - 2 degrees of freedom "
        f"(the two-period crossover analysis of {cite.t('hills1979')}); groups were compared with Welch's t. "
        f"Voxelwise, the double-difference seed maps were smoothed with a {smoothing_fwhm:g} mm FWHM Gaussian "
        f"kernel and tested within and between groups with the sequence codes as confounds. "
        f"{_cluster_inference(cite, cluster_forming_p, n_permutations, alpha)}."
    )
    second = (
        f"The absence of an effect was assessed three ways. Two one-sided tests "
        f"{cite.p('schuirmann1987', 'lakens2017')} "
        f"used equivalence bounds of ±{sesoi_dz:g} standard deviations of the double differences (equivalence "
        f"when the {ci} confidence interval lay within the bounds), combined with the two-sided test into the "
        f"verdicts of {cite.t('lakens2018')}. Default JZS Bayes factors {cite.p('rouder2009')} used a Cauchy prior "
        f"of scale r = {prior_scale:g} on the standardised effect, labelled after {cite.t('lee2013')}, with their "
        f"robustness to the prior scale shown. The sensitivity analysis gave the smallest standardised effect "
        f"detectable with {100 * power:g} % power at alpha = {alpha:g} {cite.p('cohen1988')}."
    )
    return _assemble(cite, [first, second])


def _baclofen_data(cite: Citations, root, truth) -> str:
    return data_sentence(cite, root, truth)


def baclofen_cbf(
    constants,
    smoothing_fwhm: float,
    global_covariate: bool,
    cluster_forming_p: float,
    n_permutations: int,
    alpha: float,
    *,
    root,
    truth: dict | None,
    runs: pd.DataFrame,
    participants: pd.DataFrame,
    exclusions: pd.DataFrame,
    sessions=("ses-T1", "ses-T2"),
    bib: str | Path = DEFAULT_BIB,
) -> str:
    """Methods of the CBF chapter (``baclofen_cbf``).

    Parameters
    ----------
    constants : baclofen.asl.AslConstants or None
        The quantification constants (``asl.read_asl_constants``); None for
        maps quantified by ASLPrep (``aslprep_dir``).
    smoothing_fwhm, global_covariate, cluster_forming_p, n_permutations, alpha
    root : path
        The BIDS dataset.
    truth : dict or None
    runs : pandas.DataFrame
        The quantified runs (``cbf.runs``: ``participant_id, group, session_id``).
    participants : pandas.DataFrame
        The participants of the group x time test (``table`` of ``perfusion.time_difference_maps``).
    exclusions : pandas.DataFrame
        The chapter's exclusions combined.
    sessions : (str, str)
    bib : path
    """
    cite = Citations(bib)
    c = constants
    first_ses, second_ses = sessions
    if c is None:  # ASLPrep's maps: quantified there, not here
        first = (
            f"{_baclofen_data(cite, root, truth)} The CBF maps of {_count(len(runs), 'pCASL run')} of "
            f"{_groups(runs, ['baclofen', 'placebo'])} were those quantified by ASLPrep; quantification was not "
            f"repeated. {exclusion_sentence(exclusions)}"
        )
    else:
        suppression = (
            f", reduced for {c.n_background_pulses} background-suppression pulses that each kept "
            f"{c.background_pulse_efficiency:g} of the label"
            if c.n_background_pulses
            else ""
        )
        first = (
            f"{_baclofen_data(cite, root, truth)} CBF was quantified from {_count(len(runs), 'pCASL run')} of "
            f"{_groups(runs, ['baclofen', 'placebo'])} with the single-compartment model of the ASL white paper "
            f"{cite.p('alsop2015')}: post-labelling delay {c.post_labeling_delay:g} s, labelling duration "
            f"{c.labeling_duration:g} s, labelling efficiency {c.labeling_efficiency:g}{suppression}, blood-brain "
            f"partition coefficient {c.blood_brain_partition:g} ml/g and blood T1 {c.t1_blood:g} s. "
            f"{exclusion_sentence(exclusions)}"
        )
    covariate = (
        ", with the change of mean grey-matter CBF as a covariate (Freedman-Lane permutation)"
        if global_covariate
        else ", without adjustment for global CBF"
    )
    other = "without" if global_covariate else "with"
    second = (
        f"Each participant's {second_ses} - {first_ses} CBF map ({_groups(participants, ['baclofen', 'placebo'])}) "
        f"was smoothed with a {smoothing_fwhm:g} mm FWHM Gaussian kernel, and the groups were compared voxelwise with "
        f"Welch's t (sign flipping within each group's variance group; {cite.p('winkler2014')[1:-1]}){covariate}. "
        f"{_cluster_inference(cite, cluster_forming_p, n_permutations, alpha)}. The mean {second_ses} - "
        f"{first_ses} change of an a-priori ROI, the {_roi('dlpfc_right')}, was tested with one-sample t tests "
        f"within each group and Welch's t test between groups"
        + (", after subtracting the change of mean grey-matter CBF" if global_covariate else "")
        + f"; the group difference in the change of global CBF was tested with Welch's t test, and the group x time "
        f"test was repeated {other} the global adjustment (alpha = {alpha:g})."
    )
    return _assemble(cite, [first, second])


def baclofen_mediation(
    confounds,
    high_pass: float,
    smoothing_fwhm: float,
    cluster_forming_p: float,
    n_permutations: int,
    n_bootstrap: int,
    alpha: float,
    *,
    root,
    truth: dict | None,
    runs: pd.DataFrame,
    participants: pd.DataFrame,
    mediation_table: pd.DataFrame,
    exclusions: pd.DataFrame,
    sessions=("ses-T1", "ses-T2"),
    bib: str | Path = DEFAULT_BIB,
) -> str:
    """Methods of the cue-reactivity and mediation chapter (``baclofen_mediation``).

    Parameters
    ----------
    confounds : sequence of str
        The ``load_confounds`` strategy of the first level.
    high_pass, smoothing_fwhm, cluster_forming_p, n_permutations, n_bootstrap, alpha
    root, truth
    runs : pandas.DataFrame
        The cue-task runs with a first-level map (``first.runs``).
    participants : pandas.DataFrame
        The participants of the T2 - T1 cue maps (``cue_table``).
    mediation_table : pandas.DataFrame
        The participants of the mediation models (``med_table``).
    exclusions : pandas.DataFrame
        The chapter's exclusions combined.
    sessions : (str, str)
    bib : path
    """
    cite = Citations(bib)
    first_ses, second_ses = sessions
    confound_text = " and ".join(f"`{c}`" for c in confounds) if len(confounds) else "none"
    first = (
        f"{_baclofen_data(cite, root, truth)} Each of {_count(len(runs), 'smoking-cue task run')} "
        f"({_groups(runs, ['baclofen', 'placebo'])}) was fitted with a first-level GLM "
        f"{cite.p('abraham2014')}: the canonical Glover HRF, cosine drift regressors up to {high_pass:g} Hz, "
        f"AR(1) noise and the fMRIPrep confounds of nilearn's `load_confounds` strategy {confound_text}; the "
        f"smoking - neutral contrast was expressed in percent signal change. {exclusion_sentence(exclusions)}"
    )
    second = (
        f"Each participant's {second_ses} - {first_ses} cue map "
        f"({_groups(participants, ['baclofen', 'placebo'])}) was smoothed with a {smoothing_fwhm:g} mm FWHM "
        f"Gaussian kernel and regressed voxelwise on the participant's {second_ses} - {first_ses} change of right "
        f"dlPFC CBF, with group as a nuisance regressor (Freedman-Lane permutation). "
        f"{_cluster_inference(cite, cluster_forming_p, n_permutations, alpha)}. In two ROIs, the "
        f"{_roi('insula_anterior_ventral')}; and the {_roi('vmpfc')}; the association was the partial correlation "
        f"adjusted for group, with a bootstrap interval ({n_bootstrap:d} resamples). The change of cue-induced "
        f"craving was tested within groups with one-sample t tests and between groups with Welch's t test. "
        f"Mediation of the treatment effect through the dlPFC CBF change was tested with two least-squares "
        f"regressions in {_groups(mediation_table, ['baclofen', 'placebo'])}; the indirect effect ab was judged "
        f"by its percentile bootstrap {_ci(alpha)} interval ({n_bootstrap:d} resamples of participants; "
        f"{cite.p('efron1993')[1:-1]}), and equals the average causal mediation effect under sequential "
        f"ignorability {cite.p('imai2010')}."
    )
    return _assemble(cite, [first, second])


def multiverse(
    specs,
    alpha: float,
    *,
    study,
    truth: dict | None,
    runs: pd.DataFrame,
    exclusions: pd.DataFrame,
    table: pd.DataFrame | None = None,
    bib: str | Path = DEFAULT_BIB,
) -> str:
    """Methods of the multiverse chapter (``multiverse``).

    Parameters
    ----------
    specs : sequence of cocaine.denoise.Strategy
        The specifications (``multiverse.specifications``).
    alpha : float
    study, truth
    runs : pandas.DataFrame
        The analysed runs (``first.runs``).
    exclusions : pandas.DataFrame
        The chapter's exclusions combined.
    table : pandas.DataFrame, optional
        The multiverse table (its terms are named).
    bib : path
    """
    cite = Citations(bib)
    sets = list(dict.fromkeys(s.confounds for s in specs))
    gsr = sorted({bool(s.global_signal) for s in specs})
    bands = list(dict.fromkeys((s.high_pass, s.low_pass) for s in specs))
    gsr_text = {(False,): "without global signal regression", (True,): "with global signal regression"}.get(
        tuple(gsr), "with and without global signal regression"
    )
    band_text = " and ".join(_band(type(specs[0])(high_pass=h, low_pass=lo)) for h, lo in bands) if specs else ""
    terms = ""
    if table is not None and len(table):
        pairs = table[["target", "term"]].drop_duplicates()
        terms = (
            f" ({len(pairs)} target-term pairs: "
            + "; ".join(f"{t}, {m}" for t, m in pairs.itertuples(index=False))
            + ")"
        )
    text = (
        f"{data_sentence(cite, study.bids_dir, truth, study.fmriprep_dir)} A multiverse analysis "
        f"{cite.p('steegen2016', 'simonsohn2020')} crossed {_count(len(sets), 'confound set')} "
        f"({', '.join(f'`{s}`' for s in sets)}) {gsr_text} and {band_text}: {_count(len(specs), 'specification')}. "
        f"Under each, the NAcc ROI couplings of {_count(len(runs), 'run')} of {_groups(runs, ['CUD', 'control'])} "
        f"were computed as in the seed analysis and the seed chapter's ROI tests repeated{terms}: one-sample t tests "
        f"of the craving - neutral change within groups and Welch's t test between groups, significant at alpha = "
        f"{alpha:g}. A conclusion was called robust when every specification reached it. "
        f"{exclusion_sentence(exclusions)}"
    )
    return _assemble(cite, [text])


def write_methods(output_dir: str | Path, markdown: str) -> str:
    """Write a chapter's methods text to ``<output_dir>/methods.md`` (atomically) and return the text.

    A notebook shows what it wrote: ``display(Markdown(write_methods(output_dir, seed_connectivity(...))))``.
    """
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    write_text(Path(output_dir) / "methods.md", markdown)
    return markdown
