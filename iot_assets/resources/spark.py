"""The Spark resource: one SparkSession per run process, with Delta and s3a configured.

Runs use the in-process executor, so every step of a run shares this session and its JVM.
The master is a setting (`local[*]` by default); nothing else changes for a cluster.
"""

from __future__ import annotations

import os
import sys
import threading

from dagster import Backoff, ConfigurableResource, InitResourceContext, RetryPolicy
from pydantic import PrivateAttr
from pyspark.sql import SparkSession

from iot_assets import settings

# Versions pinned together: Delta for Spark 4.2 (Scala 2.13), and hadoop-aws matching the Hadoop
# 3.5.0 client that pyspark 4.2.0 ships, with the AWS SDK v2 bundle and analytics accelerator
# versions that hadoop-aws 3.5.0 declares (hadoop-project 3.5.0: aws-java-sdk-v2 2.35.4,
# analyticsaccelerator-s3 1.3.1).
# The Python package is delta-spark 4.4.1, but its jar delta-spark_4.2_2.13:4.4.1 is not on Maven
# Central (404; the newest published build for Spark 4.2 is 4.4.0). 4.4.x share one protocol and
# Python API, so the 4.4.0 jar serves; bump this when 4.4.1 is published.
DELTA_JAR_VERSION = "4.4.0"
SPARK_PACKAGES = (
    f"io.delta:delta-spark_4.2_2.13:{DELTA_JAR_VERSION}",
    "org.apache.hadoop:hadoop-aws:3.5.0",
    "software.amazon.awssdk:bundle:2.35.4",
    "software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3:1.3.1",
    # The JDBC driver of the PostgreSQL historian source (IOT_RAW_SOURCE=historian).
    "org.postgresql:postgresql:42.7.14",
)

# Transitive dependencies of the packages above that pyspark already ships in a newer version
# (Hadoop 3.5.0 client, Parquet, Jackson, logging, codecs). Leaving them out keeps one copy of
# each class on the classpath and shortens a session's start.
SPARK_EXCLUDES = (
    "org.apache.hadoop:hadoop-client-api",
    "org.apache.hadoop:hadoop-client-runtime",
    "org.apache.parquet:parquet-column",
    "org.apache.parquet:parquet-common",
    "org.apache.parquet:parquet-encoding",
    "org.apache.parquet:parquet-format-structures",
    "org.apache.parquet:parquet-hadoop",
    "org.apache.parquet:parquet-jackson",
    "com.fasterxml.jackson.core:jackson-annotations",
    "com.fasterxml.jackson.core:jackson-core",
    "com.fasterxml.jackson.core:jackson-databind",
    "com.fasterxml.jackson.datatype:jackson-datatype-jdk8",
    "org.apache.logging.log4j:log4j-api",
    "org.apache.logging.log4j:log4j-core",
    "org.apache.logging.log4j:log4j-slf4j2-impl",
    "org.slf4j:slf4j-api",
    "org.xerial.snappy:snappy-java",
    "com.github.luben:zstd-jni",
    "io.airlift:aircompressor",
    "org.roaringbitmap:RoaringBitmap",
    "org.roaringbitmap:shims",
    "commons-logging:commons-logging",
)

# Delta's S3 log stores. `s3` (S3SingleDriverLogStore) is safe for one writing driver at a time,
# which the `delta_lake_writers` pool enforces; `dynamodb` commits through a DynamoDB table with a
# conditional put, so several drivers may write one table (deployments/production/README.md).
LOG_STORES = {"s3": "io.delta.storage.S3SingleDriverLogStore", "dynamodb": "io.delta.storage.S3DynamoDBLogStore"}
DYNAMODB_LOG_STORE_PACKAGE = f"io.delta:delta-storage-s3-dynamodb:{DELTA_JAR_VERSION}"

_lock = threading.Lock()

# Every Spark asset step retries: a write that fails (S3 unreachable, executor lost) commits nothing
# to its Delta table, and each write replaces its whole window, so running the step again is safe.
SPARK_RETRY_POLICY = RetryPolicy(
    max_retries=int(settings.get("IOT_SPARK_STEP_RETRIES")),
    delay=float(settings.get("IOT_SPARK_STEP_RETRY_DELAY_SECONDS")),
    backoff=Backoff.EXPONENTIAL,
)


def spark_conf(
    master: str,
    endpoint: str | None,
    region: str,
    shuffle_partitions: int,
    driver_memory: str,
    extra_packages: str = "",
    python: str = "",
    log_store: str = "s3",
    dynamodb_table: str = "delta_log",
) -> dict[str, str]:
    """The full Spark configuration; a pure function so tests and deployments can read it."""
    if log_store not in LOG_STORES:
        raise ValueError(f"IOT_DELTA_LOG_STORE must be one of {sorted(LOG_STORES)}; got {log_store!r}")
    packages = list(SPARK_PACKAGES) + [p.strip() for p in extra_packages.split(",") if p.strip()]
    if log_store == "dynamodb" and DYNAMODB_LOG_STORE_PACKAGE not in packages:
        packages.append(DYNAMODB_LOG_STORE_PACKAGE)
    conf = {
        # `submit`: keep the master that spark-submit chose (EMR, YARN, Kubernetes cluster mode).
        **({} if master == "submit" else {"spark.master": master}),
        "spark.app.name": "iot_assets",
        "spark.jars.packages": ",".join(packages),
        "spark.jars.excludes": ",".join(SPARK_EXCLUDES),
        "spark.driver.memory": driver_memory,
        # Python workers (grouped model training) need this project's packages.
        "spark.pyspark.python": python or sys.executable,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.adaptive.skewJoin.enabled": "true",
        # Delta replays its log with this many tasks; its default (50) makes every snapshot of a
        # small table a 50-task job.
        "spark.databricks.delta.snapshotPartitions": "2",
        # A commit's checksum file (.crc) costs an extra S3 write and a state computation on every
        # commit. Readers replay the log without it.
        "spark.databricks.delta.writeChecksumFile.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.endpoint.region": region,
        "spark.hadoop.fs.s3a.fast.upload": "true",
        "spark.hadoop.fs.s3a.attempts.maximum": "3",
        "spark.hadoop.fs.s3a.retry.limit": "3",
        "spark.hadoop.fs.s3a.connection.timeout": "30s",
        "spark.hadoop.fs.s3a.connection.establish.timeout": "15s",
        "spark.delta.logStore.s3a.impl": LOG_STORES[log_store],
    }
    if master != "submit":
        # Bronze's parse compiles (whole-stage codegen) to one Java method larger than HotSpot's
        # 8,000-byte limit for JIT compilation, so it ran in the bytecode interpreter. These JVMs
        # are started here; under spark-submit the cluster's own options are left as they are.
        jit = "-XX:-DontCompileHugeMethods"
        conf.update({"spark.driver.extraJavaOptions": jit, "spark.executor.extraJavaOptions": jit})
    if log_store == "dynamodb":
        conf.update(
            {
                "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName": dynamodb_table,
                "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region": region,
            }
        )
    if endpoint:
        local = endpoint.startswith("http://")
        conf.update(
            {
                "spark.hadoop.fs.s3a.endpoint": endpoint,
                "spark.hadoop.fs.s3a.path.style.access": "true",
                "spark.hadoop.fs.s3a.connection.ssl.enabled": "false" if local else "true",
                # Emulators accept any key; the chain below still prefers real credentials if set.
                "spark.hadoop.fs.s3a.aws.credentials.provider": (
                    "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider,"
                    "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"
                ),
            }
        )
    return conf


# The session settings a Connect client sets on its own session. Everything else (packages, the Delta
# extension, s3a, memory) is fixed when the server starts; see `connect_server_conf`.
SESSION_CONF = (
    "spark.sql.session.timeZone",
    "spark.sql.shuffle.partitions",
    "spark.sql.adaptive.enabled",
    "spark.sql.adaptive.coalescePartitions.enabled",
    "spark.sql.adaptive.skewJoin.enabled",
    "spark.databricks.delta.snapshotPartitions",
    "spark.databricks.delta.writeChecksumFile.enabled",
)
# Without these the results would differ, so a server that refuses them (and holds another value)
# is refused in turn; the others only tune speed, and a managed server may keep its own.
REQUIRED_SESSION_CONF = ("spark.sql.session.timeZone",)


class SparkResource(ConfigurableResource):
    """A SparkSession with Delta Lake and s3a, created once per process on first use.

    With `remote` (IOT_SPARK_REMOTE, `sc://...`) it is a Spark Connect session: no JVM in this
    process, and the server brings Delta, s3a and the cluster."""

    master: str = "local[*]"
    remote: str = ""
    endpoint_url: str = settings.LOCAL_ENDPOINT
    region: str = "us-east-1"
    shuffle_partitions: int = 8
    driver_memory: str = "2g"
    extra_packages: str = ""
    python: str = ""
    log_store: str = "s3"
    dynamodb_table: str = "delta_log"

    _session: SparkSession | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._session = None

    def conf(self) -> dict[str, str]:
        return spark_conf(
            self.master,
            settings.endpoint_url(self.endpoint_url),
            self.region,
            self.shuffle_partitions,
            self.driver_memory,
            self.extra_packages,
            self.python,
            self.log_store,
            self.dynamodb_table,
        )

    @property
    def session(self) -> SparkSession:
        if self._session is None:
            if self.remote:
                self._session = get_or_create_remote_session(self.remote, self.conf())
                ship_package(self._session)
            else:
                self._session = get_or_create_session(self.conf())
                if not self.master.startswith("local"):
                    ship_package(self._session)
        return self._session


def is_connect(session: SparkSession) -> bool:
    """Whether `session` is a Spark Connect client session (no SparkContext, no RDDs, no JVM)."""
    return type(session).__module__.startswith("pyspark.sql.connect")


def parallelism(session: SparkSession) -> int:
    """How many tasks keep every core busy: the SparkContext's default parallelism, or, over Spark
    Connect, which has no SparkContext, `spark.default.parallelism` if the server sets it and
    else the shuffle partitions."""
    if not is_connect(session):
        return session.sparkContext.defaultParallelism  # classic only, guarded above
    value = session.conf.get("spark.default.parallelism", None)
    return int(value or session.conf.get("spark.sql.shuffle.partitions"))


_shipped: dict[str, str] = {}  # Spark application (classic) or Connect session id -> the zip it has


def ship_package(session: SparkSession) -> str:
    """Send this package's code to the executors of a cluster, for the Python UDFs that import it
    (grouped model training), so executors need only the third-party dependencies; this is
    dagster-pyspark's `build_pyspark_zip`. Over Spark Connect the zip is a session artifact
    (`addArtifacts`). Once per Spark application or Connect session; returns the zip's path."""
    key = session.session_id if is_connect(session) else session.sparkContext.applicationId
    with _lock:
        if key not in _shipped:
            _shipped[key] = _ship(session)
        return _shipped[key]


def _ship(session: SparkSession) -> str:
    import re
    import tempfile
    from pathlib import Path

    from dagster_pyspark.utils import DEFAULT_EXCLUDE, build_pyspark_zip

    package = Path(__file__).resolve().parents[1]
    target = Path(tempfile.mkdtemp(prefix="iot-assets-pyfiles-")) / "iot_assets.zip"
    # Archive the package folder as `iot_assets/...`: everything else under its parent is left out.
    build_pyspark_zip(
        str(target),
        str(package.parent),
        exclude=[*DEFAULT_EXCLUDE, rf"^(?!{re.escape(str(package))}{re.escape(os.sep)})"],
    )
    if is_connect(session):
        session.addArtifacts(str(target), pyfile=True)
    else:
        session.sparkContext.addPyFile(str(target))
    return str(target)


def get_or_create_session(conf: dict[str, str]) -> SparkSession:
    """Return the process's SparkSession, starting it with `conf` if none is running."""
    from iot_assets.resources.aws import local_credentials

    with _lock:
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        builder = SparkSession.builder
        for key, value in conf.items():
            builder = builder.config(key, value)
        # PySpark reads the worker Python from the environment, not from spark.pyspark.python.
        os.environ.setdefault("PYSPARK_PYTHON", conf["spark.pyspark.python"])
        creds = local_credentials(conf.get("spark.hadoop.fs.s3a.endpoint"))
        if creds:
            builder = builder.config("spark.hadoop.fs.s3a.access.key", creds[0])
            builder = builder.config("spark.hadoop.fs.s3a.secret.key", creds[1])
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("WARN")
        package_jars_off_python_path(session.sparkContext)
        return session


def package_jars_off_python_path(sc) -> list[str]:
    """Take the jars of `spark.jars.packages` off the Python path of this process and of its
    Python workers; returns the file names taken off.

    spark-submit lists every resolved package jar in `spark.submit.pyFiles` of a PySpark
    application, in case one holds Python code, and PySpark puts each on `sys.path` and on every
    Python worker's path. These hold JVM code only: the project's Python code and dependencies
    are installed packages. On the path they are costly: the first `importlib.metadata` lookup
    of a process (typeguard, which pandera imports, makes one) reads the directory of every
    archive on it, the AWS SDK bundle's 686 MB among them: 3.8 s in a driver, 4.45 s in a fresh
    Python worker. The pipeline's own steps make no such lookup after the session starts (an
    A/B of run processes showed no change); a UDF or library that does would pay it. Other
    entries (the package zip shipped to a cluster, a user's own `.zip` or `.egg`) stay."""
    includes = getattr(sc, "_python_includes", None)
    if not includes:
        return []
    from pyspark import SparkFiles

    jars = [name for name in includes if name.lower().endswith(".jar")]
    includes[:] = [name for name in includes if name not in jars]
    paths = {os.path.join(SparkFiles.getRootDirectory(), name) for name in jars}
    sys.path[:] = [p for p in sys.path if p not in paths]
    return jars


def redact_remote(url: str) -> str:
    """A Connect URL for messages: its parameters (`;token=...`) may hold a secret."""
    return url.split(";", 1)[0] + (";..." if ";" in url else "")


def get_or_create_remote_session(url: str, conf: dict[str, str]) -> SparkSession:
    """A Spark Connect session to `url`, with this project's session settings (`SESSION_CONF`).

    A process holds either Connect sessions or a classic one: PySpark switches its functions to
    Connect for the whole process once a Connect session exists."""
    from pyspark.errors import PySparkException

    if not url.startswith("sc://"):
        raise ValueError(f"IOT_SPARK_REMOTE must be a Spark Connect URL (sc://host:port); got {redact_remote(url)!r}")
    with _lock:
        session = SparkSession.builder.remote(url).getOrCreate()
        for key in SESSION_CONF:
            try:
                session.conf.set(key, conf[key])
            except PySparkException as e:
                if key in REQUIRED_SESSION_CONF and session.conf.get(key, None) != conf[key]:
                    raise RuntimeError(
                        f"the Spark Connect server at {redact_remote(url)} refused {key}={conf[key]}, "
                        "which the pipeline's results depend on; set it on the server"
                    ) from e
        return session
