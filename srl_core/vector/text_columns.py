"""The columns of a delimited-text table (CSV), typed as the analyst wrote them.

GDAL's CSV reader reads every value as text, or with ``AUTODETECT_TYPE`` guesses a type per
column that loses what identifiers hold: site codes lost their leading zeros ("007" became 7,
as USGS gauge numbers are written) and 20-digit identifiers were all clamped to the largest
64-bit integer, so unique ids became one value. Here a column becomes numbers only when every
value reads as one and nothing is lost by it: no leading zeros, and whole numbers that fit 64 bits;
otherwise it stays text. Empty values are nulls.
"""

from __future__ import annotations

import re
from typing import Optional, Union

import numpy as np

INTEGER = re.compile(r"^[+-]?\d+$")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
LEADING_ZERO = re.compile(r"^[+-]?0\d")  # "007", "-01.5": a code, or not written as a number
INT64 = np.iinfo(np.int64)

TypedColumn = Union[np.ndarray, list]


def typed_column(values: list) -> TypedColumn:
    """``values`` (text or None) as int64 or float64 numbers when each reads as one without loss
    (float NaN, or a list with None for the nulls of whole numbers, as the other readers give them),
    else as text with None for empty values."""
    text: list[Optional[str]] = [None if v is None or not str(v).strip() else str(v).strip() for v in values]
    given = [t for t in text if t is not None]
    if not given or any(LEADING_ZERO.match(t) for t in given):
        return text
    if all(INTEGER.match(t) for t in given):
        numbers = [int(t) for t in given]
        if not all(INT64.min <= v <= INT64.max for v in numbers):
            return text  # identifiers longer than 64 bits stay whole
        if len(given) < len(text):
            return [None if t is None else int(t) for t in text]
        return np.array(numbers, dtype=np.int64)
    if all(NUMBER.match(t) for t in given):
        return np.array([np.nan if t is None else float(t) for t in text], dtype=np.float64)
    return text
