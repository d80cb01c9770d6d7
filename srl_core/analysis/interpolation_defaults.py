"""Defaults for interpolating a point field, chosen from the points, and the target's scale.

An analyst who opens the tool and presses Run should get a sensible map, not an error:

- the field: the first numeric field that is not an identifier (``fid``, ``id``, ``*_id``, or
  integers numbering the rows 0..n-1 / 1..n);
- the resolution: half the median nearest-neighbour spacing of the points, rounded to 1, 2 or 5
  times a power of ten (finer cannot be resolved from the samples; coarser loses what they say), but
  no finer than gives :data:`MAX_DEFAULT_CELLS` cells (clustered samples);
- the target's scale: concentrations (zinc in ppm) are skewed and never negative; a linear model
  on them predicts below zero where samples are sparse. :class:`TargetScale` fits on log(y) on
  request (the standard for concentrations) and, either way, counts the predictions below the
  smallest observed value so the report can say so, and clips at zero what is never negative.
"""

from __future__ import annotations

import math
import re
from typing import Optional, Sequence

import numpy as np
from scipy.spatial import cKDTree

from ..errors import InputError
from ..vector.points import PointTable

ID_NAME = re.compile(r"^(fid|id|gid|ogc_fid|objectid|oid|row|index)$|(^id_)|(_id$)", re.IGNORECASE)


def _is_identifier(name: str, values: np.ndarray) -> bool:
    if ID_NAME.search(name):
        return True
    if values.dtype.kind in "iu" or (values.dtype.kind == "f" and np.all(np.mod(values, 1) == 0)):
        ordered = np.sort(values)
        return len(values) > 2 and np.array_equal(ordered, np.arange(ordered[0], ordered[0] + len(values)))
    return False


def default_field(table: PointTable) -> str:
    """The first numeric, non-identifier field of ``table`` that did not place the points (a table's
    lon/lat columns: mapping the longitude scores well and means nothing); an error naming the
    fields when none is."""
    for name, column in table.attributes.items():
        if isinstance(column, list) or name in table.coordinate_fields:
            continue
        values = np.asarray(column)
        if values.dtype.kind in "iuf" and not _is_identifier(name, values):
            return name
    fields = ", ".join(table.attributes) or "none"
    raise InputError(f"The point layer has no numeric field to interpolate (fields: {fields}); "
                     "choose a field.")


MAX_CODES = 12  # a numeric field with at most this many distinct whole numbers may hold class codes


def _code_like(values: np.ndarray) -> np.ndarray:
    """The distinct values when there are 2 to :data:`MAX_CODES` of them, all whole numbers, else empty."""
    distinct = np.unique(values)
    ok = 2 <= len(distinct) <= MAX_CODES and bool(np.all(distinct == np.round(distinct)))
    return distinct if ok else distinct[:0]


def class_code_note(values: np.ndarray, name: str) -> list[str]:
    """A report line when a field mapped as numbers holds a few distinct whole numbers: land-cover or
    soil codes (11, 41, 82) mapped as amounts give values between them (30, 60) that are no class."""
    codes = _code_like(values)
    if not len(codes):
        return []
    shown = ", ".join(f"{v:g}" for v in codes[:6]) + (", ..." if len(codes) > 6 else "")
    return [f"{name} holds only {len(codes)} distinct whole numbers ({shown}), mapped as amounts: if they "
            "are class codes, not amounts, choose the classification task (Processing: Task; command line: "
            "--task classification)."]


def round_nicely(value: float, up: bool = False) -> float:
    """``value`` rounded down (or ``up``) to 1, 2 or 5 times a power of ten (0.37 -> 0.2, 37 -> 20,
    60 -> 50; up: 0.37 -> 0.5, 37 -> 50, 60 -> 100)."""
    if not value > 0 or not math.isfinite(value):
        raise InputError(f"Cannot derive a resolution from a spacing of {value}.")
    power = 10.0 ** math.floor(math.log10(value))
    if up:
        return min(step * power for step in (1, 2, 5, 10) if step * power >= value * (1 - 1e-9))
    return max(step * power for step in (1, 2, 5) if step * power <= value * (1 + 1e-9))


MAX_DEFAULT_CELLS = 1_000_000  # the default grid's size at most: seconds to minutes, a few hundred MB


def default_resolution(xy: np.ndarray, extent: Optional[Sequence[float]] = None) -> tuple[float, bool]:
    """Half the median nearest-neighbour spacing of points ``xy`` (CRS units), rounded (see module), and
    whether it was coarsened: never finer than gives :data:`MAX_DEFAULT_CELLS` cells over the points, or
    over ``extent`` (xmin, ymin, xmax, ymax) when the map is given one.
    Clustered samples (plots of ten within 20 m, 10 km apart; replicates 0.5 m apart) made it 1 m or
    less, a grid of 84-210 million cells that ran for hours and took over 10 GB, accepted silently."""
    unique = np.unique(np.asarray(xy, np.float64), axis=0)
    if len(unique) < 2:
        raise InputError("At least 2 points at distinct locations are needed to derive a resolution.")
    dist, _ = cKDTree(unique).query(unique, 2)
    resolution = round_nicely(float(np.median(dist[:, 1])) / 2)
    if extent is not None:
        span = np.abs(np.array([extent[2] - extent[0], extent[3] - extent[1]], np.float64)) + resolution
    else:
        span = unique.max(axis=0) - unique.min(axis=0) + resolution
    if float(np.prod(span / resolution)) <= MAX_DEFAULT_CELLS:
        return resolution, False
    return round_nicely(float(np.sqrt(np.prod(span) / MAX_DEFAULT_CELLS)), up=True), True


class TargetScale:
    """Values to fit on and back; counts predictions below the observed minimum as they are made."""

    def __init__(self, y: np.ndarray, name: str, log: bool = False) -> None:
        self.name = name
        self.minimum = float(np.min(y))
        self.maximum = float(np.max(y))
        self.non_negative = self.minimum >= 0
        self.codes = bool(len(_code_like(y)))  # no log-transform advice for what may be class codes
        if log and self.minimum <= 0:
            raise InputError(
                f"Field '{name}' has values of {self.minimum:g} or less, so it cannot be log-transformed; "
                "leave the log transform off."
            )
        self.log = log
        self.below_minimum = 0
        self.above_maximum = 0  # a log-scale fit's exp() overshoots far from the samples
        self.clipped = 0
        self.predicted = 0
        # the fitted model's residual spread on the log scale: how far its median map lies below the mean
        self.log_residual_std: Optional[float] = None

    def forward(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.log else y

    def inverse(self, prediction: np.ndarray, uncertainty: Optional[np.ndarray] = None,
                count: bool = False) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Back to the field's units (the uncertainty by the delta method); clip negatives of a
        never-negative field to 0. ``count``: tally them for :meth:`describe`."""
        if self.log:
            prediction = np.exp(prediction)
            uncertainty = prediction * uncertainty if uncertainty is not None else None
        below = prediction < self.minimum
        negative = prediction < 0
        if count:
            self.predicted += len(prediction)
            self.below_minimum += int(np.count_nonzero(below))
            self.above_maximum += int(np.count_nonzero(prediction > self.maximum))
        if self.non_negative and negative.any():
            if count:
                self.clipped += int(np.count_nonzero(negative))
            prediction = np.where(negative, 0.0, prediction)
        return prediction, uncertainty

    def _log_line(self) -> str:
        """What a log-scale fit's map shows: exp of the predicted log is the median, below the mean (by
        exp(s^2 / 2) for a residual spread s; on Meuse zinc the map at the samples averaged 0.91 of them)."""
        line = f"Fitted on log({self.name}); predictions transformed back: the map shows the median"
        s = self.log_residual_std
        if s is None or not np.isfinite(s):
            return line + " (exp of the predicted log), which lies below the mean."
        below = 1 - np.exp(-s * s / 2)
        return (line + f" (exp of the predicted log), which lies about {below:.0%} below the mean "
                f"(exp(s^2 / 2) for the residual spread s = {s:.2f} on the log scale).")

    def describe(self) -> list[str]:
        """Report lines: the transform, and predictions below the observed minimum or above the maximum."""
        lines = [self._log_line()] if self.log else []
        if self.below_minimum:
            share = self.below_minimum / max(1, self.predicted)
            text = (f"{self.below_minimum} of {self.predicted} pixels ({share:.1%}) are predicted below the "
                    f"smallest observed value of {self.name} ({self.minimum:g})")
            if self.clipped:
                text += (f"; {self.clipped} of them were below 0 and were set to 0, as {self.name} is "
                         "never negative")
            if not self.log and self.non_negative and not self.codes:
                text += ". A log transform (the usual choice for concentrations) avoids this"
            lines.append(text + ".")
        if self.above_maximum:
            share = self.above_maximum / max(1, self.predicted)
            lines.append(f"{self.above_maximum} of {self.predicted} pixels ({share:.1%}) are predicted above "
                         f"the largest observed value of {self.name} ({self.maximum:g}).")
        return lines
