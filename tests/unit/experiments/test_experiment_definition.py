"""Experiment definitions: the shipped four load, and every broken rule is an error that names
the file and the field path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from experiment_definitions import definition_data, make_definition, variants
from tailor.errors import InputError
from tailor.experiments.definition import (
    SURFACE_CHANGES, load_definition, load_definitions, parse_definition,
    shipped_definitions_dir,
)

BRIEF_EXPERIMENTS = {
    "homepage-layout": ("homepage", {"layout"}),
    "recommendation-diversity": ("homepage", {"diversity"}),
    "personalization-threshold": ("homepage", {"personalization_min_purchases"}),
    "discount-timing": ("campaign", {"discount_delay_days"}),
}


def error_of(**overrides) -> str:
    with pytest.raises(InputError) as raised:
        parse_definition(definition_data(**overrides), "defs/layout-test.yaml")
    return str(raised.value)


def test_the_four_ready_definitions_load_and_are_the_briefs_experiments() -> None:
    loaded = load_definitions(shipped_definitions_dir())
    assert set(loaded) == set(BRIEF_EXPERIMENTS)
    for name, (surface, keys) in BRIEF_EXPERIMENTS.items():
        definition = loaded[name]
        assert definition.surface == surface
        assert {key for variant in definition.variants for key in variant.changes.set()} == keys
        assert "brief" in definition.hypothesis and definition.owner
        assert definition.control == definition.variants[0].name


def test_the_ready_discount_timing_is_immediate_against_two_days_later() -> None:
    timing = load_definition(shipped_definitions_dir() / "discount-timing.yaml")
    assert [(v.name, v.changes.discount_delay_days) for v in timing.variants] == \
        [("immediate", 0), ("after-2-days", 2)]


def test_the_shipped_homepage_experiments_fit_their_layer_together() -> None:
    loaded = load_definitions(shipped_definitions_dir()).values()
    homepage = [d for d in loaded if d.surface == "homepage"]
    assert {d.layer for d in homepage} == {"homepage"}
    assert sum(d.traffic for d in homepage) == pytest.approx(1.0)


def test_weights_not_summing_to_one_name_the_field_and_the_sum() -> None:
    message = error_of(variants=variants(("a", 0.5, {}), ("b", 0.4, {})))
    assert message == ("defs/layout-test.yaml: variants: the weights sum to 0.9, they must "
                       "sum to 1 (0.5 + 0.4)")


def test_weights_off_by_rounding_only_are_accepted() -> None:
    third = make_definition(variants=variants(("a", 0.333334, {}), ("b", 0.333333, {}),
                                              ("c", 0.333333, {})))
    assert len(third.variants) == 3


def test_an_unknown_change_names_the_variant_and_what_the_surface_may_change() -> None:
    message = error_of(variants=variants(("a", 0.5, {}), ("b", 0.5, {"colour": "red"})))
    assert message.startswith("defs/layout-test.yaml: variants.1.changes.colour: unknown "
                              "change")
    assert ", ".join(SURFACE_CHANGES["homepage"]) in message


def test_a_change_of_another_surface_is_refused() -> None:
    message = error_of(variants=variants(("a", 0.5, {}), ("b", 0.5, {"discount_delay_days": 2})))
    assert "variants.1.changes.discount_delay_days: not a change of surface homepage" in message
    campaign = error_of(surface="campaign", layer="campaign",
                        variants=variants(("a", 0.5, {}), ("b", 0.5, {"layout": "grid"})))
    assert "variants.1.changes.layout: not a change of surface campaign" in campaign


def test_an_unknown_metric_is_named_with_the_known_ones() -> None:
    message = error_of(metrics={"primary": "clicks"})
    assert message.startswith("defs/layout-test.yaml: metrics.primary: 'clicks' is not one of")
    assert "'conversion'" in message
    guardrail = error_of(guardrails=[{"metric": "speed", "max": 1}])
    assert "guardrails.0.metric: 'speed' is not one of" in guardrail


def test_a_guardrail_only_metric_is_no_primary_metric_and_email_ctr_is_for_campaigns() -> None:
    assert "metrics.primary: 'fallback_rate' is not one of" in error_of(
        metrics={"primary": "fallback_rate"})
    assert "metrics.secondary.0: email_ctr is a campaign metric" in error_of(
        metrics={"primary": "conversion", "secondary": ["email_ctr"]})


def test_a_duplicate_variant_names_both_places() -> None:
    message = error_of(variants=variants(("same", 0.5, {}), ("same", 0.5, {})))
    assert "variants.1.name: duplicate variant 'same' (variant 0 has that name)" in message


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    message = error_of(owner="", variants=variants(("a", 0.5, {}), ("b", 0.6, {"size": 1})))
    lines = message.splitlines()
    assert any(line.startswith("defs/layout-test.yaml: owner:") for line in lines)
    assert any("variants.1.changes.size: unknown change" in line for line in lines)
    # The rules across variants are reported beside the field errors, not after their fix.
    assert "defs/layout-test.yaml: variants: the weights sum to 1.1, they must sum to 1 " \
           "(0.5 + 0.6)" in lines


def test_the_rules_across_fields_are_reported_beside_field_errors_once_each() -> None:
    """A file with a field error never reaches the model's rules across fields: they are
    judged on the raw values, so its author sees everything in one go."""
    message = error_of(ownr="x", control="nobody", metrics={"primary": "email_ctr"},
                       variants=variants(("a", 0.5, {"layout": "slider"}),
                                         ("a", 0.3, {"discount_delay_days": 2})))
    lines = [line.removeprefix("defs/layout-test.yaml: ") for line in message.splitlines()]
    assert lines[0] == "variants.0.changes.layout: 'slider' is not one of 'grid', " \
                       "'carousel' or 'hero_grid'"
    assert lines[1] == "ownr: unknown key (a misspelling?)"
    assert lines[2:] == [
        "variants.1.name: duplicate variant 'a' (variant 0 has that name)",
        "variants: the weights sum to 0.8, they must sum to 1 (0.5 + 0.3)",
        "variants.1.changes.discount_delay_days: not a change of surface homepage (it may "
        "change: model, layout, diversity, personalization_min_purchases)",
        "control: 'nobody' is not one of the variants (a, a)",
        "metrics.primary: email_ctr is a campaign metric, not one of surface homepage"]
    # The same rules on a file with no field error are each said once, as before.
    valid_fields = error_of(variants=variants(("a", 0.5, {}), ("a", 0.3, {})))
    assert valid_fields.splitlines() == [
        "defs/layout-test.yaml: variants.1.name: duplicate variant 'a' (variant 0 has that "
        "name)",
        "defs/layout-test.yaml: variants: the weights sum to 0.8, they must sum to 1 "
        "(0.5 + 0.3)"]


def test_values_of_the_wrong_type_are_left_to_their_field_errors() -> None:
    """No sum is made up from a weight that is no number, no surface rule from an unknown
    surface."""
    odd = error_of(owner="", surface="search",
                   variants=variants(("a", "half", {}), ("b", 0.6, {"size": 1}))).splitlines()
    assert any(line.startswith("defs/layout-test.yaml: variants.0.weight:") for line in odd)
    assert any(line.startswith("defs/layout-test.yaml: surface:") for line in odd)
    assert not any("weights sum" in line or "not a change of surface" in line for line in odd)


@pytest.mark.parametrize("overrides, field", [
    ({"traffic": 0}, "traffic"),
    ({"traffic": 1.5}, "traffic"),
    ({"variants": variants(("only", 1.0, {}))}, "variants"),
    ({"variants": variants(("a", 0.0, {}), ("b", 1.0, {}))}, "variants.0.weight"),
    ({"variants": variants(("A b", 0.5, {}), ("b", 0.5, {}))}, "variants.0.name"),
    ({"variants": variants(("a", 0.5, {}), ("b", 0.5, {"model": "no alias!"}))},
     "variants.1.changes.model"),
    ({"variants": variants(("a", 0.5, {}), ("b", 0.5, {"personalization_min_purchases": -1}))},
     "variants.1.changes.personalization_min_purchases"),
    ({"variants": variants(("a", 0.5, {}), ("b", 0.5, {"layout": "list"}))},
     "variants.1.changes.layout"),
    ({"control": "nobody"}, "control"),
    ({"guardrails": [{"metric": "bounce_rate"}]}, "guardrails.0"),
    ({"guardrails": [{"metric": "bounce_rate", "max": 1, "max_increase": 0.1}]}, "guardrails.0"),
    ({"stopping": {"method": "bayesian"}}, "stopping.method"),
    ({"minimum_sample": 0}, "minimum_sample"),
    ({"name": "Has Caps"}, "name"),
    ({"surface": "search"}, "surface"),
    ({"colour": "red"}, "colour"),
])
def test_each_broken_rule_names_its_field(overrides: dict, field: str) -> None:
    assert f"defs/layout-test.yaml: {field}: " in error_of(**overrides)


def test_a_missing_key_is_required() -> None:
    data = definition_data()
    del data["hypothesis"]
    with pytest.raises(InputError, match="x.yaml: hypothesis: required"):
        parse_definition(data, "x.yaml")


def test_defaults_salt_is_the_name_and_control_the_first_variant() -> None:
    definition = make_definition()
    assert (definition.salt, definition.control) == ("layout-test", "control")
    assert make_definition(salt="reshuffled").salt == "reshuffled"


def test_a_model_change_may_be_a_version_number() -> None:
    definition = make_definition(variants=variants(("a", 0.5, {"model": "champion"}),
                                                   ("b", 0.5, {"model": 3})))
    assert [v.changes.model for v in definition.variants] == ["champion", "3"]


def test_the_file_name_must_be_the_experiment_name(tmp_path: Path) -> None:
    path = tmp_path / "other-name.yaml"
    path.write_text(yaml.safe_dump(definition_data()))
    with pytest.raises(InputError, match=r"other-name.yaml: name: 'layout-test' must equal"):
        load_definition(path)


def test_broken_yaml_and_a_list_are_refused_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(InputError, match="broken.yaml: not valid YAML"):
        load_definition(broken)
    listed = tmp_path / "listed.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(InputError, match="listed.yaml: must hold a mapping"):
        load_definition(listed)


def test_a_folder_reports_every_bad_file(tmp_path: Path) -> None:
    (tmp_path / "layout-test.yaml").write_text(yaml.safe_dump(definition_data()))
    (tmp_path / "bad-one.yaml").write_text(yaml.safe_dump(definition_data(name="bad-one",
                                                                          traffic=2)))
    (tmp_path / "bad-two.yaml").write_text(yaml.safe_dump(definition_data(name="bad-two",
                                                                          owner="")))
    with pytest.raises(InputError) as raised:
        load_definitions(tmp_path)
    assert "bad-one.yaml: traffic:" in str(raised.value)
    assert "bad-two.yaml: owner:" in str(raised.value)


def test_the_hash_ignores_layout_and_comments_but_not_content(tmp_path: Path) -> None:
    compact = tmp_path / "layout-test.yaml"
    compact.write_text(yaml.safe_dump(definition_data()))
    first = load_definition(compact).sha256()
    compact.write_text("# a comment\n" + yaml.safe_dump(definition_data(), indent=4,
                                                       default_flow_style=True))
    assert load_definition(compact).sha256() == first
    compact.write_text(yaml.safe_dump(definition_data(traffic=0.5)))
    assert load_definition(compact).sha256() != first
