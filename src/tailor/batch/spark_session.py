"""The Spark session Tailor's batch jobs share, built from the `features.spark_*` settings.

Reads the settings; starts (or reuses) the JVM and its `SparkSession`. pyspark is an
optional extra (`pip install 'tailor[spark]'`) and needs a Java runtime (17 or newer, e.g.
Debian's `default-jre-headless`); both are checked here, with a message naming what to
install. One session per process: a second call returns the running one (its master and
memory stay those it was started with). The JVM writes its notices (start-up banners, log4j
warnings) to `<home>/logs/spark.log`, not between Tailor's own output: it is started with
this process's standard error pointing there (`_jvm_output_to`), and keeps it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from tailor.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

APP_NAME = "tailor"


def require_spark() -> None:
    """Raise when pyspark or Java is missing.

    Raises:
        RuntimeError: what is missing and how to install it.
    """
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise RuntimeError("features.engine = spark needs pyspark: install the extra with "
                           "pip install 'tailor[spark]'") from None
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and os.path.exists(
            os.path.join(java_home, "bin", "java"))):
        raise RuntimeError("features.engine = spark needs a Java runtime (17 or newer): "
                           "apt-get install default-jre-headless, or set JAVA_HOME")


def spark_configuration(settings: Settings) -> dict[str, str]:
    """The session's configuration: the settings' master, memory and shuffle partitions, UTC
    everywhere, no web UI, and Parquet timestamps as DuckDB and pandas write them."""
    return {
        "spark.master": settings.features_spark_master,
        "spark.app.name": APP_NAME,
        "spark.driver.memory": settings.features_spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.features_spark_shuffle_partitions),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


def spark_session(settings: Settings) -> SparkSession:
    """The running session, or a new one configured from the settings.

    Raises:
        RuntimeError: pyspark or Java is missing.
    """
    require_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Python workers (the scoring UDF) run this interpreter, which has Tailor and its models;
    # pyspark reads the variable only, when the context starts.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in spark_configuration(settings).items():
        builder = builder.config(key, value)
    jvm_log = settings.home_path / "logs" / "spark.log"
    with _jvm_output_to(jvm_log):
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    log.info("spark: session on %s (driver memory %s), the JVM's own output in %s",
             settings.features_spark_master, settings.features_spark_driver_memory, jvm_log)
    return session


@contextmanager
def _jvm_output_to(path: Path) -> Iterator[None]:
    """While the block runs, this process's standard error (file descriptor 2) is `path`
    (appended), so the JVM pyspark starts inherits it; restored afterwards. Where `path`
    cannot be written the JVM writes to the terminal as before."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("ab")
    except OSError as error:
        log.warning("spark: the JVM's output stays on the terminal (%s: %s)", path, error)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with handle:
            os.dup2(handle.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
