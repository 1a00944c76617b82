"""Tracer kinetics of arterial spin labelling: the signal the simulated pCASL images are made of.

The simulator does not generate the label/control difference with the model
the analysis quantifies with (the white paper's single-compartment equation,
:func:`craving_circuits.baclofen.asl.quantify_cbf`), but with the general
kinetic model of Buxton et al. (1998, *Magn Reson Med* 40:383-396) for
continuous (and pseudo-continuous) labelling. For a readout at time
``t = τ + w`` after the start of labelling (``τ`` the labelling duration,
``w`` the post-labelling delay), arterial transit time ``Δt``, flow ``f``
(ml/g/s, i.e. CBF / 6000) and apparent tissue relaxation
``1/T1' = 1/T1 + f/λ``:

.. math::

    \\Delta M(t) = \\begin{cases}
    0 & t < \\Delta t \\\\
    2\\,\\alpha\\,M_{0b}\\,f\\,T_1'\\,e^{-\\Delta t/T_{1b}}\\,(1 - e^{-(t - \\Delta t)/T_1'})
      & \\Delta t \\le t < \\Delta t + \\tau \\\\
    2\\,\\alpha\\,M_{0b}\\,f\\,T_1'\\,e^{-\\Delta t/T_{1b}}\\,e^{-(t - \\tau - \\Delta t)/T_1'}\\,(1 - e^{-\\tau/T_1'})
      & t \\ge \\Delta t + \\tau
    \\end{cases}

with ``α`` the labelling efficiency, ``M0b`` the equilibrium magnetisation of
arterial blood (``M0 / λ`` of the tissue) and ``T1b`` the T1 of blood, which
the label decays with while in transit. The label enters tissue on arrival and
relaxes with ``T1'`` from then on (instantaneous exchange, a well-mixed
compartment, plug flow with a sharp bolus).

The white paper's equation is the special case ``Δt = 0`` and ``T1' = T1b``
(the label is assumed to stay in blood): tissue relaxing faster than blood,
transit times and their spread over the brain, and transit times beyond the
post-labelling delay (the bolus has not fully arrived at readout) are what it
leaves out, and what gives the white paper's CBF its bias on data made by this
model.

Data conventions
----------------
Every argument broadcasts with every other (NumPy rules): scalars, or arrays
over voxels ``(n_voxels,)``, or any shapes that broadcast. Times are in
seconds, CBF in ml/100 g/min, ``λ`` in ml/g.
"""

from __future__ import annotations

import numpy as np

__all__ = ["buxton_pcasl_difference", "apparent_t1"]


def apparent_t1(t1_tissue, cbf, partition: float = 0.9) -> np.ndarray:
    """Apparent tissue T1 with flow, ``1/T1' = 1/T1 + f/λ`` (s).

    Parameters
    ----------
    t1_tissue : array_like
        T1 of the tissue (s).
    cbf : array_like
        CBF (ml/100 g/min); ``f = cbf / 6000`` ml/g/s.
    partition : float
        Blood-brain partition coefficient λ (ml/g).

    Returns
    -------
    t1_app : ndarray, the broadcast shape of the inputs
    """
    t1 = np.asarray(t1_tissue, dtype=float)
    if not (np.isfinite(t1).all() and (t1 > 0).all()):
        raise ValueError("t1_tissue must be positive and finite.")
    if not (np.isfinite(partition) and partition > 0):
        raise ValueError(f"partition must be a positive number, got {partition!r}.")
    return 1.0 / (1.0 / t1 + np.asarray(cbf, dtype=float) / 6000.0 / partition)


def buxton_pcasl_difference(
    cbf,
    arrival_time,
    post_labeling_delay,
    labeling_duration,
    *,
    t1_tissue,
    t1_blood: float = 1.65,
    efficiency=0.85,
    m0_blood=1.0,
    partition: float = 0.9,
) -> np.ndarray:
    """Control - label difference of pCASL by Buxton's general kinetic model (see the module docstring).

    Parameters
    ----------
    cbf : array_like
        Tissue CBF (ml/100 g/min): the flow that carries the label and that
        shortens the tissue T1.
    arrival_time : array_like
        Arterial transit time Δt (s), at least 0.
    post_labeling_delay : array_like
        Post-labelling delay w (s), at least 0; the readout is at ``τ + w``.
    labeling_duration : array_like
        Labelling duration τ (s), positive.
    t1_tissue : array_like
        T1 of the tissue (s); flow makes it ``T1'`` (:func:`apparent_t1`).
    t1_blood : float
        T1 of arterial blood (s); the label decays with it during transit.
    efficiency : array_like
        Labelling efficiency α in (0, 1] (with any loss to background suppression).
    m0_blood : array_like
        Equilibrium magnetisation of arterial blood (the tissue's M0 divided by
        its partition coefficient), in the units of the result.
    partition : float
        Blood-brain partition coefficient λ (ml/g) of ``1/T1' = 1/T1 + f/λ``.

    Returns
    -------
    delta_m : ndarray, the broadcast shape of the inputs
        Control - label, in the units of ``m0_blood``. Zero while the bolus has
        not arrived (``Δt >= τ + w``); below the white paper's value once
        ``Δt > w`` (the bolus has not fully arrived at readout), falling to zero
        as ``Δt`` grows to ``τ + w``.

    Raises
    ------
    ValueError
        If a time is negative (a duration not positive), T1 not positive, or
        the efficiency outside (0, 1].
    """
    att = np.asarray(arrival_time, dtype=float)
    pld = np.asarray(post_labeling_delay, dtype=float)
    tau = np.asarray(labeling_duration, dtype=float)
    alpha = np.asarray(efficiency, dtype=float)
    for name, value, low in (("arrival_time", att, 0.0), ("post_labeling_delay", pld, 0.0)):
        if not (np.isfinite(value).all() and (value >= low).all()):
            raise ValueError(f"{name} must be finite and at least {low} s.")
    if not (np.isfinite(tau).all() and (tau > 0).all()):
        raise ValueError("labeling_duration must be positive and finite.")
    if not (np.isfinite(t1_blood) and t1_blood > 0):
        raise ValueError(f"t1_blood must be a positive number, got {t1_blood!r}.")
    if not ((alpha > 0).all() and (alpha <= 1).all()):
        raise ValueError("efficiency must be in (0, 1].")
    f = np.asarray(cbf, dtype=float) / 6000.0
    t1_app = apparent_t1(t1_tissue, cbf, partition)
    scale = 2.0 * alpha * np.asarray(m0_blood, dtype=float) * f * t1_app * np.exp(-att / t1_blood)
    t = tau + pld
    # Δt <= w: the whole bolus has arrived and relaxes in tissue for t - τ - Δt = w - Δt
    arrived = np.exp(-np.maximum(pld - att, 0.0) / t1_app) * (1.0 - np.exp(-tau / t1_app))
    # w < Δt < τ + w: the part of the bolus that arrived by the readout, t - Δt seconds of it
    arriving = 1.0 - np.exp(-np.maximum(t - att, 0.0) / t1_app)
    return scale * np.where(att <= pld, arrived, arriving)
