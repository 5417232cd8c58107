"""`iot-assets import`: the dry run's hours and counts, the errors, and one import end to end."""

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from iot_assets.tools import importer
from iot_assets.tools.cli import main

HEADER = "device_id,timestamp,temperature,humidity,pressure,vibration,battery_level,signal_strength\n"
ROWS = (
    "dev-a,2026-11-10T10:00:00Z,21.5,40,1.0,0.5,90,-60\n"
    "dev-b,2026-11-10T10:20:00Z,22.5,41,1.1,0.6,91,-61\n"
    "dev-a,not-a-time,23.5,42,1.2,0.7,92,-62\n"  # placed in the hour of the row before it
    "dev-b,2026-11-10T10:40:00Z,hot,43,1.3,0.8,93,-63\n"
    "dev-a,2026-11-10 11:00:00,24.5,44,1.4,0.9,94,-64\n"
    "dev-b,2026-11-10T11:30:00+01:00,25.5,45,1.5,1.0,95,-65\n"  # 10:30 UTC
    "dev-a,2026-11-10T11:59:59Z,26.5,46,1.6,1.1,96,-66\n"
)
H10 = datetime(2026, 11, 10, 10, tzinfo=UTC)
H11 = datetime(2026, 11, 10, 11, tzinfo=UTC)


@pytest.fixture()
def fleet_csv(tmp_path):
    path = tmp_path / "fleet.csv"
    path.write_text(HEADER + ROWS)
    return path


def test_dry_run_prints_exact_hours_and_counts(fleet_csv, capsys):
    assert main(["import", str(fleet_csv), "--device-column", "device_id", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "2026-11-10-10:00  5",
        "2026-11-10-11:00  2",
        "7 records in 2 hours; first 2026-11-10T10:00:00Z, last 2026-11-10T11:59:59Z",
    ]


def test_bad_rows_are_kept_as_records_for_bronze_to_judge(fleet_csv):
    rows = importer.read_history(fleet_csv, device_column="device_id").rows
    batches = importer.by_hour(rows)
    assert {h: len(r) for h, r in batches.items()} == {H10: 5, H11: 2}
    bad_time = batches[H10][2]
    assert bad_time["timestamp"] == "not-a-time" and bad_time["device_id"] == "dev-a"
    assert batches[H10][3]["temperature"] == "hot" and batches[H10][3]["humidity"] == 43.0
    assert batches[H10][4]["timestamp"] == "2026-11-10T10:30:00.000Z"
    assert all(r["status"] == "normal" for rs in batches.values() for r in rs)


def test_device_defaults_to_the_file_stem_and_time_shifts_and_scales(tmp_path):
    path = tmp_path / "pump-7.csv"
    path.write_text("timestamp,temperature\n2026-11-10T10:00:00Z,1\n2026-11-10T14:00:00Z,2\n")
    rows = importer.read_history(path).rows
    assert {r.record["device_id"] for r in rows} == {"pump-7"}
    importer.retime(rows, "timestamp", scale=4.0, shift=timedelta(hours=2))
    assert [r.record["timestamp"] for r in rows] == ["2026-11-10T12:00:00.000Z", "2026-11-10T13:00:00.000Z"]
    importer.retime(rows, "timestamp", shift_to=datetime(2026, 11, 20, 5, 30, tzinfo=UTC))
    assert rows[-1].record["timestamp"] == "2026-11-20T05:00:00.000Z"


def test_missing_timestamp_column_names_the_file_and_column(tmp_path, capsys):
    path = tmp_path / "a.csv"
    path.write_text("time,temperature\n2026-11-10T10:00:00Z,1\n")
    assert main(["import", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "'timestamp'" in err


def test_unknown_columns_are_listed_with_the_catalogue(tmp_path, capsys):
    path = tmp_path / "a.csv"
    path.write_text("timestamp,temperature,flow_rate,current\n2026-11-10T10:00:00Z,1,2,3\n")
    assert main(["import", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "flow_rate, current" in err and "default_catalogue.yaml" in err
    assert "--ignore-columns flow_rate,current" in err


def test_ignored_columns_are_left_out_and_a_semicolon_export_is_read(tmp_path, capsys):
    path = tmp_path / "rig.csv"
    path.write_text("timestamp;temperature;anomaly\n2026-11-10T10:00:00Z;1.5;0\n2026-11-10T10:30:00Z;2.5;1\n")
    assert main(["import", str(path), "--ignore-columns", "anomaly", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "2026-11-10-10:00  2"
    rows = importer.read_history(path, ignore=("anomaly",)).rows
    assert [r.record.get("temperature") for r in rows] == [1.5, 2.5]
    assert all("anomaly" not in r.record for r in rows)


def test_a_file_without_rows_is_an_error(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("timestamp,temperature\n")
    with pytest.raises(importer.ImportError_, match="a.csv: no rows"):
        importer.read_history(path)


@pytest.mark.e2e
def test_import_lands_raw_batches_and_bronze_reconciles(fleet_csv, resources, spark):
    from dagster import AssetSelection

    from iot_assets.lib.partitions import HOUR
    from iot_assets.lib.tables import named
    from iot_assets.resources.config import resolved
    from iot_assets.resources.io_managers import S3KinesisRawIOManager
    from iot_assets.resources.lakehouse import DeltaLakehouse

    uid = uuid.uuid4().hex[:8]
    # A bucket of its own: the import registers its devices in the bucket's reference list, which
    # the other tests' registry reads.
    aws, bucket = resolved("aws"), f"imp-{uid}"
    aws.s3.create_bucket(Bucket=bucket)
    lake = DeltaLakehouse(bucket=bucket, prefix=f"imp{uid}")
    raw_io = S3KinesisRawIOManager(aws=aws, bucket=bucket, prefix=f"raw-{uid}")
    batches, result = importer.run_import(
        fleet_csv,
        device_column="device_id",
        raw_io=raw_io,
        resources={**resources, "lake": lake, "raw_io_manager": raw_io},
        selection=AssetSelection.groups("bronze"),
    )
    assert result.success
    registry = lake.read(spark, named("device_registry")).where("site = 'imported'")
    assert sorted(r["device_id"] for r in registry.collect()) == ["dev-a", "dev-b"]
    for hour, want in ((H10, 5), (H11, 2)):
        objects = raw_io.hour_objects(hour)
        assert sum(o.records for o in objects) == want == len(batches[hour])
        bronze = lake.read_window(spark, named("bronze_sensor_readings"), hour, hour + HOUR).count()
        quarantine = lake.read_window(spark, named("bronze_quarantine"), hour, hour + HOUR)
        assert bronze + quarantine.count() == want
    q = lake.read_window(spark, named("bronze_quarantine"), H10, H11 + HOUR).collect()
    assert Counter(r["reason"] for r in q) == {"invalid_timestamp": 1, "invalid_type": 1}
    payloads = sorted(json.loads(r["payload"])["timestamp"] for r in q)
    assert payloads == ["2026-11-10T10:40:00.000Z", "not-a-time"]


def test_a_folder_of_parquet_and_csv_files_one_device_each(tmp_path):
    import pandas as pd

    pd.DataFrame(
        {"timestamp": pd.to_datetime(["2026-11-10T10:05:00Z", "2026-11-10T12:05:00Z"]), "temperature": [1.5, None]}
    ).to_parquet(tmp_path / "pump-1.parquet")
    (tmp_path / "pump-2.csv").write_text("timestamp,temperature\n2026-11-10T10:10:00Z,2\n")
    (tmp_path / "notes.txt").write_text("not read")
    batches = importer.by_hour(importer.read_history(tmp_path).rows)
    assert {h: [(r["device_id"], r.get("temperature")) for r in rs] for h, rs in batches.items()} == {
        H10: [("pump-1", 1.5), ("pump-2", 2.0)],
        H11: [],  # an hour without rows is an empty raw batch
        H11 + timedelta(hours=1): [("pump-1", None)],  # an empty cell is absent: bronze applies `required`
    }


def test_a_long_channels_whole_numbers_stay_exact(tmp_path):
    import pandas as pd

    from iot_assets.lib.catalogue import parse_catalogue

    counter = {"name": "pulses", "unit": "1", "type": "long", "range": [0, 2**62], "roles": ["model_feature"]}
    level = {"name": "level", "unit": "m", "range": [0, 10]}
    rig = parse_catalogue({"channels": [counter, level]})
    big = 2**53 + 1  # a double would round it to 2**53
    (tmp_path / "a.csv").write_text(
        f"timestamp,pulses,level\n2026-11-10T10:00:00Z,{big},3\n2026-11-10T10:01:00Z,2.5,3\n"
    )
    pd.DataFrame({"timestamp": pd.to_datetime(["2026-11-10T10:02:00Z"]), "pulses": [big], "level": [3]}).to_parquet(
        tmp_path / "b.parquet"
    )
    rows = importer.read_history(tmp_path, rig).rows
    # A non-whole count is passed on as a number for bronze to quarantine (invalid_type); `level` is a double.
    assert [(r.record["pulses"], r.record["level"]) for r in rows] == [(big, 3.0), (2.5, 3.0), (big, 3.0)]
    assert [json.dumps(r.record["pulses"]) for r in rows] == [str(big), "2.5", str(big)]


class RecordingRawIO:
    """A raw IO manager that keeps the batches it is given."""

    def __init__(self):
        self.batches = []

    def store(self, batch):
        self.batches.append(batch)


def test_an_hour_without_rows_is_stored_as_an_empty_raw_batch(tmp_path):
    # Nothing arrived in 11:00 and 12:00: each is an empty raw batch, not a missing partition.
    path = tmp_path / "pump-3.csv"
    path.write_text("timestamp,temperature\n2026-11-10T10:05:00Z,1\n2026-11-10T13:10:00Z,2\n")
    raw_io = RecordingRawIO()
    batches, result = importer.run_import(path, raw_io=raw_io, register=False, backfill_after=False, out=lambda _: None)
    assert result is None
    hours = [H10 + timedelta(hours=i) for i in range(4)]
    assert [(b.hour, len(b.payloads), b.source) for b in raw_io.batches] == [
        (hours[0], 1, "import"),
        (hours[1], 0, "import"),
        (hours[2], 0, "import"),
        (hours[3], 1, "import"),
    ]
    assert [json.loads(p)["timestamp"] for b in raw_io.batches for p in b.payloads] == [
        "2026-11-10T10:05:00.000Z",
        "2026-11-10T13:10:00.000Z",
    ]


def test_a_scaled_series_keeps_its_gaps_as_empty_hours(tmp_path):
    # Every 5 minutes, then nothing for 10 hours: at 5x each reading is a minute, and the gap two hours.
    times = [datetime(2026, 11, 10, 10, tzinfo=UTC) + timedelta(minutes=5 * i) for i in range(72)]
    times += [times[-1] + timedelta(hours=10) + timedelta(minutes=5 * i) for i in range(12)]
    path = tmp_path / "pump-4.csv"
    path.write_text("timestamp,temperature\n" + "".join(f"{t:%Y-%m-%dT%H:%M:%SZ},1\n" for t in times))
    raw_io = RecordingRawIO()
    importer.run_import(path, scale=5, raw_io=raw_io, register=False, backfill_after=False, out=lambda _: None)
    assert [(b.hour, len(b.payloads)) for b in raw_io.batches] == [
        (H10, 60),
        (H11, 12),
        (H11 + timedelta(hours=1), 0),
        (H11 + timedelta(hours=2), 12),
    ]
    moved = importer.time_map(times, scale=5)
    assert moved(times[1]) == H10 + timedelta(minutes=1) and moved(times[-1]) == H10 + timedelta(minutes=202)


def test_devices_are_added_to_the_reference_list_and_nothing_there_is_replaced(local_aws):
    from iot_assets.assets.registry import REFERENCE_KEY
    from iot_assets.resources.aws import AwsResource, make_client

    aws = AwsResource(endpoint_url=local_aws)
    bucket = f"imp-{uuid.uuid4().hex[:8]}"
    make_client("s3", local_aws, "us-east-1").create_bucket(Bucket=bucket)
    mine = {"device_id": "pump-1", "device_name": "Pump 1", "site": "plant-a", "device_type": "pump"}
    aws.s3.put_object(Bucket=bucket, Key=REFERENCE_KEY, Body=(json.dumps({**mine, "latitude": 1.0, "longitude": 2.0})))

    assert importer.register_devices(aws, bucket, ["pump-1", "dev-a", "dev-b", "dev-a"]) == ["dev-a", "dev-b"]
    assert importer.register_devices(aws, bucket, ["dev-b"]) == []  # a second import adds nothing
    body = aws.s3.get_object(Bucket=bucket, Key=REFERENCE_KEY)["Body"].read().decode()
    rows = [json.loads(line) for line in body.splitlines()]
    assert [r["device_id"] for r in rows] == ["pump-1", "dev-a", "dev-b"]
    assert rows[0] == {**mine, "latitude": 1.0, "longitude": 2.0}  # the user's own entry, untouched
    assert rows[1] == {
        "device_id": "dev-a",
        "device_name": "dev-a",
        "site": "imported",
        "device_type": "imported",
        "latitude": 0.0,
        "longitude": 0.0,
    }
