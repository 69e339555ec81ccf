"""Text columns as Arrow arrays: the helpers the vectorised contract checks share.

Reads and writes nothing. `tailor.events.schema` (ids, numbers) and
`tailor.events.timestamps` (times) turn a column into an Arrow string array once, trim it,
and match whole values against patterns with Arrow's kernels; values that are not all text
take the per-value paths.
"""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tailor.events.value_limits import as_float

# A plain decimal number, as a whole value: Arrow casts it, pandas sees only the rest.
NUMBER_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def text_array(values: pd.Series) -> pa.Array | None:
    """The values as an Arrow string array when every present value is text, else None."""
    if isinstance(values.dtype, pd.ArrowDtype):  # already Arrow (file import): no conversion
        array = pa.array(values.array)
        array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
        if pa.types.is_large_string(array.type):
            array = array.cast(pa.string())
        return array if pa.types.is_string(array.type) else None
    if values.dtype.kind not in "OSU" and not isinstance(values.dtype, pd.StringDtype):
        return None
    try:
        return pa.array(values.to_numpy(dtype=object, na_value=None), type=pa.string(),
                        from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError, OverflowError):
        return None  # not all text, or text that is not valid Unicode: the object path


def trimmed(text: pa.Array) -> pa.Array:
    """Text stripped of surrounding whitespace, with empty values as null."""
    stripped = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped)


def object_series(array: pa.Array, index: pd.Index) -> pd.Series:
    """An Arrow array as an object series (None for nulls)."""
    return pd.Series(array.to_numpy(zero_copy_only=False), index=index, dtype=object)


def number_or_nan(value: object) -> float:
    """`as_float`, with NaN for anything that is not a number (flagged by the caller)."""
    try:
        return as_float(value)
    except (ValueError, TypeError):
        return math.nan

