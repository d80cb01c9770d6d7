"""The embedding view: the first three principal components shown as red, green and blue.

Fit the PCA on a sample, then stretch each component between its 2nd and 98th
percentiles (on the same sample) to 1..255, so similar embeddings get similar colours
and one outlier does not wash the map out. Rasters get an alpha band for nodata; points
get a colour per feature.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from osgeo import gdal
from sklearn.decomposition import PCA

from ..atomic import guards_files
from ..embedding_products import RasterInput
from ..errors import InputError
from ..names import KIND_KEY, MODEL_ID_KEY, PCA_VARIANCE_KEY, VIEW_KIND
from ..progress import Progress, ensure_progress
from ..raster.blocks import BlockWriter, EmbeddingRasterReader
from ..vector.points import write_points
from ._common import as_embeddings, read_points_with_embeddings, subsample

STRETCH_PERCENTILES = (2.0, 98.0)


class EmbeddingRGB:
    """PCA to 3 components plus a percentile stretch to bytes; fit on a sample, apply anywhere."""

    def __init__(self, sample_size: int = 100_000, seed: int = 0) -> None:
        self.sample_size = sample_size
        self.seed = seed
        self._pca: Optional[PCA] = None
        self._lo = self._hi = None

    def fit(self, x: np.ndarray) -> EmbeddingRGB:
        x = subsample(as_embeddings(x), self.sample_size, self.seed)
        if len(x) < 3 or x.shape[1] < 3:
            raise InputError("The colour view needs at least 3 embeddings with at least 3 dimensions.")
        self._pca = PCA(n_components=3, random_state=self.seed).fit(x)
        proj = self._pca.transform(x)
        self._lo, self._hi = np.percentile(proj, STRETCH_PERCENTILES, axis=0)
        return self

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        return self._pca.explained_variance_ratio_

    def variance_text(self) -> str:
        """Share of variance of PC1, PC2, PC3 as "0.512, 0.201, 0.100" (as written in outputs)."""
        return ", ".join(f"{v:.3f}" for v in self.explained_variance_ratio)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Colours (N, 3) uint8 in 1..255 (0 is left for nodata)."""
        if self._pca is None:
            raise InputError("Fit the colour view first.")
        proj = self._pca.transform(np.asarray(x, np.float32))
        scaled = (proj - self._lo) / np.maximum(self._hi - self._lo, 1e-12)
        return (1 + np.clip(scaled, 0.0, 1.0) * 254).round().astype(np.uint8)


def fit_rgb_view_raster(
    raster: RasterInput, sample_size: int = 100_000, seed: int = 0, progress: Optional[Progress] = None
) -> EmbeddingRGB:
    """The colour view fitted on a random sample of an embedding raster's valid pixels."""
    with EmbeddingRasterReader(raster) as reader:
        return EmbeddingRGB(sample_size, seed).fit(reader.sample(sample_size, seed, progress))


@guards_files(outputs=["output"], inputs=["raster"])
def rgb_view_raster(
    raster: RasterInput,
    output: str,
    sample_size: int = 100_000,
    seed: int = 0,
    progress: Optional[Progress] = None,
    view: Optional[EmbeddingRGB] = None,
) -> str:
    """RGBA Byte GeoTIFF of an embedding raster's first three principal components.

    ``view``: a fitted view to apply (colours then mean the same as in another map); by
    default one is fitted on this raster.
    """
    progress = ensure_progress(progress)
    fitted = 0.0 if view is not None else 0.3  # share of the progress bar spent fitting
    if view is None:
        view = fit_rgb_view_raster(raster, sample_size, seed, progress.sub(0, fitted))
    with EmbeddingRasterReader(raster) as reader:
        interp = [gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand, gdal.GCI_AlphaBand]
        meta = {
            KIND_KEY: VIEW_KIND,
            MODEL_ID_KEY: reader.model_id,
            PCA_VARIANCE_KEY: view.variance_text(),
            **reader.decoding.metadata(),
        }
        with BlockWriter(
            output, reader.info, np.uint8, bands=4, metadata=meta,
            band_names=["pc1", "pc2", "pc3", "alpha"], color_interp=interp,
        ) as writer:  # fmt: skip
            for block in reader.blocks(progress.sub(fitted, 1.0)):
                out = np.zeros((4, *block.valid.shape), np.uint8)
                if block.valid.any():
                    out[:3, block.valid] = view.transform(block.valid_vectors()).T
                    out[3, block.valid] = 255
                writer.write(block.window, out)
    return str(output)


@guards_files(outputs=["output"], inputs=["points"])
def rgb_view_points(
    points: str,
    output: str,
    seed: int = 0,
    progress: Optional[Progress] = None,
    view: Optional[EmbeddingRGB] = None,
) -> tuple[str, np.ndarray]:
    """Copy an embedding point layer with a ``colour`` field (#rrggbb) and r, g, b fields.

    ``view``: a fitted view to apply; by default one is fitted on these points.
    """
    table, emb, model_id = read_points_with_embeddings(points)
    rgb = (view or EmbeddingRGB(seed=seed).fit(emb)).transform(emb)
    attributes = dict(table.attributes)
    attributes["colour"] = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.tolist()]
    for i, name in enumerate("rgb"):
        attributes[name] = rgb[:, i].astype(np.int64)
    write_points(
        output, table.xyz, table.crs_wkt, attributes, embeddings=emb, model_id=model_id, progress=progress,
        fids=table.fids,
    )
    return str(output), rgb
