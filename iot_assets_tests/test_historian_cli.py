"""`iot-assets historian server` and `historian seed`: a local historian from nothing, no Docker."""

import os
import shutil
import socket
import tempfile

import psycopg2
import pytest

from iot_assets.lib import partitions
from iot_assets.resources.historian import FIELDS
from iot_assets.tools import cli

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_and_seed_load_the_fleet_into_monthly_tables(capsys, monkeypatch):
    root = tempfile.mkdtemp(prefix="iot-historian-")
    os.chmod(root, 0o755)  # as root, the server runs as `postgres`, which must reach its directory
    data = f"{root}/pg"
    try:
        assert cli.main(["historian", "server", "start", "--dir", data, "--port", str(_free_port())]) == 0
        exports = dict(line.removeprefix("export ").split("=", 1) for line in capsys.readouterr().out.splitlines())
        assert set(exports) == {"IOT_HISTORIAN_JDBC_URL", "IOT_HISTORIAN_USER", "IOT_HISTORIAN_PASSWORD"}
        for key, value in exports.items():
            monkeypatch.setenv(key, value)
        assert (
            cli.main(
                ["historian", "seed", "--months", "2", "--devices", "2", "--rate", "4", "--bad-quality-rate", "0.01"]
            )
            == 0
        )
        out = capsys.readouterr().out
        assert exports["IOT_HISTORIAN_PASSWORD"] not in out
        now = partitions.hour_of(partitions.utc_now())
        start = (now.replace(day=1, hour=0) - partitions.HOUR).replace(day=1, hour=0)
        hours = int((now - start) / partitions.HOUR)
        tables = [f"sqlt_data_1_{start:%Y_%m}", f"sqlt_data_1_{now:%Y_%m}"]
        port = int(exports["IOT_HISTORIAN_JDBC_URL"].split(":")[-1].split("/")[0])
        with (
            psycopg2.connect(
                host="127.0.0.1",
                port=port,
                dbname="historian",
                user="historian",
                password=exports["IOT_HISTORIAN_PASSWORD"],
            ) as conn,
            conn.cursor() as cur,
        ):
            counts = {}
            for table in tables:
                cur.execute(f"SELECT count(*), count(*) FILTER (WHERE dataintegrity <> 192) FROM {table}")
                counts[table] = cur.fetchone()
            cur.execute("SELECT count(*) FROM sqlth_te")
            assert cur.fetchone()[0] == 2 * len(FIELDS)
        assert sum(n for n, _ in counts.values()) == hours * 2 * 4 * len(FIELDS)
        assert all(n > 0 for n, _ in counts.values()) and sum(bad for _, bad in counts.values()) > 0
        # seeding again replaces the hours' rows: the same counts
        assert cli.main(["historian", "seed", "--months", "2", "--devices", "2", "--rate", "4"]) == 0
        with (
            psycopg2.connect(
                host="127.0.0.1",
                port=port,
                dbname="historian",
                user="historian",
                password=exports["IOT_HISTORIAN_PASSWORD"],
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.execute(f"SELECT count(*) FROM {tables[0]}")
            assert cur.fetchone()[0] == counts[tables[0]][0]
    finally:
        cli.main(["historian", "server", "stop", "--dir", data])
        shutil.rmtree(root, ignore_errors=True)
