"""A temporary home with a real MLflow registry (SQLite) holding tiny versions of
tailor-homepage (a folder each, no training), and given experiment analyses: for tests of
what moves the champion alias (experiment promotion, monitoring through an experiment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from tailor.config import Settings, load_settings
from tailor.registry.tracking import use_tracking

MODEL = "tailor-homepage"


@dataclass
class FakeVerdict:
    decision: str
    winner: str | None
    reasons: tuple[str, ...] = ()


@dataclass
class FakeAnalysis:
    """What promotion reads of `tailor.experiments.analysis.ExperimentAnalysis`."""

    verdict: FakeVerdict
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": {"decision": self.verdict.decision, "winner": self.verdict.winner,
                            "reasons": list(self.verdict.reasons)}, **self.extra}


def analysis_with(winner: str | None, decision: str | None = None) -> Any:
    """An `analyze` function whose verdict names `winner` (None: no winner, or `decision`)."""
    verdict = FakeVerdict(decision or ("winner" if winner else "no_winner"), winner,
                          () if winner else ("no metric differs significantly",))
    return lambda settings, name: FakeAnalysis(verdict, {"experiment": name})


def registry_settings(tailor_home: Path) -> Settings:
    """The settings of `tailor_home` (embedded defaults, no environment) with its registry
    named explicitly, `<home>/mlflow.db` (the folder made): MLFLOW_TRACKING_URI in the
    caller's shell must not leak in."""
    settings = load_settings(home=tailor_home, env={}).replace(
        mlflow_tracking_uri=f"sqlite:///{tailor_home.resolve() / 'mlflow.db'}")
    settings.home_path.mkdir(parents=True, exist_ok=True)
    return settings


def register(settings: Settings, count: int, aliases: dict[str, int]) -> MlflowClient:
    """`count` versions of tailor-homepage (a tiny folder each, no run) and the aliases."""
    client = MlflowClient(use_tracking(settings))
    client.create_registered_model(MODEL)
    for index in range(count):
        folder = settings.home_path / "models" / str(index)
        folder.mkdir(parents=True)
        (folder / "MLmodel").write_text("flavors: {}\n")
        client.create_model_version(MODEL, str(folder))
    for alias, version in aliases.items():
        client.set_registered_model_alias(MODEL, alias, str(version))
    return client


def champion(client: MlflowClient) -> str:
    return str(client.get_model_version_by_alias(MODEL, "champion").version)
