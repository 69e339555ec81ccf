"""The job table: which `tailor` command runs when.

Reads: the `[schedule]` settings (which jobs, the time zone, the hourly minute, the daily time,
the weekly day). Writes nothing. Each job is one CLI command; the scheduler, the cron lines and
the Kubernetes CronJobs all run exactly these commands at exactly these times, so the three
ways of running Tailor's jobs cannot drift apart.

| job           | when                                    | command                                |
|---------------|-----------------------------------------|----------------------------------------|
| export        | hourly at hourly_minute                 | tailor export --json                   |
| mail_flush    | hourly, 30 minutes after export         | tailor mail flush --json               |
| validate      | daily at daily_at                       | tailor validate --json                 |
| features      | daily, daily_at + 15 min                | tailor features --json                 |
| monitor       | daily, daily_at + 45 min                | tailor monitor --json                  |
| report        | daily, daily_at + 75 min                | tailor report --mail --json            |
| retention     | weekly on weekly_on, daily_at + 90 min  | tailor retention --json                |
| campaign_plan | weekly on weekly_on, daily_at + 105 min | tailor experiment campaign plan --json |
| campaign_send | hourly, 45 minutes after export         | tailor experiment campaign send --json |
| data_retention | daily, daily_at + 120 min              | tailor data-retention --apply --json   |
| experiment_guardrails | hourly, 15 min after export     | tailor experiment guardrails --json    |

The offsets leave each daily job room to finish before the next starts under cron or
Kubernetes, where jobs run independently; `tailor schedule` runs whatever is due in this
order, one after another, so there a late job simply delays the next. The campaign jobs do
nothing until `experiments.campaign_sender` is set; sending hourly lets a delayed variant's
discount mail go within the hour its day comes, and a send the SMTP server stopped resume.
data_retention deletes raw events older than `privacy.event_retention_days` (nothing while it
is 0), after the day's report, waiting for an hourly export that holds the lake's lock.
The guardrails run hourly so that a variant that hurts (fallbacks, errors, latency, bounce)
is stopped within the hour; an hour in which one was stopped ends with exit 1 (a gate).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import timedelta

from tailor.config import Settings

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CRON_WEEKDAY = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 0}
_PERIOD = {"hourly": timedelta(hours=1), "daily": timedelta(days=1),
           "weekly": timedelta(weeks=1)}


@dataclass(frozen=True)
class JobSpec:
    """What a job runs and how it is placed in its period."""

    command: tuple[str, ...]  # the arguments after `tailor`
    cadence: str  # hourly, daily or weekly
    offset_minutes: int  # after schedule.hourly_minute (hourly) or schedule.daily_at
    description: str


# In the order of tailor.config.SCHEDULE_JOBS (a test keeps the two equal).
SPECS: dict[str, JobSpec] = {
    "export": JobSpec(("export", "--json"), "hourly", 0,
                      "new events to the Parquet lake"),
    "mail_flush": JobSpec(("mail", "flush", "--json"), "hourly", 30,
                          "retry the mail waiting in the outbox"),
    "validate": JobSpec(("validate", "--json"), "daily", 0,
                        "the data-quality gate (alerts when it fails)"),
    "features": JobSpec(("features", "--json"), "daily", 15,
                        "features, feast apply, materialize the online store"),
    "monitor": JobSpec(("monitor", "--json"), "daily", 45,
                       "drift and accuracy; retrain, promote or roll back"),
    "report": JobSpec(("report", "--mail", "--json"), "daily", 75,
                      "the daily dashboard and report, mailed to the team"),
    "retention": JobSpec(("retention", "--json"), "weekly", 90,
                         "churn scores and the retention campaign list"),
    "campaign_plan": JobSpec(("experiment", "campaign", "plan", "--json"), "weekly", 105,
                             "the week's re-engagement mails to customers at risk"),
    "campaign_send": JobSpec(("experiment", "campaign", "send", "--json"), "hourly", 45,
                             "send the campaign mails that are due"),
    "data_retention": JobSpec(("data-retention", "--apply", "--json"), "daily", 120,
                              "delete raw events older than privacy.event_retention_days"),
    "experiment_guardrails": JobSpec(("experiment", "guardrails", "--json"), "hourly", 15,
                                     "stop a running experiment whose variant breaks a "
                                     "guardrail, and alert"),
}


@dataclass(frozen=True)
class Job:
    """One scheduled job: its name, command, cadence and time as cron fields.

    `program` replaces `tailor <command>` as what runs (tests run small scripts through the
    real scheduler with it); empty for every job of the table.
    """

    name: str
    command: tuple[str, ...]
    cadence: str
    minute: int
    hour: int | None = None  # None: every hour
    weekday: str | None = None  # mon..sun; None: every day
    description: str = ""
    program: tuple[str, ...] = ()

    @property
    def period(self) -> timedelta:
        return _PERIOD[self.cadence]

    @property
    def shell_command(self) -> str:
        """The command as an operator types it: `tailor export --json`."""
        return " ".join(("tailor", *self.command)) if not self.program else " ".join(self.program)

    @property
    def cron(self) -> str:
        """The five cron fields (weekday as a number, 0 = Sunday, as cron reads it)."""
        hour = "*" if self.hour is None else str(self.hour)
        weekday = "*" if self.weekday is None else str(_CRON_WEEKDAY[self.weekday])
        return f"{self.minute} {hour} * * {weekday}"

    def argv(self, settings: Settings) -> list[str]:
        """What the scheduler runs: this interpreter's `tailor` CLI with the home."""
        if self.program:
            return list(self.program)
        return [sys.executable, "-m", "tailor.cli", *self.command,
                "--home", str(settings.home_path.resolve())]


def job_table(settings: Settings) -> list[Job]:
    """The jobs `schedule.jobs` turns on, in the order a round runs them."""
    wanted = set(settings.schedule_jobs.split(","))
    return [_place(name, spec, settings) for name, spec in SPECS.items() if name in wanted]


def _place(name: str, spec: JobSpec, settings: Settings) -> Job:
    """Turn a spec's offset into cron fields for the configured times."""
    if spec.cadence == "hourly":
        return Job(name, spec.command, spec.cadence,
                   (settings.schedule_hourly_minute + spec.offset_minutes) % 60,
                   description=spec.description)
    hours, minutes = map(int, settings.schedule_daily_at.split(":"))
    start = hours * 60 + minutes + spec.offset_minutes
    days_later, minute_of_day = divmod(start, 24 * 60)
    weekday = None
    if spec.cadence == "weekly":
        weekday = WEEKDAYS[(WEEKDAYS.index(settings.schedule_weekly_on) + days_later) % 7]
    return Job(name, spec.command, spec.cadence, minute_of_day % 60, minute_of_day // 60,
               weekday, spec.description)
