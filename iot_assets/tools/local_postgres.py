"""A throwaway PostgreSQL on 127.0.0.1, started by `scripts/postgres_local.sh` (Debian's server
binaries, installed by `scripts/ensure_postgres.sh` when missing; no Docker).

PostgreSQL refuses to run as root, so as root the script runs the cluster as the `postgres` user.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres_local.sh"


@dataclass(frozen=True)
class LocalPostgres:
    host: str
    port: int
    user: str
    password: str
    db: str


def start(directory: str | Path, port: int, user: str, db: str, timeout: float = 900) -> LocalPostgres:
    """initdb `directory` (once), start the server on 127.0.0.1:`port`, create `db` owned by `user`."""
    directory = Path(directory).resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DAGSTER_POSTGRES_USER": user, "DAGSTER_POSTGRES_DB": db}
    done = subprocess.run(
        [str(SCRIPT), "start", str(directory), str(port)], capture_output=True, text=True, timeout=timeout, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"could not install or start PostgreSQL in {directory} on port {port}:\n{done.stderr}")
    values = dict(
        line.removeprefix("export ").split("=", 1) for line in done.stdout.splitlines() if line.startswith("export ")
    )
    return LocalPostgres(
        values["DAGSTER_POSTGRES_HOST"],
        int(values["DAGSTER_POSTGRES_PORT"]),
        values["DAGSTER_POSTGRES_USER"],
        values["DAGSTER_POSTGRES_PASSWORD"],
        values["DAGSTER_POSTGRES_DB"],
    )


def stop(directory: str | Path) -> None:
    subprocess.run([str(SCRIPT), "stop", str(Path(directory).resolve())], check=True, capture_output=True, timeout=120)
