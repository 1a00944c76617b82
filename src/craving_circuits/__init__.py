"""craving_circuits: the analyses of a reproducible book on two addiction-neuroimaging studies.

The package is layered; a module imports only from its own layer or those
below it, the two studies never import each other, and the simulators import
from the analysis only what their docstrings name (``tests/test_layers.py``
enforces this). Bottom to top:

``io``
    Files and tables: atomic writing and reading (``files``), BIDS naming
    and ASL sidecar constants (``bids``), the columns of every tidy table
    (``schemas``), result tables (``tables``), atlases and masks (``atlas``),
    and the per-run mapper with its cache and exclusions (``runs``).
``stats``
    Study-agnostic statistics: permutation inference with cluster-level FWE
    (``permutation``, with variance groups), contrasts of cell means (Welch, the
    two-period crossover; ``contrasts``), maps over a
    mask (``voxelwise``), correlations and Steiger's test (``correlation``),
    equivalence tests and Bayes factors (``equivalence``), mediation
    (``mediation``).
``simulate``
    The simulated studies with planted ground truth, as images
    (``cocaine``, ``baclofen``) and at ROI level (``roi_level``).
``cocaine``
    The cocaine-craving study: layout, denoising, seed connectivity, first
    and second level, MRS and glutamate coupling, drug contrast, ratings,
    multiverse, and its chapters' ROI-level chains (``chapters``).
``baclofen``
    The baclofen study: layout, ASL quantification, perfusion, cue task, and
    its chapters' ROI-level chains (``chapters``).
``verdict``
    The planted truth and "recovered vs planted" tables (``planted``), the
    claims registry (``claims``), the claims ledger (``ledger``) and the
    Monte Carlo calibration of the claims' tests (``calibration``).
``book``
    Executing the run plan (``execute``), provenance (``provenance``), small
    page helpers (``pages``), figures (``plotting``) and the command line
    (``cli``).

The folders follow the parts of the book (``_toc.yml``): the cocaine study,
the baclofen study, the verdict; the book machinery serves the appendix.
"""

__version__ = "0.1.0"
