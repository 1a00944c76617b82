"""Study-agnostic statistics: permutation inference, cell-mean contrasts, maps, correlations, equivalence, mediation."""
