"""Data quality: the rules, their report (JSON and HTML), alerts, and the gate that blocks training."""

from tailor.quality.gate import QualityGateFailed, require_passing_gate, run_quality_gate
from tailor.quality.rules import QualityReport, RuleResult

__all__ = ["QualityGateFailed", "QualityReport", "RuleResult", "require_passing_gate",
           "run_quality_gate"]
