"""Clinical covariates and spirometry generated from the imaging latents.

Generative model (documented in ``docs/synthetic_cohort.md``; coefficients in
:data:`MODEL` and written to ``cohort.json``). For subject *i* with emphysema
fraction :math:`f` (0-1), subtype weight :math:`w_s`, airway wall thickness
:math:`t` (mm) and age :math:`a` (years):

.. math::

    \\mathrm{FEV_1\\%pred} &= \\mathrm{clip}\\big(\\beta_0 - \\beta_E w_s \\cdot 100 f
        - \\beta_W (t - 1) + \\varepsilon_1,\\ 12, 130\\big),
        \\quad \\varepsilon_1 \\sim N(0, \\sigma_1^2)

    \\mathrm{FEV_1/FVC} &= \\mathrm{clip}\\big(\\gamma_0 - \\gamma_A (a - 60) - \\gamma_E r_s f
        - \\gamma_W (t - 1) + \\varepsilon_2,\\ 0.25, 0.95\\big)

    \\Delta\\mathrm{FEV_1} &= \\delta_0 + \\delta_E w_s \\cdot 100 f + \\delta_W (t - 1)
        + \\delta_P \\cdot \\mathrm{pack\\text{-}years} + \\varepsilon_3 \\quad (\\mathrm{mL/year})

GOLD (spirometric): FEV1/FVC < 0.7 and FEV1 %pred >= 80 -> 1, 50-80 -> 2,
30-50 -> 3, < 30 -> 4; FEV1/FVC >= 0.7 -> 0, with PRISm when FEV1 %pred < 80.
Predicted FEV1/FVC in litres use the NHANES III equations (Hankinson et al.,
Am J Respir Crit Care Med 1999;159:179-187, Caucasian coefficients).
"""

from __future__ import annotations

from typing import Any

import numpy as np

MODEL: dict[str, Any] = {
    "fev1_pct_pred": {"beta0": 102.0, "beta_E_per_pct": 1.6, "beta_W_per_mm": 30.0, "sigma": 12.0,
                      "clip": [12.0, 130.0]},
    "fev1_fvc": {"gamma0": 0.79, "gamma_A_per_year": 0.002, "gamma_E": 0.95, "gamma_W_per_mm": 0.05,
                 "sigma": 0.035, "clip": [0.25, 0.95]},
    "fev1_decline_ml_per_year": {"delta0": 22.0, "delta_E_per_pct": 0.9, "delta_W_per_mm": 25.0,
                                 "delta_P_per_pack_year": 0.3, "sigma": 12.0},
    # subtype weight w_s on FEV1 (per % emphysema) and r_s on the ratio
    "subtype_weight_fev1": {"none": 1.0, "centrilobular": 1.0, "panlobular": 1.2, "paraseptal": 0.45,
                            "airway": 1.0},
    "subtype_weight_ratio": {"none": 1.0, "centrilobular": 1.0, "panlobular": 1.15, "paraseptal": 0.5,
                             "airway": 1.0},
}


def fev1_mean(f: np.ndarray, wall_mm: np.ndarray, subtype: np.ndarray) -> np.ndarray:
    """Noise-free FEV1 %pred given the imaging latents (before clipping)."""
    m = MODEL["fev1_pct_pred"]
    w = np.array([MODEL["subtype_weight_fev1"][s] for s in np.atleast_1d(subtype)])
    return m["beta0"] - m["beta_E_per_pct"] * w * 100.0 * np.asarray(f) - m["beta_W_per_mm"] * (np.asarray(wall_mm) - 1.0)


def ratio_mean(f: np.ndarray, wall_mm: np.ndarray, subtype: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Noise-free FEV1/FVC given latents and age."""
    m = MODEL["fev1_fvc"]
    r = np.array([MODEL["subtype_weight_ratio"][s] for s in np.atleast_1d(subtype)])
    return (m["gamma0"] - m["gamma_A_per_year"] * (np.asarray(age) - 60.0) - m["gamma_E"] * r * np.asarray(f)
            - m["gamma_W_per_mm"] * (np.asarray(wall_mm) - 1.0))


def gold_stage(fev1_pct: np.ndarray, ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(GOLD 0-4, PRISm flag) from FEV1 %pred and FEV1/FVC by the GOLD spirometric rules."""
    fev1_pct, ratio = np.asarray(fev1_pct, float), np.asarray(ratio, float)
    obstructed = ratio < 0.7
    gold = np.where(fev1_pct >= 80, 1, np.where(fev1_pct >= 50, 2, np.where(fev1_pct >= 30, 3, 4)))
    gold = np.where(obstructed, gold, 0).astype(int)
    prism = (~obstructed) & (fev1_pct < 80)
    return gold, prism


def predicted_fev1_fvc_l(age: np.ndarray, height_cm: np.ndarray, sex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NHANES III predicted FEV1 and FVC (litres), Caucasian adults (Hankinson 1999)."""
    a, h = np.asarray(age, float), np.asarray(height_cm, float)
    male = np.asarray(sex) == "M"
    fev1 = np.where(male, 0.5536 - 0.01303 * a - 0.000172 * a ** 2 + 0.00014098 * h ** 2,
                    0.4333 - 0.00361 * a - 0.000194 * a ** 2 + 0.00011496 * h ** 2)
    fvc = np.where(male, -0.1933 + 0.00064 * a - 0.000269 * a ** 2 + 0.00018642 * h ** 2,
                   -0.3560 + 0.01870 * a - 0.000382 * a ** 2 + 0.00014815 * h ** 2)
    return fev1, fvc


def simulate_clinical(rng: np.random.Generator, *, f: np.ndarray, wall_mm: np.ndarray,
                      subtype: np.ndarray) -> dict[str, np.ndarray]:
    """Demographics, smoking and spirometry for subjects with the given latents."""
    n = len(f)
    f, wall_mm = np.asarray(f, float), np.asarray(wall_mm, float)
    sev = np.clip(2.5 * f + 0.5 * (wall_mm - 1.0), 0.0, 1.5)
    age = np.clip(rng.normal(58.0, 7.0, n) + 12.0 * sev, 40.0, 85.0).round().astype(int)
    sex = np.where(rng.random(n) < 0.5, "M", "F")
    height = np.where(sex == "M", rng.normal(176.0, 7.0, n), rng.normal(163.0, 6.5, n)).round(1)
    smoker = (rng.random(n) < 0.75) | (sev > 0.1)
    pack_years = np.where(smoker, np.round(10.0 + 45.0 * sev + rng.gamma(2.0, 9.0, n), 1), 0.0)
    m1, m2, m3 = MODEL["fev1_pct_pred"], MODEL["fev1_fvc"], MODEL["fev1_decline_ml_per_year"]
    fev1 = np.clip(fev1_mean(f, wall_mm, subtype) + rng.normal(0, m1["sigma"], n), *m1["clip"])
    ratio = np.clip(ratio_mean(f, wall_mm, subtype, age) + rng.normal(0, m2["sigma"], n), *m2["clip"])
    w = np.array([MODEL["subtype_weight_fev1"][s] for s in subtype])
    decline = (m3["delta0"] + m3["delta_E_per_pct"] * w * 100.0 * f + m3["delta_W_per_mm"] * (wall_mm - 1.0)
               + m3["delta_P_per_pack_year"] * pack_years + rng.normal(0, m3["sigma"], n))
    gold, prism = gold_stage(fev1, ratio)
    pred_fev1, _ = predicted_fev1_fvc_l(age, height, sex)
    fev1_l = fev1 / 100.0 * pred_fev1
    return {
        "age_years": age, "sex": sex, "height_cm": height, "pack_years": pack_years,
        "fev1_pct_pred": np.round(fev1, 1), "fev1_fvc": np.round(ratio, 3),
        "fev1_l": np.round(fev1_l, 2), "fvc_l": np.round(fev1_l / ratio, 2),
        "gold_stage": gold, "prism": prism, "fev1_decline_ml_per_year": np.round(decline, 1),
    }


def oracle_r2(fev1_pct: np.ndarray, f: np.ndarray, wall_mm: np.ndarray, subtype: np.ndarray) -> float:
    """Fraction of FEV1 %pred variance explained by its conditional mean given the imaging latents.

    .. math:: R^2_{oracle} = 1 - \\frac{\\sum_i (y_i - \\mathrm{clip}(\\mu(f_i, t_i, s_i)))^2}{\\sum_i (y_i - \\bar y)^2}
    """
    y = np.asarray(fev1_pct, float)
    mu = np.clip(fev1_mean(f, wall_mm, subtype), *MODEL["fev1_pct_pred"]["clip"])
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - mu) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
