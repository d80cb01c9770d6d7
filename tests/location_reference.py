"""Independent float64 references for location encoder tests (published formulas, no srl_core code)."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln, lpmv


def published_sh(
    lonlat: np.ndarray, degrees: int, normalisation: str = "satclip", pairs: list | None = None
) -> np.ndarray:
    """SatCLIP's real harmonics from the published formula, float64, independent of our recurrence.

    SatCLIP (spherical_harmonics_generate_ylms.py): phi = rad(lon + 180), theta = rad(lat + 90),
    Y_lm = (-1)^m sqrt(2) Pbar_l^|m| cos(m phi) (m > 0), (-1)^m sqrt(2) Pbar_l^|m| sin(|m| phi)
    (m < 0) with sympy's P_l^m (Condon-Shortley phase included), and for m = 0
    sqrt((2l + 1) / 4 * pi) P_l -- the generated code's operator precedence, i.e. pi times the
    orthonormal factor. scipy's lpmv includes the same phase. ``pairs``: only these (l, m) columns.
    """
    phi = np.radians(lonlat[:, 0] + 180.0)
    x = np.cos(np.radians(lonlat[:, 1] + 90.0))
    cols = []
    wanted = pairs if pairs is not None else [(d, m) for d in range(degrees) for m in range(-d, d + 1)]
    for l, m in wanted:  # noqa: E741 - the conventional name of the degree
        am = abs(m)
        log_norm = np.log((2 * l + 1) / (4 * np.pi)) + gammaln(l - am + 1) - gammaln(l + am + 1)
        norm = np.exp(0.5 * log_norm)
        p = lpmv(am, l, x)
        if m == 0:
            k = math.sqrt((2 * l + 1) / 4 * math.pi) if normalisation == "satclip" else norm
            cols.append(k * p)
        elif m > 0:
            cols.append((-1) ** m * math.sqrt(2) * norm * p * np.cos(m * phi))
        else:
            cols.append((-1) ** m * math.sqrt(2) * norm * p * np.sin(am * phi))
    return np.stack(cols, axis=1)


def siren_reference(e: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]], w0_initial: float = 30.0):
    """SIREN (Sitzmann et al. 2020) as SatCLIP uses it: sin(30 (W x + b)), sin(W x + b)..., then W x + b."""
    h = e
    for i, (w, b) in enumerate(layers[:-1]):
        h = np.sin((w0_initial if i == 0 else 1.0) * (h @ w.T + b))
    w, b = layers[-1]
    return h @ w.T + b
