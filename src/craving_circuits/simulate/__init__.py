"""Simulated studies with planted ground truth, written as BIDS + fMRIPrep-style derivatives."""

from craving_circuits.simulate.baclofen import (
    BACLOFEN_PRESETS,
    BaclofenStudyParams,
    baclofen_params,
    simulate_baclofen_study,
)
from craving_circuits.simulate.cocaine import PRESETS as COCAINE_PRESETS
from craving_circuits.simulate.cocaine import (
    CocaineStudyParams,
    cocaine_params,
    simulate_cocaine_study,
)

__all__ = [
    "COCAINE_PRESETS",
    "CocaineStudyParams",
    "cocaine_params",
    "simulate_cocaine_study",
    "BACLOFEN_PRESETS",
    "BaclofenStudyParams",
    "baclofen_params",
    "simulate_baclofen_study",
]
