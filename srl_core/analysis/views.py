"""The embedding view: the first three principal components shown as red, green and blue.

Fit the PCA on a sample, then stretch each component between its 2nd and 98th
percentiles (on the same sample) to 1..255, so similar embeddings get similar colours
and one outlier does not wash the map out. Rasters get an alpha band for nodata; points
get a colour per feature.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

import numpy as np
from osgeo import gdal
from sklearn.decomposition import PCA

from ..atomic import guards_files
from ..checks import check_seed
from ..embedding_products import RasterInput
from ..errors import InputError
from ..names import KIND_KEY, MODEL_ID_KEY, PCA_VARIANCE_KEY, QUALITY_WARNING_KEY, VIEW_KIND
from ..progress import Progress, ensure_progress
from ..raster.blocks import SAMPLE_READ_BYTES, BlockWriter, EmbeddingRasterReader
from ..vector.points import write_points
from ._common import (
    NEGLIGIBLE_VARIANCE,
    as_embeddings,
    read_points_with_embeddings,
    relative_variance,
    subsample,
)

_log = logging.getLogger(__name__)

STRETCH_PERCENTILES = (2.0, 98.0)
# A component explaining less than this share of the variance is shown mid-grey: stretched to full
# contrast it would show noise as signal (the bundled scene's third component explains 0.085).
MIN_COMPONENT_SHARE = 0.01
MID_GREY = 0.5  # where a flat component sits on the 0..1 stretch
# A component whose share of the variance falls below this fraction of itself among the embeddings within
# the stretch varied along a few outliers only (1.000 -> 0.0003 for an undeclared fill; a Gaussian
# component clipped to its 2nd..98th percentiles keeps about 0.8 of it).
OUTLIER_DROP = 0.1
FEW_FAR_OFF = 0.01  # under this share far off the near-identical rest: outliers, and the view is grey
FAR_SPREADS = 10.0  # far off: beyond this many times the near-identical embeddings' own spread
MIN_CORE = 50  # embeddings within the stretch needed to tell outliers (8 Gaussian points were, 1 time in 7)


class EmbeddingRGB:
    """PCA to 3 components plus a percentile stretch to bytes; fit on a sample, apply anywhere."""

    def __init__(self, sample_size: int = 100_000, seed: int = 0) -> None:
        self.sample_size = sample_size
        self.seed = check_seed(seed)
        self._pca: Optional[PCA] = None
        self._lo = self._hi = None
        self._ratio = np.zeros(3)
        self.warnings: list[str] = []  # why the colours mean less than they seem

    def fit(self, x: np.ndarray) -> EmbeddingRGB:
        x = subsample(as_embeddings(x), self.sample_size, self.seed)
        if len(x) < 3 or x.shape[1] < 3:
            raise InputError("The colour view needs at least 3 embeddings with at least 3 dimensions.")
        with np.errstate(divide="ignore", invalid="ignore"):  # shares of no variance at all: 0 / 0
            self._pca = PCA(n_components=3, random_state=self.seed).fit(x)
        proj = self._pca.transform(x)
        self._lo, self._hi = np.percentile(proj, STRETCH_PERCENTILES, axis=0)
        relative = relative_variance(x)
        if relative < NEGLIGIBLE_VARIANCE:
            self._ratio, self.warnings = np.zeros(3), [_no_variance_warning(relative)]
            return self
        core, core_share = _core(x, proj, self._lo, self._hi)
        if core.sum() >= MIN_CORE and relative_variance(x[core]) < NEGLIGIBLE_VARIANCE:
            far = _far_from(x, core)
            if far.mean() < FEW_FAR_OFF:  # a few far off, the others barely vary: their noise stretched
                self._ratio = np.zeros(3)
                self.warnings = [_no_variance_warning(relative_variance(x[~far]), but_a_few=True)]
                return self
            # an island scene: its land stretched, and the flat water at one colour within that stretch
            # (the percentiles of all fell inside the water's noise with under 3 % land)
            centre = self._pca.transform(x[~far].astype(np.float64).mean(axis=0, keepdims=True))[0]
            self._lo = np.minimum(np.percentile(proj[far], STRETCH_PERCENTILES[0], axis=0), centre)
            self._hi = np.maximum(np.percentile(proj[far], STRETCH_PERCENTILES[1], axis=0), centre)
            self._ratio = self._pca.explained_variance_ratio_
            self.warnings = [_uniform_majority_note(1 - far.mean())] + _flat_components_warning(self._ratio)
            return self
        overall = self._pca.explained_variance_ratio_
        outlying = (core_share < OUTLIER_DROP * overall) & (overall >= MIN_COMPONENT_SHARE)
        self.warnings = _outliers_warning(overall, outlying, core)
        if self.warnings:  # the view of the others, the outliers clipped
            with np.errstate(divide="ignore", invalid="ignore"):
                self._pca = PCA(n_components=3, random_state=self.seed).fit(x[core])
            self._lo, self._hi = np.percentile(self._pca.transform(x[core]), STRETCH_PERCENTILES, axis=0)
        self._ratio = self._pca.explained_variance_ratio_
        self.warnings += _flat_components_warning(self._ratio)
        return self

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        """Share of variance of PC1, PC2, PC3; 0 each when the embeddings do not vary (rounding's shares)."""
        return self._ratio

    @property
    def flat_components(self) -> np.ndarray:
        """(3,) bool: the components shown mid-grey, their variance too small to show
        (:data:`MIN_COMPONENT_SHARE`), of the embeddings the view was made from."""
        return self._ratio < MIN_COMPONENT_SHARE

    def variance_text(self) -> str:
        """Share of variance of PC1, PC2, PC3 as "0.512, 0.201, 0.100" (as written in outputs)."""
        return ", ".join(f"{v:.3f}" for v in self.explained_variance_ratio)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Colours (N, 3) uint8 in 1..255 (0 is left for nodata)."""
        if self._pca is None:
            raise InputError("Fit the colour view first.")
        proj = self._pca.transform(np.asarray(x, np.float32))
        scaled = (proj - self._lo) / np.maximum(self._hi - self._lo, 1e-12)
        scaled[:, self.flat_components] = MID_GREY
        return (1 + np.clip(scaled, 0.0, 1.0) * 254).round().astype(np.uint8)


def _far_from(x: np.ndarray, core: np.ndarray) -> np.ndarray:
    """(N,) bool: the embeddings far off the ``core`` ones, beyond :data:`FAR_SPREADS` of their spread."""
    near = x[core].astype(np.float64)  # float32 sums along rows drifted by 5e-4 here, 10x the spread
    centre = near.mean(axis=0)
    spread = float(np.sqrt(near.var(axis=0).sum()))
    distance = np.linalg.norm(x.astype(np.float64) - centre, axis=1)
    return distance > FAR_SPREADS * spread + 1e-12 * float(np.linalg.norm(centre))


def _uniform_majority_note(share: float) -> str:
    return (f"{share:.0%} of the embeddings barely vary (one uniform cover: water, say), so they share one "
            "colour; the colours tell the others apart.")


def _no_variance_warning(relative: float, but_a_few: bool = False) -> str:
    """Why a colour view of embeddings that do not vary is uniform grey, and what to check; ``but_a_few``:
    the embeddings within the colour stretch barely vary (``relative``), a few outside it do (one far-off
    embedding made 900 near-identical ones look varied: their noise stretched into full colour)."""
    which = "The embeddings barely vary but for a few far off" if but_a_few else "The embeddings barely vary"
    return (
        f"{which} (total variance {relative:.1e} of their mean squared length): there is "
        "nothing to show, so the colour view is uniform grey and the shares of variance are given as 0. "
        "Check the embeddings: the raster may be uniform, or its embeddings degenerate (re-embed it, e.g. "
        "standardised by its own band statistics)."
    )


def _core(x: np.ndarray, proj: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the embeddings within every component's stretch, each component's share of their variance).

    The stretch spans each component's 2nd to 98th percentile: a component whose variance comes from
    fewer embeddings than that (an undeclared fill value, a rare class) is stretched over what remains,
    its noise. 0.5 % of pixels at -9999 made PC1 "1.000 of the variance", and six obvious regions all the
    same random red."""
    core = ((proj >= lo) & (proj <= hi)).all(axis=1)
    if core.sum() < MIN_CORE:  # the percentiles of a handful of embeddings say nothing of outliers
        return core, np.ones(proj.shape[1])
    total = float(x[core].astype(np.float64).var(axis=0).sum())
    return core, proj[core].astype(np.float64).var(axis=0) / max(total, 1e-30)


def _outliers_warning(ratio: np.ndarray, outlying: np.ndarray, core: np.ndarray) -> list[str]:
    """Components driven by a few outlying embeddings, said, with what the view shows instead."""
    if not outlying.any():
        return []
    named = ", ".join(f"PC{i + 1} ({ratio[i]:.3f} of the variance)" for i in np.flatnonzero(outlying))
    return [
        f"{named} of all the embeddings varied along a few outlying ones only (a fill value the file does "
        "not declare, or a rare class): stretched, the rest would show its noise. The colours show the "
        f"principal components of the {core.mean():.0%} of the embeddings within the stretch of all three; "
        "the outliers get clipped colours."
    ]


def _flat_components_warning(ratio: np.ndarray) -> list[str]:
    """The components whose variance is too small to show (they are mid-grey), said, when there are any."""
    flat = [f"PC{i + 1} ({share:.4f})" for i, share in enumerate(ratio) if share < MIN_COMPONENT_SHARE]
    if not flat:
        return []
    return [
        f"{', '.join(flat)} explain under {MIN_COMPONENT_SHARE:.0%} of the variance each: shown as mid-grey, "
        "not stretched, since their variation is too small to mean anything (their colour would be noise)."
    ]


def fit_rgb_view_raster(
    raster: RasterInput, sample_size: int = 100_000, seed: int = 0, progress: Optional[Progress] = None
) -> EmbeddingRGB:
    """The colour view fitted on a random sample of an embedding raster's valid pixels."""
    with EmbeddingRasterReader(raster) as reader:
        sample = reader.sample(sample_size, seed, progress, min_read_bytes=SAMPLE_READ_BYTES)
        return EmbeddingRGB(sample_size, seed).fit(sample)


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
        kept = reader.warnings(*view.warnings)
        meta = {
            KIND_KEY: VIEW_KIND,
            MODEL_ID_KEY: reader.model_id,
            PCA_VARIANCE_KEY: view.variance_text(),
            **reader.decoding.metadata(),
            **({QUALITY_WARNING_KEY: " ".join(kept)} if kept else {}),
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
    on_warning: Optional[Callable[[str], None]] = None,
) -> tuple[str, np.ndarray]:
    """Copy an embedding point layer with a ``colour`` field (#rrggbb) and r, g, b fields; return
    (output, colours (N, 3), masked for points without an embedding, whose fields stay NULL).

    ``view``: a fitted view to apply; by default one is fitted on these points. That some points have no
    embedding is said to ``on_warning`` (default: logged).
    """
    read = read_points_with_embeddings(points)
    view = view or EmbeddingRGB(seed=seed).fit(read.usable)
    rgb = view.transform(read.usable)
    attributes = dict(read.table.attributes)
    colours = iter(f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.tolist())
    attributes["colour"] = [next(colours) if e else None for e in read.embedded.tolist()]
    rgb = read.spread(rgb)
    for i, name in enumerate("rgb"):
        attributes[name] = rgb[:, i].astype(np.int64)
    left_out = read.warning("their colour is empty (NULL)")
    write_points(
        output, read.table.xyz, read.table.crs_wkt, attributes, embeddings=read.embeddings,
        model_id=read.model_id, progress=progress, fids=read.table.fids, kind=read.origin.kind,
        metadata=read.origin.recipe,
        warnings=read.origin.warnings(left_out, *view.warnings),
    )
    if left_out:
        (on_warning or _log.warning)(left_out)
    return str(output), rgb
