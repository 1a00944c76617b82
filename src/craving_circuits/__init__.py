"""craving_circuits: the analyses of a reproducible book on two addiction-neuroimaging studies.

Modules, one per stage:

* :mod:`craving_circuits.io.atlas` - ROIs from atlases shipped with installed packages;
* :mod:`craving_circuits.simulate` - simulated studies with planted ground truth;
* :mod:`craving_circuits.cocaine.layout` - finding and validating a study's BIDS/fMRIPrep files;
* :mod:`craving_circuits.cocaine.denoise` - confound strategies and signal cleaning;
* :mod:`craving_circuits.cocaine.connectivity` - seed-based connectivity of one run;
* :mod:`craving_circuits.cocaine.firstlevel` - mapping the per-run work over a study, with a cache;
* :mod:`craving_circuits.stats.permutation` - permutation inference with cluster-level FWE control;
* :mod:`craving_circuits.cocaine.secondlevel` - group maps and cluster tables;
* :mod:`craving_circuits.stats.models` - mixed models and tidy result tables;
* :mod:`craving_circuits.verdict.planted` - "recovered vs planted" tables and provenance;
* :mod:`craving_circuits.book.plotting` - figures of the notebooks.
"""

__version__ = "0.1.0"
