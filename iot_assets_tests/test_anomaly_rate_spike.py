"""check_anomaly_rate_spike judges each hour of a range run exactly as that hour's own run would."""

from datetime import UTC, datetime, timedelta

from iot_assets.assets.anomalies import rate_spike_by_hour
from iot_assets.resources.quality_config import DataQualityConfig

H0 = datetime(2026, 11, 21, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_each_hour_of_a_range_is_judged_against_its_own_trailing_day():
    cfg = DataQualityConfig()
    # 24 quiet hours, then a 24-hour replay with 3 % anomalous readings every hour, and one hour at 30 %.
    readings = {H0 + i * HOUR: 1000 for i in range(48)}
    confirmed = {H0 + i * HOUR: (30 if i >= 24 else 0) for i in range(48)}
    confirmed[H0 + 40 * HOUR] = 300
    hours = [H0 + i * HOUR for i in range(24, 48)]
    whole = rate_spike_by_hour(confirmed, readings, hours, cfg)
    # The old judgement (every hour against the 24 hours before the whole range, a trailing rate of
    # 0, so a limit of 1 %) warned on all 24 hours. Judged per hour, 3 % stops being a spike once
    # the trailing day holds 8 such hours (3 x 1 % reaches 3 %); the 30 % hour still warns.
    failing = sorted(k for k, (_, f) in whole.by_partition.items() if f)
    assert failing == [H0 + i * HOUR for i in range(24, 32)] + [H0 + 40 * HOUR]
    for h in hours:
        alone = rate_spike_by_hour(confirmed, readings, [h], cfg)
        assert alone.by_partition[h] == whole.by_partition[h]
        key = h.strftime("%Y-%m-%d-%H:%M")
        assert alone.detail["limit_by_hour"][key] == whole.detail["limit_by_hour"][key]


def test_anomaly_checks_read_the_trailing_day_of_every_hour_of_the_window(spark):
    from iot_assets.assets.anomalies import anomaly_checks

    naive = H0.replace(tzinfo=None)
    cols = (
        "device_id string, event_time timestamp, metric string, method string, confirmed boolean, event_hour timestamp"
    )
    row = lambda h, i: ("d1", naive + h * HOUR + timedelta(seconds=i), "temperature", "zscore", True, naive + h * HOUR)  # noqa: E731
    trailing_log = spark.createDataFrame([row(23, i) for i in range(5)], cols)
    log = spark.createDataFrame([row(24, i) for i in range(50)] + [row(25, i) for i in range(50)], cols)
    stats = spark.createDataFrame(
        [("d1", naive + h * HOUR, 1000) for h in range(0, 25)],
        "device_id string, event_hour timestamp, reading_count long",
    )
    readings = {H0 + 24 * HOUR: 1000, H0 + 25 * HOUR: 1000}
    _, spike = anomaly_checks(log, readings, trailing_log, stats, DataQualityConfig())
    # Hour 24: trailing 5 / 24,000 -> limit 1 %, 5 % warns. Hour 25: trailing 55 / 24,000 -> still 1 %.
    assert spike.detail["trailing_rate_by_hour"] == {
        "2026-11-22-00:00": round(5 / 24000, 5),
        "2026-11-22-01:00": round(55 / 24000, 5),
    }
    assert not spike.passed and spike.failed_rows == 100
