"""Model parameters from logged values: the one conversion every model's params class uses.

Reads and writes nothing. MLflow logs parameters as strings; `params_from_dict` turns them
back into a params dataclass, casting each value to the type of the field's default.
`LoggedParams` gives a params dataclass its `from_dict` and `to_dict`.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

ParamsT = TypeVar("ParamsT")


def params_from_dict(cls: type[ParamsT], values: dict[str, Any]) -> ParamsT:
    """Build the params dataclass `cls` from `values`; unknown keys are ignored.

    Args:
        cls: a dataclass whose fields all have defaults (str, int, float or bool).
        values: field values, as logged (strings) or as Python values.

    Returns:
        `cls(**converted)`; ints accept "3" and "3.0", bools accept "1"/"true" (any case).
    """
    known = {field.name: field for field in fields(cls)}
    converted = {}
    for name, value in values.items():
        if name in known:
            converted[name] = _cast(type(known[name].default), value)
    return cls(**converted)


def _cast(kind: type, value: Any) -> Any:
    if kind is str:
        return value
    if kind is int:
        return int(float(value))
    if kind is bool:
        return str(value).lower() in {"1", "true"}
    return kind(value)


class LoggedParams:
    """The two methods every model's params dataclass has: `from_dict` reads logged values
    back, `to_dict` gives the fields to log. Mixed into dataclasses only."""

    @classmethod
    def from_dict(cls: type[ParamsT], values: dict[str, Any]) -> ParamsT:
        """Params from logged values (strings from MLflow are converted; unknown keys ignored)."""
        return params_from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        """Every field and its value."""
        return asdict(self)  # type: ignore[call-overload]  (a dataclass: see the docstring)
