"""craving_circuits: the analyses of a reproducible book on two addiction-neuroimaging studies.

Modules, one per stage:

* :mod:`craving_circuits.atlas` - ROIs from atlases shipped with installed packages;
* :mod:`craving_circuits.simulate` - simulated studies with planted ground truth;
* :mod:`craving_circuits.layout` - finding and validating a study's BIDS/fMRIPrep files;
* :mod:`craving_circuits.denoise` - confound strategies and signal cleaning;
* :mod:`craving_circuits.connectivity` - seed-based connectivity of one run;
* :mod:`craving_circuits.pipeline` - mapping the per-run work over a study, with a cache;
* :mod:`craving_circuits.permutation` - permutation inference with cluster-level FWE control;
* :mod:`craving_circuits.secondlevel` - group maps and cluster tables;
* :mod:`craving_circuits.models` - mixed models and tidy result tables;
* :mod:`craving_circuits.report` - "recovered vs planted" tables and provenance;
* :mod:`craving_circuits.plotting` - figures of the notebooks.
"""

__version__ = "0.1.0"
