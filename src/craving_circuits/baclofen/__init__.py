"""The baclofen study (Ketcherside et al., 2020): resting perfusion, smoking-cue reactivity, craving, mediation."""
