"""A Spark Connect server for the local stack: Spark's own `SparkConnectServer` from the pyspark
distribution, with Delta, s3a and the local S3 configured the way a run's own session is, on
127.0.0.1.

Runs reach it with `IOT_SPARK_REMOTE=sc://127.0.0.1:<port>` and then start no JVM of their own:
the server holds the JVM, the jars and the S3 credentials. It is what a self-hosted Connect server
or Databricks provides (deployments/connect/README.md); `iot-assets connect-server` runs it in the
foreground, and the Connect end-to-end test starts one.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pyspark

from iot_assets.resources.aws import local_credentials
from iot_assets.tools.local_aws import LOOPBACK, is_listening

SPARK_HOME = Path(pyspark.__file__).parent
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def server_conf(conf: dict[str, str], port: int) -> dict[str, str]:
    """The server's Spark configuration: a run's own (`SparkResource.conf`), bound to loopback."""
    return {
        **conf,
        "spark.app.name": "iot_assets Spark Connect server",
        "spark.connect.grpc.binding.address": LOOPBACK,
        "spark.connect.grpc.binding.port": str(port),
        # At INFO, Spark logs every request of every session: 25 MB in make dev's first 10 minutes.
        "spark.log.level": "WARN",
    }


@dataclass
class ConnectServer:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"sc://{LOOPBACK}:{self.port}"

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()


def start(conf: dict[str, str], port: int, log: Path, timeout: float = 240) -> ConnectServer:
    """Start the server in its own process group and wait until it accepts connections."""
    conf = server_conf(conf, port)
    if is_listening(LOOPBACK, port):
        raise RuntimeError(f"{LOOPBACK}:{port} is already in use; choose another port")
    args = [str(SPARK_HOME / "bin/spark-submit"), "--class", SERVER_CLASS]
    args += ["--driver-memory", conf.pop("spark.driver.memory")]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    env.update(SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP=LOOPBACK, PYSPARK_PYTHON=conf["spark.pyspark.python"])
    # The emulator's placeholder keys reach the server's credential chain through its environment,
    # never its command line; against real S3 the server uses its own chain (instance role, ...).
    creds = local_credentials(conf.get("spark.hadoop.fs.s3a.endpoint"))
    if creds:
        env.update(AWS_ACCESS_KEY_ID=creds[0], AWS_SECRET_ACCESS_KEY=creds[1])
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = ConnectServer(process, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Spark Connect server exited with {process.returncode}; see {log}")
        if is_listening(LOOPBACK, port):
            return server
        time.sleep(1)
    server.stop()
    raise TimeoutError(f"the Spark Connect server did not listen on {LOOPBACK}:{port} in {timeout:.0f} s; see {log}")
