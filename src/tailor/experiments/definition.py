"""Experiment definitions: one YAML file per experiment, parsed and checked on load.

Reads `experiments/*.yaml` files (the source tree's shipped examples, or a shop's
`<home>/experiments/`); writes nothing. Every problem is an `InputError` that names the file
and the field path (`homepage-layout.yaml: variants.1.weight: must be greater than 0`), all
of a file's problems at once. A definition says who owns it and why, which surface and layer
it runs on, its variants with their weights and the changes each makes, the metrics and
guardrails it is judged by, and when it may stop (`experiments/README.md` in the source
tree lists the ready ones).

A definition says nothing about the registry: whether a variant's `model` alias or version
exists is checked when the experiment starts (`tailor.experiments.state.start`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tailor.errors import InputError

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
VARIANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MODEL_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")  # as serving.<model>_model

SURFACES: tuple[str, ...] = ("homepage", "also_bought", "checkout_offer", "campaign")
Surface = Literal["homepage", "also_bought", "checkout_offer", "campaign"]
# The registered model (`tailor-<model>`) a surface's `model` change names a version of.
SURFACE_MODELS: dict[str, str] = {"homepage": "homepage", "also_bought": "cross_sell",
                                  "checkout_offer": "checkout"}
# What a variant may change, per surface.
SURFACE_CHANGES: dict[str, tuple[str, ...]] = {
    "homepage": ("model", "layout", "diversity", "personalization_min_purchases"),
    "also_bought": ("model", "diversity"),
    "checkout_offer": ("model",),
    "campaign": ("discount_delay_days",),
}
LAYOUTS: tuple[str, ...] = ("grid", "carousel", "hero_grid")
DIVERSITIES: tuple[str, ...] = ("single_category", "mixed")

# Metric names of the attribution (per assignment unit, within the window after exposure).
METRICS: tuple[str, ...] = ("conversion", "revenue_per_visitor", "aov", "click_through",
                            "bounce_rate", "email_ctr")
GUARDRAIL_ONLY_METRICS: tuple[str, ...] = ("fallback_rate", "latency_p99_ms", "error_rate")
Metric = Literal["conversion", "revenue_per_visitor", "aov", "click_through", "bounce_rate",
                 "email_ctr"]
GuardrailMetric = Literal["conversion", "revenue_per_visitor", "aov", "click_through",
                          "bounce_rate", "email_ctr", "fallback_rate", "latency_p99_ms",
                          "error_rate"]

MIN_VARIANTS, MAX_VARIANTS = 2, 8
WEIGHT_TOLERANCE = 1e-6


class _Strict(BaseModel):
    """Unknown keys are errors (a misspelt key must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Changes(_Strict):
    """What a variant changes; an unset field serves the default."""

    model: str | None = Field(None, description="A registry alias or version number of the "
                                                "surface's model.")
    layout: Literal["grid", "carousel", "hero_grid"] | None = None
    diversity: Literal["single_category", "mixed"] | None = None
    personalization_min_purchases: int | None = Field(None, ge=0, strict=True)
    discount_delay_days: int | None = Field(None, ge=0, le=90, strict=True)

    @field_validator("model", mode="before")
    @classmethod
    def _reference(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a registry alias or a version number")
        if isinstance(value, int):
            value = str(value)
        if isinstance(value, str) and not MODEL_REFERENCE.match(value.strip()):
            raise ValueError("must be a registry alias (letters, digits, _ and -) or a "
                             f"version number, got {value!r}")
        return value

    def set(self) -> dict[str, Any]:
        """The changes this variant makes (the fields it sets)."""
        return self.model_dump(exclude_none=True)


class Variant(_Strict):
    """One arm of an experiment."""

    name: str = Field(pattern=VARIANT_PATTERN)
    weight: float = Field(gt=0, le=1, allow_inf_nan=False)
    changes: Changes = Field(default_factory=Changes)


class Metrics(_Strict):
    """What the experiment is judged by."""

    primary: Metric
    secondary: list[Metric] = Field(default_factory=list)
    attribution_window_hours: float = Field(24.0, gt=0, le=24 * 60, allow_inf_nan=False)


class Guardrail(_Strict):
    """A limit whose breach stops the experiment and reverts to the control: either an
    absolute increase over the control (`max_increase`) or a ceiling for any variant (`max`)."""

    metric: GuardrailMetric
    max_increase: float | None = Field(None, ge=0, allow_inf_nan=False)
    max: float | None = Field(None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_limit(self) -> "Guardrail":
        if (self.max_increase is None) == (self.max is None):
            raise ValueError("set exactly one of max_increase (over the control) and max "
                             "(a ceiling)")
        return self


class Stopping(_Strict):
    """When a decision may be taken."""

    method: Literal["sequential", "fixed_horizon"] = "sequential"
    alpha: float = Field(0.05, gt=0, lt=0.5)
    power: float = Field(0.8, gt=0, lt=1)
    minimum_detectable_effect: float = Field(0.05, gt=0, allow_inf_nan=False)


class Definition(_Strict):
    """One experiment, as its YAML file states it (see the module docstring)."""

    name: str = Field(pattern=NAME_PATTERN)
    hypothesis: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    surface: Surface
    layer: str = Field(pattern=NAME_PATTERN)
    traffic: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    salt: str = Field("", max_length=200, description="Default: the name.")
    variants: list[Variant] = Field(min_length=MIN_VARIANTS, max_length=MAX_VARIANTS)
    control: str = Field("", description="Default: the first variant.")
    metrics: Metrics
    guardrails: list[Guardrail] = Field(default_factory=list)
    minimum_sample: int = Field(gt=0, strict=True)
    max_duration_days: float = Field(gt=0, le=366, allow_inf_nan=False)
    stopping: Stopping = Field(default_factory=Stopping)

    @model_validator(mode="after")
    def _consistent(self) -> "Definition":
        problems = _cross_field_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        if not self.salt:
            object.__setattr__(self, "salt", self.name)
        if not self.control:
            object.__setattr__(self, "control", self.variants[0].name)
        return self

    @property
    def model(self) -> str | None:
        """The model a `model` change of this surface names a version of (None: campaign)."""
        return SURFACE_MODELS.get(self.surface)

    def variant(self, name: str) -> Variant:
        """The variant called `name`.

        Raises:
            InputError: there is none.
        """
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise InputError(f"{self.name}: no variant {name!r} (variants: "
                         f"{', '.join(v.name for v in self.variants)})")

    def canonical_json(self) -> str:
        """The definition as compact JSON with sorted keys (what is stored and hashed)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def sha256(self) -> str:
        """The hash of `canonical_json`: equal for files that differ only in layout or comments."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _RuleInputs:
    """What the rules across fields read, as plain values (from a checked `Definition`, or
    from the raw mapping of a file whose fields failed; None or empty: not judged)."""

    names: Sequence[str | None]
    weights: Sequence[float]
    surface: str | None
    change_keys: Sequence[Sequence[str]]  # per variant, the changes it sets
    control: str
    metrics: Sequence[tuple[str, str]]  # (field path, metric)


def _cross_field_problems(definition: Definition) -> list[str]:
    """Rules across fields, each as `path: problem`."""
    return _rule_problems(_RuleInputs(
        names=[variant.name for variant in definition.variants],
        weights=[variant.weight for variant in definition.variants],
        surface=definition.surface,
        change_keys=[list(variant.changes.set()) for variant in definition.variants],
        control=definition.control,
        metrics=_metric_names(definition.metrics.primary, definition.metrics.secondary,
                              [guardrail.metric for guardrail in definition.guardrails])))


def _rule_problems(rules: _RuleInputs) -> list[str]:
    """Duplicate variant names, weights that do not sum to 1, changes the surface does not
    take, a control that is no variant, `email_ctr` outside a campaign: `path: problem`."""
    problems = []
    names = list(rules.names)
    for index, name in enumerate(names):
        if name is not None and name in names[:index]:
            problems.append(f"variants.{index}.name: duplicate variant {name!r} (variant "
                            f"{names.index(name)} has that name)")
    total = math.fsum(rules.weights)
    if rules.weights and abs(total - 1.0) > WEIGHT_TOLERANCE:
        problems.append(f"variants: the weights sum to {total:.6g}, they must sum to 1 "
                        f"({' + '.join(f'{weight:g}' for weight in rules.weights)})")
    allowed = SURFACE_CHANGES.get(rules.surface or "", ())
    for index, keys in enumerate(rules.change_keys if allowed else ()):
        for key in keys:
            if key not in allowed:
                problems.append(f"variants.{index}.changes.{key}: not a change of surface "
                                f"{rules.surface} (it may change: {', '.join(allowed)})")
    known = [name for name in names if name is not None]
    if rules.control and known and rules.control not in known:
        problems.append(f"control: {rules.control!r} is not one of the variants "
                        f"({', '.join(known)})")
    for path, metric in rules.metrics if rules.surface else ():
        if metric == "email_ctr" and rules.surface != "campaign":
            problems.append(f"{path}: email_ctr is a campaign metric, not one of surface "
                            f"{rules.surface}")
    return problems


def _metric_names(primary: Any, secondary: Any, guardrails: Sequence[Any]
                  ) -> list[tuple[str, str]]:
    """(field path, metric) of every metric named; values that are not text are left out."""
    found = [("metrics.primary", primary)]
    found += [(f"metrics.secondary.{i}", m) for i, m in enumerate(secondary)]
    found += [(f"guardrails.{i}.metric", m) for i, m in enumerate(guardrails)]
    return [(path, metric) for path, metric in found if isinstance(metric, str)]


def _raw_rule_inputs(data: dict[str, Any]) -> _RuleInputs:
    """The rules' inputs read from a raw mapping, taking only well-typed values: a file whose
    fields failed never reaches the model's cross-field check, yet its variants' weights and
    changes are still judged beside the field errors (all of a file's problems at once)."""
    raw = data.get("variants")
    items = raw if isinstance(raw, list) and all(isinstance(i, dict) for i in raw) else []
    names = [i["name"].strip() if isinstance(i.get("name"), str) else None for i in items]
    weights = [i.get("weight") for i in items]
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w)
               for w in weights):
        weights = []
    change_keys = [[key for key, value in changes.items()
                    if key in Changes.model_fields and value is not None]
                   if isinstance(changes := i.get("changes"), dict) else [] for i in items]
    surface = data["surface"].strip() if isinstance(data.get("surface"), str) else None
    control = data.get("control")
    found = data.get("metrics")
    metrics: dict[str, Any] = found if isinstance(found, dict) else {}
    secondary = metrics.get("secondary")
    guardrails = data.get("guardrails")
    return _RuleInputs(
        names=names, weights=[float(w) for w in weights],
        surface=surface if surface in SURFACES else None,
        change_keys=change_keys,
        control=control.strip() if isinstance(control, str) else "",
        metrics=_metric_names(
            metrics.get("primary"), secondary if isinstance(secondary, list) else [],
            [g.get("metric") if isinstance(g, dict) else None for g in guardrails]
            if isinstance(guardrails, list) else []))


# -- loading -------------------------------------------------------------------------------


def parse_definition(data: Any, source: str) -> Definition:
    """A `Definition` from parsed YAML or stored JSON.

    Args:
        data: the mapping the file holds.
        source: what to name in errors (the file, or `experiment_state`).

    Raises:
        InputError: one line per problem, each `source: field.path: problem`.
    """
    if not isinstance(data, dict):
        raise InputError(f"{source}: must hold a mapping of keys (name, hypothesis, ...), "
                         f"got {type(data).__name__}")
    try:
        return Definition.model_validate(data)
    except ValidationError as error:
        problems = error.errors()
        lines = [line for problem in problems for line in _describe(problem, data)]
        if all(problem["loc"] for problem in problems):  # the cross-field rules did not run
            lines += [line for line in _rule_problems(_raw_rule_inputs(data))
                      if line not in lines]
        raise InputError("\n".join(f"{source}: {line}" for line in lines)) from None


def _describe(problem: Any, data: dict[str, Any]) -> list[str]:
    """A pydantic error as `path: problem` lines (a rule across fields may give several)."""
    path = ".".join(str(part) for part in problem["loc"])
    message = str(problem["msg"]).removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden" and len(problem["loc"]) == 4 \
            and problem["loc"][2] == "changes":
        surface = data.get("surface")
        allowed = SURFACE_CHANGES.get(surface) if isinstance(surface, str) else None
        scope = (f"a {surface} variant may change: {', '.join(allowed)}" if allowed
                 else f"changes are: {', '.join(Changes.model_fields)}")
        message = f"unknown change ({scope})"
    elif problem["type"] == "extra_forbidden":
        message = "unknown key (a misspelling?)"
    elif problem["type"] == "missing":
        message = "required"
    elif problem["type"] == "literal_error":
        message = f"{problem['input']!r} is not one of {problem['ctx']['expected']}"
    if not path:  # a rule across fields: its lines carry their own paths
        return message.splitlines()
    return [f"{path}: {message}"]


def load_definition(path: str | Path) -> Definition:
    """Read and check one definition file; its `name` must equal the file's stem.

    Raises:
        InputError: the file is missing, not YAML, or breaks a rule (named by field).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such experiment definition")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") \
            from None
    definition = parse_definition(data, str(path))
    if definition.name != path.stem:
        raise InputError(f"{path}: name: {definition.name!r} must equal the file name "
                         f"{path.stem!r}")
    return definition


def load_definitions(folder: str | Path) -> dict[str, Definition]:
    """Every `*.yaml` definition in a folder, by name (an absent folder holds none).

    Raises:
        InputError: the problems of every file that breaks a rule, together.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found: dict[str, Definition] = {}
    problems = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            found[path.stem] = load_definition(path)
        except InputError as error:
            problems.append(str(error))
    if problems:
        raise InputError("\n".join(problems))
    return found


def shipped_definitions_dir() -> Path:
    """The source tree's `experiments/` folder (the ready definitions)."""
    return Path(__file__).resolve().parents[3] / "experiments"
