"""Location embeddings at the layer's own scale on Meuse: the 'local' model against kriging and
the bundled global location model.

What an analyst does: embed the Meuse samples (resources/sample_data/meuse.gpkg, 155 points
over about 4 km) with `srl:embed_points` (model 'local', or the bundled global model), then
fit a ridge regression of log(zinc) on the emb_* fields (one random feature draw per layer:
the local rows are repeated for 5 draws, seeds 0-4, mean and sd). Scored by 5-fold CV, shuffled (seed 0)
and spatially blocked (srl_core.analysis.validation.fold_indices), R2 and RMSE, beside ordinary
kriging (pykrige, variogram fitted on each training set) on the same folds. The median pairwise
cosine of each embedding set says whether it tells the points apart at all.

The local features' length scales come from all points' coordinates (never the target), as an
analyst embedding a layer gets them.

Run:  .venv/bin/python benchmarks/bench_local_location.py   (needs benchmarks/requirements.txt)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import RidgeCV

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_interpolation import kriging  # noqa: E402

from srl_core.analysis.location_features import LocalFrame  # noqa: E402
from srl_core.analysis.validation import fold_indices, regression_metrics  # noqa: E402
from srl_core.embedding_format import embedding_fields_in  # noqa: E402
from srl_core.embedding_quality import spread  # noqa: E402
from srl_core.location import embed_points_file  # noqa: E402
from srl_core.location_scale import LocalLocationFeatures  # noqa: E402
from srl_core.vector.points import read_points  # noqa: E402

MEUSE = ROOT / "resources" / "sample_data" / "meuse.gpkg"
GLOBAL_MODEL = "satclip-style-bluemarble-sh20-basis10"


def embedded(model: str, folder: Path) -> np.ndarray:
    out = embed_points_file(str(MEUSE), str(folder / f"{model}.gpkg"), model)
    table = read_points(str(out))
    return np.column_stack([table.attributes[f] for f in embedding_fields_in(list(table.attributes))])


def ridge(features: np.ndarray):
    def fit_predict(xy, y, train, test):
        model = RidgeCV(alphas=np.logspace(-6, 4, 50))
        return model.fit(features[train], y[train]).predict(features[test]), None

    return fit_predict


def main() -> None:
    table = read_points(str(MEUSE))
    y = np.log(np.asarray(table.attributes["zinc"], np.float64))
    xy_m = LocalFrame(table.lonlat).to_metres(table.lonlat)
    with tempfile.TemporaryDirectory() as tmp:
        local = embedded("local", Path(tmp))
        bundled = embedded(GLOBAL_MODEL, Path(tmp))
    draws = [local] + [LocalLocationFeatures(table.lonlat, seed=s)(table.lonlat) for s in range(1, 5)]
    methods = {
        f"embed_points 'local' ({local.shape[1]}-d) + ridge": [ridge(d) for d in draws],
        f"embed_points '{GLOBAL_MODEL}' + ridge": [ridge(bundled)],
        "ordinary kriging (spherical)": [kriging("spherical")],
        "ordinary kriging (exponential)": [kriging("exponential")],
    }
    for name, emb in (("local", local), (GLOBAL_MODEL, bundled)):
        print(f"{name}: {spread(emb).describe()}")
    print(f"\nlog(zinc), Meuse, {len(y)} points; 5-fold CV (seed 0); mean (sd) over feature draws")
    print(f"{'method':52s} {'scheme':8s} {'R2':>13s} {'RMSE':>13s}")
    for scheme in ("random", "spatial"):
        folds = fold_indices(xy_m, scheme, 5, 0)
        for name, variants in methods.items():
            scores = []
            for fit_predict in variants:
                pred = np.empty_like(y)
                for train, test in folds:
                    pred[test] = fit_predict(xy_m, y, train, test)[0]
                scores.append(regression_metrics(y, pred))
            r2, rmse = (np.array([s[k] for s in scores]) for k in ("R2", "RMSE"))
            print(f"{name:52s} {scheme:8s} {r2.mean():7.3f} ({r2.std():.2f}) "
                  f"{rmse.mean():7.3f} ({rmse.std():.2f})")


if __name__ == "__main__":
    main()
