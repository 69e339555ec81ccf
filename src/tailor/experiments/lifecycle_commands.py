"""`tailor experiment create | start | status | stop`: write a definition, start, watch and
stop an experiment (`register` adds them to the `experiment` sub-app of
`tailor.experiments.commands`).

Reads the shop's definitions (`<home>/experiments/NAME.yaml`), the source tree's ready ones
(`experiments/`), the `experiment_state` table and the exposures so far in the event store
(the prediction log's answers; for a campaign experiment, the mails sent in
`campaign_sends`), and the MLflow registry (`start` checks every variant's model). Writes the
definition file (`create`) and the state and audit tables (`tailor.experiments.state`).

Like every command: `--home`, `--json` (one JSON object on stdout), exit 2 with one line
for bad input (a definition that breaks a rule, an illegal transition, a full layer), exit
3 with one line when the event store or the registry cannot be reached.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from tailor.errors import InputError
from tailor.experiments.command_support import (
    ACTOR_OPTION, HOME_OPTION, JSON_OPTION, NAME_ARGUMENT,
)
from tailor.experiments.command_support import actor as _actor
from tailor.experiments.command_support import emit as _emit
from tailor.experiments.command_support import job as _job

if TYPE_CHECKING:
    from tailor.config import Settings
    from tailor.experiments.state import ExperimentRecord


TEMPLATE = """\
# An A/B experiment. `tailor experiment start {name}` checks it and starts it.
name: {name}
hypothesis: >-
  What you expect the treatment to change, by how much and why (which part of the brief
  it tests).
owner: {owner}
surface: homepage            # homepage | also_bought | checkout_offer | campaign
layer: homepage              # experiments in one layer never share a visitor
traffic: 1.0                 # share of the layer's visitors this experiment takes
variants:                    # 2 to 8, weights summing to 1
  - name: control
    weight: 0.5
    changes: {{}}              # the default
  - name: treatment
    weight: 0.5
    changes: {{layout: carousel}}   # model, layout, diversity, personalization_min_purchases
control: control
metrics:
  primary: conversion        # conversion | revenue_per_visitor | aov | click_through | bounce_rate
  secondary: [aov, revenue_per_visitor, click_through, bounce_rate]
  attribution_window_hours: 24
guardrails:                  # a breach stops the experiment and reverts to the control
  - {{metric: fallback_rate, max_increase: 0.02}}
  - {{metric: bounce_rate, max_increase: 0.05}}
  - {{metric: latency_p99_ms, max: 100}}
minimum_sample: 1000         # visitors per variant before any decision
max_duration_days: 14
stopping: {{method: sequential, alpha: 0.05, power: 0.8, minimum_detectable_effect: 0.05}}
"""


# -- commands ------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    """Add create, start, status and stop to the `experiment` sub-app."""
    for name, command in (("create", create), ("start", start), ("status", status),
                          ("stop", stop)):
        app.command(name)(command)


def create(
    name: str = NAME_ARGUMENT,
    force: bool = typer.Option(False, "--force", help="Overwrite the home's definition file "
                                                      "(only while the experiment is a draft)."),
    challenger: Optional[str] = typer.Option(
        None, "--challenger", metavar="MODEL",
        help="Write a test of MODEL's challenger version against its champion (homepage, "
             "cross_sell or checkout), from the registry."),
    actor: Optional[str] = ACTOR_OPTION,
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Write <home>/experiments/NAME.yaml: a copy of the ready definition of that name, a
    champion-vs-challenger test (--challenger MODEL), or a template to fill in; the
    experiment is a draft until `start`."""
    with _job(home) as settings:
        from tailor.experiments.definition import (
            NAME_PATTERN, load_definition, shipped_definitions_dir,
        )
        from tailor.experiments.state import DRAFT, definition_path, open_store

        if not re.match(NAME_PATTERN, name):
            raise InputError(f"name: {name!r} must be lower-case letters, digits and - (at "
                             "most 63 characters, starting with a letter or digit)")
        target = definition_path(settings, name)
        with open_store(settings) as store:
            current = store.record(name)
            if current is not None and current.status != DRAFT:
                raise InputError(f"{name}: already {current.status}; a new experiment needs "
                                 "a new name")
            if target.exists() and not force:
                raise InputError(f"{target}: already exists; edit it, or pass --force to "
                                 "write it again")
            shipped = shipped_definitions_dir() / f"{name}.yaml"
            if challenger is not None:
                from tailor.experiments.challenger_template import challenger_definition

                text = challenger_definition(settings, name, challenger, _actor(actor))
            elif shipped.is_file():
                text = shipped.read_text(encoding="utf-8")
            else:
                text = TEMPLATE.format(name=name, owner=_actor(actor))
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            partial.write_text(text, encoding="utf-8")
            partial.replace(target)
            record = store.create(load_definition(target), _actor(actor))
    source = f"challenger:{challenger}" if challenger is not None else \
        str(shipped) if shipped.is_file() else "template"
    what = ("champion against challenger of the registry's tailor-" + str(challenger)
            if challenger is not None else f"a copy of {source}" if source != "template"
            else "a template: fill in the hypothesis, variants and metrics")
    _emit({"name": name, "path": str(target), "source": source, "status": record.status},
          as_json, f"{name}: wrote {target} ({what}); `tailor experiment start {name}` "
                   "starts it")


def start(
    name: str = NAME_ARGUMENT,
    reason: str = typer.Option("started", "--reason", help="Why, for the audit."),
    actor: Optional[str] = ACTOR_OPTION,
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Start an experiment: its definition must load, every variant's model alias or version
    exist in the registry and its layer have room; nothing is recorded otherwise."""
    with _job(home) as settings:
        from tailor.experiments.state import start as start_experiment

        record = start_experiment(settings, name, _actor(actor), reason)
    low = record.slice_start or 0.0
    pickup = "the next `tailor experiment campaign plan` assigns it" \
        if record.surface == "campaign" else \
        f"the server assigns it within {settings.experiments_refresh_seconds:g} s"
    _emit(_record_payload(record), as_json,
          f"{name}: running on {record.surface} (layer {record.layer}, visitors "
          f"[{low:g}, {low + record.traffic:g}) of it); {pickup}")


def stop(
    name: str = NAME_ARGUMENT,
    reason: str = typer.Option(..., "--reason", help="Why it stops (kept in the audit)."),
    actor: Optional[str] = ACTOR_OPTION,
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Stop a running experiment: from the server's next refresh its visitors get the
    defaults (its exposures stay in the prediction log for the analysis)."""
    with _job(home) as settings:
        from tailor.experiments.state import stop as stop_experiment

        record = stop_experiment(settings, name, _actor(actor), reason)
    _emit(_record_payload(record), as_json,
          f"{name}: stopped by {record.actor} ({record.reason})")


def status(
    name: Optional[str] = typer.Argument(None, help="One experiment (default: all)."),
    home: Optional[Path] = HOME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Every experiment (or one): status, variants with their weights and changes, and the
    exposures so far per variant (answers and customers in the prediction log; mails sent
    and customers for a campaign experiment)."""
    with _job(home) as settings:
        rows = _status_rows(settings, name)
    if as_json:
        _emit({"experiments": rows}, True, "")
        return
    _emit({}, False, _status_table(rows) if rows else "no experiments yet: "
          "`tailor experiment create NAME` writes one")


# -- status --------------------------------------------------------------------------------


def _record_payload(record: ExperimentRecord) -> dict[str, Any]:
    payload = record.to_dict()
    payload.pop("definition")
    return payload


def _status_rows(settings: Settings, name: Optional[str]) -> list[dict[str, Any]]:
    """One dict per experiment: its state row (or `file only` for a definition never
    recorded), its variants and exposures."""
    from tailor.experiments.definition import load_definition
    from tailor.experiments.state import experiments_dir, open_store

    folder = experiments_dir(settings)
    with open_store(settings) as store:
        records = {record.name: record for record in store.records()}
        files = {path.stem: path for path in sorted(folder.glob("*.yaml"))} \
            if folder.is_dir() else {}
        names = sorted(set(records) | set(files))
        if name is not None:
            if name not in names:
                raise InputError(f"{name}: no such experiment (no state and no "
                                 f"{folder / (name + '.yaml')})")
            names = [name]
        mailed = _campaign_exposures(settings, [record.name for record in records.values()
                                                if record.surface == "campaign"])
        rows = []
        for each in names:
            record = records.get(each)
            exposures = {} if record is None else mailed[each] if each in mailed \
                else store.exposures(each)
            rows.append(_status_row(each, record, files.get(each), exposures,
                                    load_definition))
    return rows


def _campaign_exposures(settings: Settings, names: list[str]) -> dict[str, dict[str, dict]]:
    """Per campaign experiment and variant: mails sent (as `answers`) and customers mailed."""
    if not names:
        return {}
    from tailor.events.campaign_store import open_campaign_store

    store = open_campaign_store(settings.event_store_url)
    try:
        return {name: {variant: {"answers": counts["mails"], "customers": counts["customers"]}
                       for variant, counts in store.exposure_counts(name).items()}
                for name in names}
    finally:
        store.close()


def _status_row(name: str, record: ExperimentRecord | None, path: Path | None,
                exposures: dict[str, dict[str, int]], load: Any) -> dict[str, Any]:
    file_problem, file_sha = None, None
    definition = None
    if path is not None:
        try:
            definition = load(path)
            file_sha = definition.sha256()
        except InputError as error:
            file_problem = str(error)
    if record is not None:
        definition = record.definition()
    row: dict[str, Any] = {"name": name, "status": record.status if record else "file only",
                           "file": str(path) if path else None, "file_problem": file_problem}
    if record is not None:
        row.update(_record_payload(record))
        row["definition_changed"] = file_sha is not None and file_sha != record.definition_sha256
        row["days_running"] = _days_between(record.started_at, record.stopped_at)
    if definition is not None:
        row.update(surface=definition.surface, layer=definition.layer,
                   traffic=definition.traffic, control=definition.control,
                   max_duration_days=definition.max_duration_days,
                   minimum_sample=definition.minimum_sample,
                   primary_metric=definition.metrics.primary,
                   variants=[{"name": variant.name, "weight": variant.weight,
                              "changes": variant.changes.set(),
                              "answers": exposures.get(variant.name, {}).get("answers", 0),
                              "customers": exposures.get(variant.name, {}).get("customers", 0)}
                             for variant in definition.variants])
    return row


def _days_between(start: str | None, end: str | None) -> float | None:
    if start is None:
        return None
    finish = datetime.fromisoformat(end) if end else datetime.now(timezone.utc)
    return round((finish - datetime.fromisoformat(start)).total_seconds() / 86_400, 2)


def _status_table(rows: list[dict[str, Any]]) -> Any:
    """One block per experiment: a row per variant, the experiment's name, status, surface
    and layer, days and what it changes down the first column (fits 80 columns)."""
    from rich.table import Table

    table = Table(title="experiments", title_justify="left", show_lines=False)
    table.add_column("experiment", overflow="fold")
    table.add_column("variant", overflow="fold")
    table.add_column("weight", justify="right")
    table.add_column("serves", overflow="fold")
    table.add_column("answers / customers", justify="right")
    for row in rows:
        lines = _block(row)
        for index, line in enumerate(lines):
            table.add_row(*line, end_section=index == len(lines) - 1)
    return table


def _block(row: dict[str, Any]) -> list[tuple[str, ...]]:
    """The rows of one experiment: its facts down the first column, a variant per row."""
    variants = row.get("variants") or []
    keys = sorted({key for variant in variants for key in variant["changes"]})
    info = [row["name"], row["status"] + (f" ({row['winner']})" if row.get("winner") else "")]
    info += [note for flag, note in (("definition_changed", "file edited since start"),
                                     ("file_problem", "file has errors")) if row.get(flag)]
    if row.get("surface"):
        info.append(f"{row['surface']} / {row['layer']}")
    days, limit = row.get("days_running"), row.get("max_duration_days")
    if days is not None and limit:
        info.append(f"day {days:g} of {limit:g}")
    if keys:
        info.append("sets " + ", ".join(keys))
    if row.get("surface") == "campaign":
        info.append("answers: mails sent")
    cells = [(variant["name"], f"{variant['weight']:.1%}",
              ", ".join(str(variant["changes"][key]) for key in keys
                        if key in variant["changes"]) or "(default)",
              f"{variant['answers']:,} / {variant['customers']:,}") for variant in variants]
    height = max(len(info), len(cells))
    info += [""] * (height - len(info))
    cells += [("", "", "", "")] * (height - len(cells))
    return [(fact, *cell) for fact, cell in zip(info, cells)]
