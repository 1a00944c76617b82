"""Study-agnostic statistics: permutation inference, mixed models, maps, correlations, equivalence, mediation."""
