"""A definition that puts a model's challenger in front of visitors against its champion
(`tailor experiment create NAME --challenger MODEL`): how a version that training or the
monitoring loop registered becomes an experiment's variant, and then, through
`tailor experiment promote`, the champion.

Reads the MLflow registry (which versions `champion` and `challenger` of `tailor-<model>`
name now). Writes nothing: returns the YAML text, which `create` writes to the home.

The challenger variant names the challenger's version number, not the alias: a retrain that
moves `challenger` during the experiment must not change what the variant serves (its
exposures would mix two models), and the promotion then makes exactly the tested version
champion. The control serves `champion`, as every visitor outside the experiment does.
"""

from __future__ import annotations

from tailor.config import Settings
from tailor.errors import InputError

# The surface each model serves, and what its experiment is judged by.
MODEL_SURFACES: dict[str, str] = {"homepage": "homepage", "cross_sell": "also_bought",
                                  "checkout": "checkout_offer"}
_METRICS: dict[str, tuple[str, str]] = {
    "homepage": ("conversion", "[click_through, revenue_per_visitor, aov, bounce_rate]"),
    "also_bought": ("click_through", "[conversion, aov, revenue_per_visitor]"),
    "checkout_offer": ("conversion", "[aov, revenue_per_visitor]"),
}

LATENCY_P99_LIMIT_MS = 100  # as the ready homepage definitions: the pipeline's share of 200 ms

TEMPLATE = """\
# {registered} challenger v{challenger} against champion v{champion}, written by
# `tailor experiment create {name} --challenger {model}`. The challenger is pinned by its
# version number: a retrain that moves the `challenger` alias does not change this test.
# `tailor experiment promote {name}` makes v{challenger} champion when it wins.
name: {name}
hypothesis: >-
  {registered} v{challenger} ({challenger_note}) serves customers better than the
  champion v{champion}: it raises {primary} on {surface} without raising fallbacks, errors
  or latency.
owner: {owner}
surface: {surface}
layer: {layer}
traffic: 1.0                 # the whole layer: lower it to share the layer with other tests
variants:
  - name: champion
    weight: 0.5
    changes: {{model: champion}}
  - name: challenger
    weight: 0.5
    changes: {{model: "{challenger}"}}
control: champion
metrics:
  primary: {primary}
  secondary: {secondary}
  attribution_window_hours: 24
guardrails:
  - {{metric: fallback_rate, max_increase: 0.02}}
  - {{metric: error_rate, max_increase: 0.01}}
  - {{metric: latency_p99_ms, max: {latency_ms}}}{bounce}
minimum_sample: 2000
max_duration_days: 14
stopping: {{method: sequential, alpha: 0.05, power: 0.8, minimum_detectable_effect: 0.05}}
"""


def challenger_definition(settings: Settings, name: str, model: str, owner: str) -> str:
    """The YAML text of a champion-vs-challenger experiment on `model`'s surface.

    Raises:
        InputError: an unknown model, no registry, or no champion or challenger version.
    """
    if model not in MODEL_SURFACES:
        raise InputError(f"--challenger: {model!r} is not a served model (one of "
                         f"{', '.join(MODEL_SURFACES)})")
    from mlflow.tracking import MlflowClient

    from tailor.registry.tracking import CHALLENGER, CHAMPION, tracking_store_exists, use_tracking
    from tailor.training.registration import alias_version

    registered = f"tailor-{model}"
    if not tracking_store_exists(settings):
        raise InputError(f"--challenger: no model registry yet at {settings.tracking_uri}: "
                         f"run `tailor train {model}` first")
    client = MlflowClient(use_tracking(settings))
    champion = alias_version(client, registered, CHAMPION)
    challenger = alias_version(client, registered, CHALLENGER)
    if champion is None or challenger is None:
        missing = "champion" if champion is None else "challenger"
        raise InputError(f"--challenger: {registered} has no {missing} alias: train it first "
                         "(every new version is the challenger)")
    if str(champion.version) == str(challenger.version):
        raise InputError(f"--challenger: {registered} v{champion.version} is both champion and "
                         "challenger: there is nothing to compare until a new version is "
                         "trained")
    surface = MODEL_SURFACES[model]
    primary, secondary = _METRICS[surface]
    return TEMPLATE.format(
        name=name, model=model, registered=registered, owner=owner, surface=surface,
        layer=surface.replace("_", "-"), champion=champion.version,
        challenger=challenger.version,
        challenger_note=str(challenger.tags.get("promotion", "the newest version"))[:200]
        .replace("\n", " ").replace(":", " -"),
        primary=primary, secondary=secondary, latency_ms=LATENCY_P99_LIMIT_MS,
        bounce="\n  - {metric: bounce_rate, max_increase: 0.05}" if surface == "homepage"
        else "")
