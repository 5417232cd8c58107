"""Progress lines: bounded in number, with counts and elapsed time."""

import pytest

from iot_assets.tools.progress import Progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_prints_at_most_once_per_interval_with_counts_and_elapsed():
    clock, lines = Clock(), []
    p = Progress("demo", total=12, unit="asset partitions", interval=10, write=lines.append, clock=clock)
    for second in range(1, 31):
        clock.now = float(second)
        p.update(done=second // 3, records=second * 100)
    assert lines == [
        "[demo] 3/12 asset partitions, 1,000 records, 10 s",
        "[demo] 6/12 asset partitions, 2,000 records, 20 s",
        "[demo] 10/12 asset partitions, 3,000 records, 30 s",
    ]
    p.update(force=True)
    assert len(lines) == 4


def test_records_only_line_for_open_ended_work():
    clock, lines = Clock(), []
    p = Progress("simulate", unit=None, interval=5, write=lines.append, clock=clock)
    clock.now = 5.0
    p.update(records=0)
    assert lines == ["[simulate] 0 records, 5 s"]


@pytest.mark.parametrize("kind", ["ephemeral", "on_disk"])
def test_watch_run_counts_the_tagged_runs_materialisations(kind):
    # ephemeral: counted once at the end; on disk (make demo's DAGSTER_HOME): polled while it runs
    from dagster import DagsterInstance, asset, instance_for_test, materialize

    from iot_assets.tools.progress import watch_run

    @asset
    def first():
        return 1

    @asset
    def second(first):
        return first + 1

    lines = []
    with instance_for_test() if kind == "on_disk" else DagsterInstance.ephemeral() as instance:
        progress = Progress("run", total=2, unit="asset partitions", interval=3600, write=lines.append)
        with watch_run(instance, ("iot/progress", "t"), progress, poll=0.05):
            materialize([first, second], instance=instance, tags={"iot/progress": "t"})
            materialize([first], instance=instance, tags={"iot/progress": "other"})
    assert progress.done == 2
    assert lines[-1].startswith("[run] 2/2 asset partitions, ")
    assert not [line for line in lines if "unavailable" in line]
