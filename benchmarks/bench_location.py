"""Location encoder speed and numerics, measured in one run.

    python benchmarks/bench_location.py [--points 20000] [--device cpu|cuda] [--threads 1]

Prints, on one machine and in one process:
1. points/second of every positional encoding at size L = 10 and L = 40 (L is the number of
   Legendre polynomials for spherical harmonics, the number of scales/octaves for the multi-scale,
   NeRF and DFS encodings, L*L/2 random features for RFF, L*L anchors for RBF, an L x L/2 grid for tile);
2. points/second of full encoders (SatCLIP-style SH + SIREN, GeoCLIP, Sphere2Vec + FCNet);
3. spherical harmonics at L = 40: srl_core's degree-vectorised normalised recurrence against a
   per-(l, m) loop implementation (each Y_lm from its own Legendre recurrence, as SatCLIP's
   closed form does), with the speed ratio (target >= 10x);
4. float32 accuracy at L = 40 against a float64 reference (the per-(l, m) loop in float64) over
   random points plus the poles and the antimeridian, for the default float64 recurrence and for a
   float32 recurrence, and the non-finite count of the textbook unnormalised recurrence in float32;
5. with ``--satclip-repo PATH`` (a clone of github.com/microsoft/satclip): SatCLIP's own spherical
   harmonics, its ``SH`` functions run by the loop of its ``SphericalHarmonics.forward``, against
   srl_core's at L = 10, 20 and 40 (float32, the same points): speed ratio and largest difference.
   Its closed form is always timed; its analytic form (a generated module of sympy expressions,
   ``spherical_harmonics_ylm.py``) where the clone has it. The modules are loaded from their files,
   so SatCLIP's training dependencies are not needed.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from srl_core.models.location import SphericalHarmonics, build_encoding, build_from_config  # noqa: E402


def encoding_config(name: str, size: int) -> dict:
    """The encoding ``name`` at size parameter L = ``size`` (see the module docstring)."""
    if name == "sphericalharmonics":
        return {"name": name, "legendre_polys": size}
    if name in ("grid", "theory", "spherec", "spherecplus", "spherem", "spheremplus", "dfs", "nerf"):
        return {"name": name, "frequency_num": size}
    if name == "rff":
        return {"name": name, "num_features": size * size // 2}
    if name == "rbf":
        return {"name": name, "num_anchors": size * size}
    if name == "tile":
        return {"name": name, "cells": [size, max(1, size // 2)]}
    if name == "geoclip":
        return {"name": name, "num_features": size * size // 6}
    return {"name": name}


ENCODINGS = (
    "direct", "wrap", "xyz", "tile", "rbf", "rff", "nerf", "grid", "theory",
    "spherec", "spherecplus", "spherem", "spheremplus", "dfs", "sphericalharmonics", "geoclip",
)
FULL = {
    "SatCLIP SH L=10 + SIREN(256x2)->256": {
        "encoding": {"name": "sphericalharmonics", "legendre_polys": 10},
        "network": {"name": "siren", "dim_hidden": 256, "num_layers": 2, "dim_out": 256},
    },
    "SatCLIP SH L=40 + SIREN(256x2)->256": {
        "encoding": {"name": "sphericalharmonics", "legendre_polys": 40},
        "network": {"name": "siren", "dim_hidden": 256, "num_layers": 2, "dim_out": 256},
    },
    "GeoCLIP equal-earth RFF x3 + branches->512": {
        "encoding": {"name": "geoclip"},
        "network": {"name": "geoclip_branches"},
    },
    "Sphere2Vec sphereC+ S=32 + FCNet(256)->256": {
        "encoding": {"name": "spherecplus", "frequency_num": 32},
        "network": {"name": "fcnet", "dim_hidden": 256, "dim_out": 256},
    },
}


def random_lonlat(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-180, 180, n)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    edges = np.array([[0, 90], [0, -90], [180, 0], [-180, 0], [180, 90], [-180, -90], [179.99999, 89.99999]])
    pole_lat = (90 - rng.uniform(0, 0.05, 200)) * rng.choice([1, -1], 200)
    near_pole = np.column_stack([rng.uniform(-180, 180, 200), pole_lat])
    return np.concatenate([edges, near_pole, np.column_stack([lon, lat])]).astype(np.float32)


def points_per_second(fn, x: torch.Tensor, device: torch.device, repeats: int = 3) -> float:
    best = math.inf
    with torch.inference_mode():
        fn(x[:16])
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return x.shape[0] / best


def loop_sh(lonlat: torch.Tensor, degrees: int, dtype=torch.float64) -> torch.Tensor:
    """Per-(l, m) reference: every Y_lm from its own unnormalised Legendre recurrence (SatCLIP analytic
    normalisation), evaluated in ``dtype``. O(L^3) vector operations; overflows float32 near L = 30."""
    lonlat = lonlat.to(dtype)
    phi = torch.deg2rad(lonlat[:, 0] + 180.0)
    x = torch.cos(torch.deg2rad(lonlat[:, 1] + 90.0))
    s = torch.sqrt((1.0 - x) * (1.0 + x)).clamp_min(0.0)
    columns = []
    for l in range(degrees):  # noqa: E741
        for m in range(-l, l + 1):
            am = abs(m)
            pmm = torch.ones_like(x)
            for k in range(1, am + 1):
                pmm = pmm * (2 * k - 1) * s
            if l == am:
                p = pmm
            else:
                p_prev, p = pmm, x * (2 * am + 1) * pmm
                for ll in range(am + 2, l + 1):
                    p_prev, p = p, ((2 * ll - 1) * x * p - (ll + am - 1) * p_prev) / (ll - am)
            ratio = math.exp(math.lgamma(l - am + 1) - math.lgamma(l + am + 1))
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * ratio)
            if m == 0:
                columns.append(math.pi * norm * p)
            elif m > 0:
                columns.append(math.sqrt(2) * norm * p * torch.cos(m * phi))
            else:
                columns.append(math.sqrt(2) * norm * p * torch.sin(am * phi))
    return torch.stack(columns, dim=1)


def load_satclip_sh(repo: Path) -> dict[str, Callable]:
    """SatCLIP's ``SH(m, l, phi, theta)`` functions by form, loaded from the clone's files."""
    folder = repo / "satclip" / "positional_encoding"
    forms = {}
    names = (("closed form", "spherical_harmonics_closed_form"), ("analytic", "spherical_harmonics_ylm"))
    for form, name in names:
        path = folder / f"{name}.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location(f"satclip_{name}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            forms[form] = module.SH
    if not forms:
        raise SystemExit(f"No SatCLIP spherical harmonics under {folder}: give a clone of microsoft/satclip.")
    return forms


def satclip_encode(sh: Callable, lonlat: torch.Tensor, degrees: int) -> torch.Tensor:
    """The loop of SatCLIP's ``SphericalHarmonics.forward``, with its angle conventions."""
    phi = torch.deg2rad(lonlat[:, 0] + 180)
    theta = torch.deg2rad(lonlat[:, 1] + 90)
    columns = []
    for l in range(degrees):  # noqa: E741
        for m in range(-l, l + 1):
            y = sh(m, l, phi, theta)
            columns.append(y * torch.ones_like(phi) if isinstance(y, float) else y)
    return torch.stack(columns, dim=-1)


def convention_factors(degrees: int, form: str) -> torch.Tensor:
    """Per-column factors taking SatCLIP's ``form`` to srl_core's default (its analytic convention):
    the closed form carries the Condon-Shortley phase (-1)^m and normalises m = 0 by sqrt((2l+1)/4pi),
    where the analytic form (and srl_core, to load SatCLIP checkpoints) has pi times that."""
    if form == "analytic":
        return torch.ones(degrees * degrees, dtype=torch.float64)
    orders = [m for degree in range(degrees) for m in range(-degree, degree + 1)]
    return torch.tensor([math.pi if m == 0 else (-1.0) ** m for m in orders], dtype=torch.float64)


def compare_with_satclip(repo: Path, x: torch.Tensor, device: torch.device) -> None:
    print("\n## SatCLIP's own spherical harmonics against srl_core's (float32, same points; errors against "
          "the float64 per-(l, m) loop in SatCLIP's analytic convention)")
    print(f"{'form':12s} {'L':>3s} {'SatCLIP pts/s':>14s} {'srl_core pts/s':>15s} {'speed-up':>9s} "
          f"{'SatCLIP max err':>16s} {'srl_core max err':>17s} {'max |Y|':>8s}")
    for form, sh in load_satclip_sh(repo).items():
        for degrees in (10, 20, 40):
            ours = SphericalHarmonics(degrees).to(device)
            theirs = points_per_second(lambda t, sh=sh, d=degrees: satclip_encode(sh, t, d), x, device,
                                       repeats=1)
            fast = points_per_second(ours, x, device)
            with torch.inference_mode():
                reference = loop_sh(x, degrees, torch.float64)
                mine = ours(x).double()
                other = satclip_encode(sh, x, degrees).double() * convention_factors(degrees, form).to(device)
            finite = torch.isfinite(other)
            error = float((other - reference).abs()[finite].max()) if finite.any() else float("nan")
            bad = int((~finite).sum())
            note = f" ({bad} non-finite values in SatCLIP's)" if bad else ""
            print(f"{form:12s} {degrees:3d} {theirs:14.0f} {fast:15.0f} {fast / theirs:8.1f}x {error:16.2e} "
                  f"{float((mine - reference).abs().max()):17.2e} {float(reference.abs().max()):8.2f}{note}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=20000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--satclip-repo", type=Path, help="A clone of microsoft/satclip to compare against.")
    parser.add_argument("--quick", action="store_true", help="2,000 points.")
    args = parser.parse_args()
    if args.quick:
        args.points = 2000
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    lonlat = random_lonlat(args.points)
    x = torch.from_numpy(lonlat).to(device)
    print(f"# torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, {len(x)} points")

    print("\n## Positional encodings (points/s)")
    print(f"{'encoding':20s} {'dim L=10':>9s} {'pts/s L=10':>12s} {'dim L=40':>9s} {'pts/s L=40':>12s}")
    for name in ENCODINGS:
        row = [f"{name:20s}"]
        for size in (10, 40):
            enc = build_encoding(encoding_config(name, size)).to(device)
            row.append(f"{enc.embedding_dim:9d} {points_per_second(enc, x, device):12.0f}")
        print(" ".join(row))

    print("\n## Full encoders (points/s, float32)")
    for label, config in FULL.items():
        torch.manual_seed(0)
        model = build_from_config(config).to(device).eval()
        print(f"{label:45s} {points_per_second(model, x, device):12.0f}")

    print("\n## Spherical harmonics L=40: vectorised recurrence vs per-(l, m) loop (float64)")
    sh64 = SphericalHarmonics(40).to(device)
    small = x[: min(len(x), 5000)]
    fast = points_per_second(lambda t: sh64(t.double()), small, device)
    slow = points_per_second(lambda t: loop_sh(t, 40), small, device, repeats=1)
    print(f"srl_core recurrence: {fast:12.0f} pts/s")
    print(f"per-(l,m) loop:      {slow:12.0f} pts/s")
    print(f"speed-up:            {fast / slow:12.1f}x  (target >= 10x)")

    print("\n## float32 accuracy at L=40 vs float64 reference (per-(l,m) loop in float64)")
    with torch.inference_mode():
        reference = loop_sh(small, 40, torch.float64)
        ours32 = SphericalHarmonics(40).to(device)(small)
        rec32 = SphericalHarmonics(40, compute_dtype="float32").to(device)(small)
        naive32 = loop_sh(small, 40, torch.float32)
        ours64 = sh64(small.double())
    def report(label: str, values: torch.Tensor, note: str = "") -> None:
        err = (values.double() - reference).abs().max().item()
        print(f"{label:46s} max abs err {err:.2e}, finite {bool(torch.isfinite(values).all())} {note}")

    report("default (float64 recurrence, float32 output)", ours32, "(target <= 1e-5)")
    report("float32 recurrence", rec32)
    report("float64 output", ours64)
    bad = int((~torch.isfinite(naive32)).sum())
    print(f"{'textbook unnormalised recurrence in float32':46s} {bad} non-finite values")
    with torch.inference_mode():
        big = SphericalHarmonics(100, normalisation="orthonormal").to(device)(small.double())
    print(f"float64 L=100: finite {bool(torch.isfinite(big).all())}, max |Y| {big.abs().max():.3f}")
    if args.satclip_repo:
        compare_with_satclip(args.satclip_repo, small, device)


if __name__ == "__main__":
    main()
