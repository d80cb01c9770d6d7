"""Real spherical harmonics as a location encoding (SatCLIP; Russwurm et al., ICLR 2024).

Formula. For degree l = 0..L-1 and order m = -l..l, with SatCLIP's angles

    phi = radians(lon + 180),   theta = radians(lat + 90),   x = cos(theta),  s = sin(theta) >= 0,

    Y_l^m  = sqrt(2) * Pbar_l^|m|(x) * cos(m phi)      m > 0
    Y_l^m  = sqrt(2) * Pbar_l^|m|(x) * sin(|m| phi)    m < 0
    Y_l^0  = k * Pbar_l^0(x)

where Pbar_l^m = sqrt((2l+1)/(4 pi) (l-m)!/(l+m)!) P_l^m is the orthonormal associated Legendre
function *without* the Condon-Shortley phase. Columns are ordered l = 0..L-1, and within a degree
m = -l..l, giving L*L features, exactly as SatCLIP's ``SphericalHarmonics`` (analytic) orders them.

Normalisation. ``"orthonormal"`` uses k = 1: the functions are orthonormal on the sphere.
``"satclip"`` reproduces the published SatCLIP code (``spherical_harmonics_ylm.py`` generated
2023-07-26 with sympy), whose m = 0 terms carry sqrt((2l+1)/4 * pi) instead of sqrt((2l+1)/(4 pi)),
i.e. k = pi. Published SatCLIP checkpoints were trained with it, so importing them needs it.
``"satclip_closed_form"`` reproduces SatCLIP's optional ``closed-form`` calculation: k = 1 and
the Condon-Shortley phase (-1)^m on the m != 0 terms.

Numerics. The textbook recurrence starts from the double factorial (2m-1)!!, which overflows
float32 near m = 30. Here the *normalised* functions are built directly (Holmes & Featherstone,
J. Geodesy 2002):

    Pbar_0^0 = 1/sqrt(4 pi)
    Pbar_m^m = sqrt((2m+1)/(2m)) * s * Pbar_{m-1}^{m-1}
    Pbar_{m+1}^m = sqrt(2m+3) * x * Pbar_m^m
    Pbar_l^m = a_lm (x Pbar_{l-1}^m - b_lm Pbar_{l-2}^m),
        a_lm = sqrt((4l^2-1)/(l^2-m^2)),  b_lm = sqrt(((l-1)^2-m^2)/(4(l-1)^2-1))

Every intermediate stays O(sqrt(l)): nothing overflows in float32 at L = 40 or in float64 at
L = 100+. The loop runs over degrees (L steps, all orders at once), not over (l, m) pairs.
The angles and cos(m phi), sin(m phi) are evaluated in float64 and rounded once, because an
error in phi is multiplied by m. The recurrence itself also runs in float64 by default
(``compute_dtype``) even for float32 output: near a pole float32 cannot resolve x = cos(theta)
(its spacing 6e-8 times dP_l/dx ~ l^2/2 gives ~3e-4 error at L = 40), while the result rounded
once to float32 is within 1e-6 everywhere. ``compute_dtype="float32"`` trades that for speed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

NORMALISATIONS = ("satclip", "orthonormal", "satclip_closed_form")


def _recurrence_coefficients(degrees: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(a_lm, b_lm) for m = 0..l-2, for each l (empty for l < 2), in float64, on the CPU (see
    :mod:`srl_core.model_build`: never arithmetic on the meta device)."""
    coeffs = []
    for deg in range(degrees):
        m = torch.arange(max(deg - 1, 0), dtype=torch.float64, device="cpu")
        a = torch.sqrt((4.0 * deg * deg - 1.0) / (deg * deg - m * m)) if deg >= 2 else m
        b = torch.sqrt(((deg - 1.0) ** 2 - m * m) / (4.0 * (deg - 1.0) ** 2 - 1.0)) if deg >= 2 else m
        coeffs.append((a, b))
    return coeffs


def _check_normalisation(normalisation: str) -> float:
    """The factor k of the m = 0 terms for a normalisation name."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, not '{normalisation}'")
    return math.pi if normalisation == "satclip" else 1.0


def _phase(normalisation: str, degrees: int) -> torch.Tensor:
    """Per-order sign of the m != 0 terms: (-1)^m (Condon-Shortley) for SatCLIP's closed form, else 1;
    on the CPU, like :func:`_recurrence_coefficients`."""
    orders = torch.arange(1, degrees, dtype=torch.float64, device="cpu")
    if normalisation == "satclip_closed_form":
        return torch.where(orders % 2 == 1, -1.0, 1.0).to(torch.float64)
    return torch.ones_like(orders)


def _reversed_orders(degrees: int) -> torch.Tensor:
    """Row indices listing, degree by degree, the Legendre table's orders m = l..1 (descending)."""
    rows = [deg * (deg + 1) // 2 + m for deg in range(1, degrees) for m in range(deg, 0, -1)]
    return torch.tensor(rows, dtype=torch.long)


def legendre_table(x: torch.Tensor, s: torch.Tensor, degrees: int, coeffs=None) -> torch.Tensor:
    """Orthonormal associated Legendre functions Pbar_l^m(x) as an (L(L+1)/2, N) table.

    Row l(l+1)/2 + m holds Pbar_l^m; points run along the contiguous last axis so that every
    step of the recurrence updates whole rows in place. ``s`` must be sqrt(1 - x^2) >= 0, passed
    in so that it can be computed accurately near the poles.
    """
    coeffs = coeffs if coeffs is not None else _recurrence_coefficients(degrees)
    table = x.new_empty((degrees * (degrees + 1) // 2, x.shape[0]))
    table[0] = 1.0 / math.sqrt(4.0 * math.pi)
    for deg in range(1, degrees):
        row, prev, prev2 = deg * (deg + 1) // 2, (deg - 1) * deg // 2, (deg - 2) * (deg - 1) // 2
        top = table[prev + deg - 1]
        torch.mul(top, x, out=table[row + deg - 1]).mul_(math.sqrt(2.0 * deg + 1.0))
        torch.mul(top, s, out=table[row + deg]).mul_(math.sqrt((2.0 * deg + 1.0) / (2.0 * deg)))
        if deg >= 2:
            a, b = (c.to(device=x.device, dtype=x.dtype).unsqueeze(1) for c in coeffs[deg])
            body = table[row : row + deg - 1]
            torch.mul(table[prev : prev + deg - 1], x, out=body)
            body.addcmul_(table[prev2 : prev2 + deg - 1], b, value=-1.0).mul_(a)
    return table


class SphericalHarmonics(nn.Module):
    """(lon, lat) degrees (N, 2) -> L*L real spherical harmonics, in the input's dtype."""

    def __init__(
        self, legendre_polys: int = 10, normalisation: str = "satclip", compute_dtype: str = "float64"
    ) -> None:
        super().__init__()
        if not 1 <= int(legendre_polys) <= 200:
            raise ValueError(f"legendre_polys must be within 1..200, not {legendre_polys}")
        if compute_dtype not in ("float64", "float32"):
            raise ValueError(f"compute_dtype must be 'float64' or 'float32', not '{compute_dtype}'")
        self.legendre_polys = int(legendre_polys)
        self.normalisation = normalisation
        self.compute_dtype = compute_dtype
        self.embedding_dim = self.legendre_polys**2
        self._m0_factor = _check_normalisation(normalisation)
        self._coeffs = _recurrence_coefficients(self.legendre_polys)
        self.register_buffer("_reversed", _reversed_orders(self.legendre_polys), persistent=False)
        phase = math.sqrt(2.0) * _phase(normalisation, self.legendre_polys).unsqueeze(1)
        self.register_buffer("_phase", phase, persistent=False)

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        dtype = lonlat.dtype if lonlat.dtype in (torch.float32, torch.float64) else torch.float32
        degrees = self.legendre_polys
        lonlat64 = lonlat.to(torch.float64)
        phi = torch.deg2rad(lonlat64[:, 0] + 180.0)
        theta = torch.deg2rad(lonlat64[:, 1] + 90.0)
        work = torch.float64 if self.compute_dtype == "float64" else dtype
        table = legendre_table(
            torch.cos(theta).to(work), torch.sin(theta).clamp_min(0.0).to(work), degrees, self._coeffs
        ).to(dtype)
        # sqrt(2) cos(m phi) for m = 1..L-1, and sqrt(2) sin(m phi) for m = L-1..1 (descending).
        orders = torch.arange(1, degrees, dtype=torch.float64, device=lonlat.device).unsqueeze(1)
        cos_m = (self._phase * torch.cos(orders * phi)).to(dtype)
        sin_desc = (self._phase.flip(0) * torch.sin(orders.flip(0) * phi)).to(dtype)
        table_desc = table.index_select(0, self._reversed)
        out = table.new_empty((degrees * degrees, table.shape[1]))
        for deg in range(degrees):
            zero, row, desc = deg * deg + deg, deg * (deg + 1) // 2, (deg - 1) * deg // 2
            sin_part = sin_desc[degrees - 1 - deg :]
            torch.mul(table_desc[desc : desc + deg], sin_part, out=out[zero - deg : zero])
            torch.mul(table[row], self._m0_factor, out=out[zero])
            torch.mul(table[row + 1 : row + deg + 1], cos_m[:deg], out=out[zero + 1 : zero + deg + 1])
        return out.t()

    def extra_repr(self) -> str:
        return (
            f"legendre_polys={self.legendre_polys}, normalisation={self.normalisation!r}, "
            f"compute_dtype={self.compute_dtype!r}"
        )
