"""The historian source's read of one hour against PostgreSQL's own floor.

One hour of long rows (the simulated fleet as the historian holds it, one tag per device and
field) is loaded into a throwaway PostgreSQL. The floor is `COPY (SELECT <the hour's rows>) TO
STDOUT`, the fastest way the server hands the rows out. The measured side is the raw step's
read, `HistorianSource.read_hour`: the JDBC read, the tag join, the scan pivot and the records
collected to the driver, with 1, 2 and 4 JDBC partitions, on a warm Spark session; and, to see
how the transfer alone scales, the same JDBC read into Spark's no-op sink.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time

from benchmarks.common import bench_hour


class _Sink:
    """Where COPY's output goes: counted, not kept."""

    def __init__(self):
        self.bytes = 0

    def write(self, data) -> int:
        self.bytes += len(data)
        return len(data)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compare(fleet, progress=print, partitions=(1, 2, 4)) -> dict:
    from iot_assets.lib.partitions import HOUR
    from iot_assets.resources.config import resolved
    from iot_assets.resources.historian import HistorianSource, epoch_ms, month_table
    from iot_assets.tools import local_postgres
    from iot_assets.tools.simulator.historian import seed

    root = tempfile.mkdtemp(prefix="iot-bench-pg-")
    os.chmod(root, 0o755)  # as root, the server runs as `postgres`, which must reach its directory
    port = _free_port()
    server = local_postgres.start(f"{root}/pg", port, user="historian", db="historian")
    try:
        settings = {
            "aws": resolved("aws"),
            "jdbc_url": f"jdbc:postgresql://127.0.0.1:{port}/historian",
            "user": server.user,
            "password": server.password,
        }
        historian = HistorianSource(**settings)
        hour = bench_hour()
        began = time.monotonic()
        with historian.connect() as conn:
            rows = sum(seed(conn, fleet, [hour], bad_quality_rate=0.0).values())
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("VACUUM ANALYZE")
        progress(f"   loaded {rows:,} rows in {time.monotonic() - began:.0f} s")
        lo, hi = epoch_ms(hour), epoch_ms(hour) + 3_600_000
        copy = (
            f"COPY (SELECT tagid, intvalue, floatvalue, stringvalue, dataintegrity, t_stamp FROM "
            f"{month_table(historian.table_prefix, hour)} WHERE t_stamp >= {lo} AND t_stamp < {hi}) TO STDOUT"
        )
        floors = []
        for _ in range(2):  # the better of two: the first also warms the server's cache
            with historian.connect() as conn, conn.cursor() as cur:
                t = time.monotonic()
                cur.copy_expert(copy, _Sink())
                floors.append(time.monotonic() - t)
        floor = min(floors)
        progress(f"   floor: COPY ... TO STDOUT of {rows:,} rows in {floor:.1f} s")
        spark = resolved("spark").session
        HistorianSource(**settings, read_partitions=2).read_hour(spark, hour)  # warm-up, not counted
        seconds, transfer, records = {}, {}, 0
        table = month_table(historian.table_prefix, hour)
        for n in partitions:
            # The JDBC transfer alone, into Spark's no-op sink: how the read itself scales.
            t = time.monotonic()
            HistorianSource(**settings, read_partitions=n).rows(spark, table, hour, hour + HOUR).write.format(
                "noop"
            ).mode("overwrite").save()
            transfer[n] = round(time.monotonic() - t, 1)
        for n in partitions:
            t = time.monotonic()
            records = len(HistorianSource(**settings, read_partitions=n).read_hour(spark, hour).records)
            seconds[n] = round(time.monotonic() - t, 1)
            progress(
                f"   {n} JDBC partition(s): transfer {transfer[n]} s, read_hour {seconds[n]} s ({records:,} records)"
            )
    finally:
        local_postgres.stop(f"{root}/pg")
        shutil.rmtree(root, ignore_errors=True)
    return {
        "tags": fleet.device_count * 7,
        "rows": rows,
        "records": records,
        "floor_seconds": round(floor, 1),
        **{f"jdbc_transfer_seconds_{n}_partitions": s for n, s in transfer.items()},
        **{f"read_seconds_{n}_partitions": s for n, s in seconds.items()},
        **{f"ratio_{n}_partitions": round(s / floor, 1) for n, s in seconds.items()},
    }
