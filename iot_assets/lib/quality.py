"""Data-quality checks: how a layer's partition is judged, reported to Dagster, and logged.

Each layer file declares its checks (`AssetCheckSpec`s on its asset) and calls these helpers on
the partition it has just written: bronze, silver and the hourly gold tables on the rows as their
writes write them (`WriteObservation`; for a range of more than 48 hours, bronze on its cached
frames and the others on the partition read back), held to the row counts of Delta's commits
(`as_committed`); the models, the anomaly log and the incidents on the frames they wrote,
computed once (`lakehouse.computed_once`); the daily summary on the partition read back.
Every evaluation counts passed and failed rows for each hour of the run's window, so one range
run still gives one history row per check and hour in the `data_quality_log` Delta table (like
the event log of Delta Live Tables), and the check result in the UI carries the counts and a few
failing rows.

The value rules come from the layer's pandera model, the single statement of its columns, types
and ranges. pandera.pyspark validates the schema (columns and types); the rules it would check
one Spark job at a time (`filter(~rule).limit(1).count()`, with no counts) are evaluated here in
one aggregation that also counts failures per rule and per hour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import reduce

import pandera.pyspark as pa
import pyspark.sql.types as T
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue
from pandera.config import ValidationDepth, config_context
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from iot_assets.lib.schemas import struct_type
from iot_assets.lib.tables import Table

EXAMPLES = 5
WARN, ERROR = AssetCheckSeverity.WARN, AssetCheckSeverity.ERROR


@dataclass
class Evaluation:
    """One check over one window: rows passed and failed per partition (hour or day)."""

    asset: str
    check: str
    severity: AssetCheckSeverity
    passed: bool
    by_partition: dict[datetime | date | str, tuple[int, int]]  # partition -> (passed rows, failed rows)
    description: str
    detail: dict = field(default_factory=dict)

    @property
    def passed_rows(self) -> int:
        return sum(p for p, _ in self.by_partition.values())

    @property
    def failed_rows(self) -> int:
        return sum(f for _, f in self.by_partition.values())

    def rows_by_partition(self) -> dict:
        """Rows evaluated per partition: for a check over every row (`check_schema`), the table's
        row counts, without another pass over it."""
        return {k: p + f for k, (p, f) in self.by_partition.items()}

    def result(self, window=None) -> AssetCheckResult:
        failing = sorted(_partition_key(k) for k, (_, f) in self.by_partition.items() if f)
        where = {"partition_start": window.start.isoformat(), "partition_end": window.end.isoformat()} if window else {}
        return AssetCheckResult(
            asset_key=self.asset,
            check_name=self.check,
            passed=self.passed,
            severity=self.severity,
            description=self.description,
            metadata={
                "failed_rows": self.failed_rows,
                "passed_rows": self.passed_rows,
                **where,
                "failing_partitions": MetadataValue.json(failing[:50]),
                **{k: (MetadataValue.json(v) if isinstance(v, (dict, list)) else v) for k, v in self.detail.items()},
            },
        )


def as_committed(evaluation: Evaluation, committed_rows: int) -> Evaluation:
    """A check computed on the frame a step wrote, held to the rows Delta's commit says it wrote
    (`numOutputRows`): the window holds exactly the frame's rows (`replaceWhere`), so if the
    counts agree the check has judged the table as it is, without reading it back. If they do not,
    the check fails and says so."""
    seen = evaluation.passed_rows + evaluation.failed_rows
    evaluation.detail["committed_rows"] = committed_rows
    if seen != committed_rows:
        evaluation.passed = False
        evaluation.description = (
            f"the Delta commit wrote {committed_rows} rows, but the check saw {seen}. " + evaluation.description
        )
    return evaluation


def spec(asset: str, check: str, description: str, blocking: bool = False) -> AssetCheckSpec:
    return AssetCheckSpec(check, asset=asset, description=description, blocking=blocking)


# --- rules from a pandera model ------------------------------------------------------------


def _predicate(column: str, check) -> Column:
    c, s = F.col(column), check.statistics
    match check.name:
        case "greater_than_or_equal_to":
            return c >= s["min_value"]
        case "less_than_or_equal_to":
            return c <= s["max_value"]
        case "greater_than":
            return c > s["min_value"]
        case "less_than":
            return c < s["max_value"]
        case "in_range":
            lo = c >= s["min_value"] if s.get("include_min", True) else c > s["min_value"]
            hi = c <= s["max_value"] if s.get("include_max", True) else c < s["max_value"]
            return lo & hi
        case "isin":
            return c.isin(list(s["allowed_values"]))
        case "notin":
            return ~c.isin(list(s["forbidden_values"]))
        case "str_matches":
            pattern = s["pattern"]
            return c.rlike(pattern if isinstance(pattern, str) else pattern.pattern)
    raise ValueError(f"no Spark rule for pandera check {check.name!r} on {column}")


def rules(model: type[pa.DataFrameModel]) -> dict[str, Column]:
    """Rule name -> a Column that is true when a row keeps the rule; nulls keep value rules,
    and break `not_null` rules on non-nullable columns."""
    out = {}
    for name, col in model.to_schema().columns.items():
        if not col.nullable:
            out[f"{name}:not_null"] = F.col(name).isNotNull()
        for check in col.checks:
            out[f"{name}:{check.name}"] = F.col(name).isNull() | _predicate(name, check)
    return out


def schema_problems(df: DataFrame, model: type[pa.DataFrameModel]) -> list[str]:
    """Missing, unexpected and mistyped columns, as pandera.pyspark reports them (schema-level only)."""
    # On a zero-row frame with the same columns and types, marked not nullable: pandera's
    # schema-level checks otherwise scan for nulls in each non-nullable column, one Spark job each
    # (68 per run of bronze and silver), and nulls are counted
    # by the `not_null` rules that `check_schema` aggregates in its one pass anyway.
    fields = [T.StructField(f.name, f.dataType, nullable=False) for f in df.schema.fields]
    empty = df.sparkSession.createDataFrame([], T.StructType(fields))
    with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY):
        validated = model.validate(empty)
    problems = []
    for level in (validated.pandera.errors or {}).values():
        for kind, errors in level.items():
            problems += [f"{kind}: {e.get('column', '')}: {e.get('error', '')}".strip() for e in errors]
    expected = set(struct_type(model).fieldNames())
    problems += [f"COLUMN_NOT_IN_SCHEMA: {c}" for c in df.columns if c not in expected]
    return problems


UNPARTITIONED = "all"


def _by(partition_col: str | None) -> list[str]:
    return [partition_col] if partition_col else []


def _key(row, partition_col: str | None):
    return partition_value(row[partition_col]) if partition_col else UNPARTITIONED


def partition_value(v) -> datetime | date:
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v
    return v


@dataclass
class _SchemaRules:
    """A pandera model's rules for a frame's columns, as Spark columns, and the schema problems."""

    model: type[pa.DataFrameModel]
    problems: list[str]
    named: dict[str, Column]  # rule name -> true when a row keeps it
    nullable: list[str]  # nullable model columns present, whose null rate is reported
    unexpected: list[str]  # frame columns the model does not have

    @classmethod
    def of(cls, df: DataFrame, model: type[pa.DataFrameModel]) -> _SchemaRules:
        # Value rules run only on columns that are there with the model's type; the others are
        # schema problems already, and comparing a string with a number would fail the job.
        actual = dict(df.dtypes)
        fields = struct_type(model).fields
        present = {f.name for f in fields if actual.get(f.name) == f.dataType.simpleString()}
        return cls(
            model,
            schema_problems(df, model),
            {k: v for k, v in rules(model).items() if k.split(":")[0] in present},
            [f.name for f in fields if f.nullable and f.name in present],
            # A column the model no longer has (a channel removed from the catalogue) stays in the
            # table for its history; rows written since hold null there, and that is no schema problem.
            [c for c in df.columns if c not in struct_type(model).fieldNames()],
        )

    @property
    def ok_all(self) -> Column:
        return reduce(lambda a, b: a & b, self.named.values(), F.lit(True))

    def totals(self) -> dict[str, Column]:
        """Aggregates over every row: failures per rule, nulls per nullable column, and the values
        of each unexpected column."""
        out = {f"r{i}": F.sum(F.when(~rule, 1).otherwise(0)) for i, rule in enumerate(self.named.values())}
        out |= {f"n{i}": F.sum(F.when(F.col(c).isNull(), 1).otherwise(0)) for i, c in enumerate(self.nullable)}
        return out | {f"x{i}": F.count(c) for i, c in enumerate(self.unexpected)}

    def evaluation(
        self,
        by_partition: dict,
        totals: dict[str, int],
        examples: Callable[[], DataFrame],
        asset: str,
        check: str,
        key_cols: list[str],
        severity,
    ) -> Evaluation:
        """The evaluation from rows and failed rows per partition and the values of `totals()`;
        `examples()` is the frame to take a few failing rows from, read only when some fail."""
        model, named = self.model, self.named
        retired = [c for i, c in enumerate(self.unexpected) if not totals[f"x{i}"]]
        problems = [p for p in self.problems if p not in {f"COLUMN_NOT_IN_SCHEMA: {c}" for c in retired}]
        per_rule = {name: totals[f"r{i}"] for i, name in enumerate(named)}
        total = sum(p + f for p, f in by_partition.values())
        null_rates = {c: round(totals[f"n{i}"] / total, 4) if total else 0.0 for i, c in enumerate(self.nullable)}
        failed = sum(f for _, f in by_partition.values())
        detail = {
            "failures_by_rule": {k: v for k, v in per_rule.items() if v},
            "null_rates": null_rates,
            "rules_checked": len(named),
            "schema_problems": problems,
        }
        if retired:
            detail["retired_columns"] = retired
        if failed:
            df = examples()
            cols = [c for c in key_cols if c in df.columns]
            broken = F.array_compact(F.array(*[F.when(~rule, F.lit(name)) for name, rule in named.items()]))
            detail["examples"] = [
                {k: _plain(v) for k, v in r.asDict().items()}
                for r in df.where(~self.ok_all).select(*cols, broken.alias("broken_rules")).limit(EXAMPLES).collect()
            ]
        passed = not problems and failed == 0
        text = (
            f"{failed} of {total} rows break a rule of {model.__name__}"
            if failed
            else f"{total} rows keep all {len(named)} rules of {model.__name__}"
        )
        if problems:
            text = f"schema differs from {model.__name__}: {'; '.join(problems[:3])}. " + text
        return Evaluation(asset, check, severity, passed, by_partition, text, detail)


def check_schema(
    df: DataFrame,
    model: type[pa.DataFrameModel],
    asset: str,
    check: str,
    partition_col: str,
    key_cols: list[str],
    severity=ERROR,
) -> Evaluation:
    """Schema conformance, value ranges and null rates, from the layer's pandera model.

    Fails when pandera finds a schema problem or any row breaks a rule; the metadata gives
    failures per rule, null rates, and a few failing rows.
    """
    schema = _SchemaRules.of(df, model)
    totals = schema.totals()
    aggs = [F.count("*").alias("_rows"), F.sum(F.when(~schema.ok_all, 1).otherwise(0)).alias("_failed")]
    rows = df.groupBy(*_by(partition_col)).agg(*aggs, *[c.alias(k) for k, c in totals.items()]).collect()
    by_partition = {
        _key(r, partition_col): (int(r["_rows"]) - int(r["_failed"] or 0), int(r["_failed"] or 0))
        for r in rows
        if r["_rows"]
    }
    summed = {k: sum(int(r[k] or 0) for r in rows) for k in totals}
    return schema.evaluation(by_partition, summed, lambda: df, asset, check, key_cols, severity)


def check_unique(
    df: DataFrame, keys: list[str], asset: str, check: str, partition_col: str, severity=ERROR
) -> Evaluation:
    """No two rows share the key; failed rows are the surplus copies."""
    counted = df.groupBy(*_by(partition_col), *keys).count()
    rows = (
        counted.groupBy(*_by(partition_col))
        .agg(F.sum("count").alias("rows"), F.sum(F.col("count") - 1).alias("surplus"))
        .collect()
    )
    by_partition = {
        _key(r, partition_col): (int(r["rows"]) - int(r["surplus"] or 0), int(r["surplus"] or 0))
        for r in rows
        if r["rows"]
    }
    surplus = sum(f for _, f in by_partition.values())
    detail = {"key": keys}
    if surplus:
        detail["examples"] = [
            {k: _plain(v) for k, v in r.asDict().items()}
            for r in counted.where("count > 1").orderBy(F.desc("count")).limit(EXAMPLES).collect()
        ]
    text = f"{surplus} duplicate rows on ({', '.join(keys)})" if surplus else f"({', '.join(keys)}) is unique"
    return Evaluation(asset, check, severity, surplus == 0, by_partition, text, detail)


# --- checks on the rows a write writes -----------------------------------------------------

# A window of more partitions than this is checked by reading it back: each partition adds a few
# comparisons per row to the observed aggregates (a 24-hour backfill, 3 per hour for silver).
OBSERVED_PARTITIONS_MAX = 48
_PARTITION = "_observed_partition"


class WriteObservation:
    """Checks computed from the rows a Delta write writes, in the write's own pass.

    The checks' aggregates are observed on the frame as it is written (`DataFrame.observe`), so
    the rows judged are exactly the rows the writer received, and nothing is read back or
    computed again. Counts are kept for each partition of the window; a step holds the schema
    checks to its commit's row count (`as_committed`) like the checks on a cached frame. A check
    that fails is made again on the window read back from the table, for the metadata's detail
    (failures per rule, failing rows): failing is rare, and the write carries only what passing needs.

        observing = WriteObservation("event_hour", hours)
        observing.schema(df, Model, asset, check, keys, written=lambda: lake.read_window(...))
        result = lake.write_window(observing.on(df), table, window)
        evaluations = observing.evaluations()
    """

    def __init__(self, partition_col: str, partitions: list[datetime]):
        self.partition_col = partition_col
        # Hourly partitions only: each is compared as epoch seconds.
        self.partitions = [partition_value(k) for k in partitions]
        self._columns: dict[str, Column] = {}
        self._aggregates: dict[str, Column] = {}
        self._evaluate: list[Callable[[dict], Evaluation]] = []
        self._observation = None

    @staticmethod
    def fits(partitions: list) -> bool:
        return 0 < len(partitions) <= OBSERVED_PARTITIONS_MAX

    def _per_partition(self, prefix: str, cond: Column) -> None:
        for i, k in enumerate(self.partitions):
            self._aggregates[f"{prefix}.p{i}"] = F.count_if((F.col(_PARTITION) == int(k.timestamp())) & cond)

    def _by_partition(self, values: dict, prefix: str, failed: str) -> dict:
        out = {}
        for i, k in enumerate(self.partitions):
            rows, bad = int(values[f"{prefix}.p{i}"]), int(values[f"{failed}.p{i}"])
            if rows:
                out[k] = (rows - bad, bad)
        return out

    def schema(
        self,
        df: DataFrame,
        model: type[pa.DataFrameModel],
        asset: str,
        check: str,
        key_cols: list[str],
        written: Callable[[], DataFrame],
        severity=ERROR,
    ) -> None:
        """`check_schema` on the rows written. The write counts rows, rows that break a rule and nulls;
        when a row breaks a rule or the schema differs, the check is made on `written()`, the
        window read back, for its failures per rule and failing rows."""
        rules = _SchemaRules.of(df, model)
        self._per_partition(f"{check}.rows", F.lit(True))
        self._per_partition(f"{check}.failed", ~rules.ok_all)
        nulls = {k: c for k, c in rules.totals().items() if k.startswith("n")}
        self._aggregates |= {f"{check}.{k}": c for k, c in nulls.items()}

        def evaluate(values: dict) -> Evaluation:
            by_partition = self._by_partition(values, f"{check}.rows", f"{check}.failed")
            if rules.problems or any(bad for _, bad in by_partition.values()):
                return check_schema(written(), model, asset, check, self.partition_col, key_cols, severity)
            totals = {k: 0 for k in rules.totals()} | {k: int(values[f"{check}.{k}"] or 0) for k in nulls}
            return rules.evaluation(by_partition, totals, written, asset, check, key_cols, severity)

        self._evaluate.append(evaluate)

    def unique(self, keys: list[str], asset: str, check: str, written: Callable[[], DataFrame], severity=ERROR) -> None:
        """`check_unique` on the rows written: in the rows of each value of `keys[:-1]` ordered by
        `keys[-1]`, a row whose last key equals the row before's is a surplus copy. (A window of the
        same partitioning and order as one the frame already has shares its sort.)"""
        *group, last = keys
        flag = f"_surplus_{check}"
        before = F.lag(last).over(Window.partitionBy(*group).orderBy(last))
        self._columns[flag] = F.coalesce(before == F.col(last), F.lit(False))
        self._per_partition(f"{check}.rows", F.lit(True))
        self._per_partition(f"{check}.surplus", F.col(flag))

        def evaluate(values: dict) -> Evaluation:
            by_partition = self._by_partition(values, f"{check}.rows", f"{check}.surplus")
            if any(bad for _, bad in by_partition.values()):  # read back only to show the copies
                return check_unique(written(), keys, asset, check, self.partition_col, severity)
            return Evaluation(
                asset, check, severity, True, by_partition, f"({', '.join(keys)}) is unique", {"key": keys}
            )

        self._evaluate.append(evaluate)

    def sum(self, column: str) -> Callable[[], dict]:
        """The sum of `column` over the rows written, per partition that has rows: the returned
        function gives it once the frame from `on` has been written."""
        prefix = f"sum.{column}"
        for i, k in enumerate(self.partitions):
            self._aggregates[f"{prefix}.p{i}"] = F.sum(F.when(F.col(_PARTITION) == int(k.timestamp()), F.col(column)))

        def totals() -> dict:
            values = self._values()
            sums = {k: values[f"{prefix}.p{i}"] for i, k in enumerate(self.partitions)}
            return {k: int(v) for k, v in sums.items() if v is not None}

        return totals

    def on(self, df: DataFrame) -> DataFrame:
        """`df` with the checks' aggregates observed on it; write this frame, once."""
        from pyspark.sql import Observation

        self._observation = Observation()
        helpers = {_PARTITION: F.unix_seconds(F.col(self.partition_col)), **self._columns}
        with_helpers = df.select("*", *[c.alias(name) for name, c in helpers.items()])
        aggregates = [c.alias(name) for name, c in self._aggregates.items()]
        return with_helpers.observe(self._observation, *aggregates).drop(*helpers)

    def _values(self) -> dict:
        values = self._observation.get if self._observation is not None else None
        if not values:
            # Over Spark Connect the values arrive with the write's result; without them nothing was judged.
            raise RuntimeError("the write's observed check metrics did not arrive; the checks cannot be evaluated")
        return values

    def evaluations(self) -> list[Evaluation]:
        """The checks' evaluations, once the frame from `on` has been written."""
        values = self._values()
        return [evaluate(values) for evaluate in self._evaluate]


def check_reconciles(
    expected: dict, parts: dict[str, dict], asset: str, check: str, identity: str, severity=ERROR
) -> Evaluation:
    """`expected[p] == sum(part[p] for part in parts)` for every partition p.

    A partition's passed rows are the accounted ones and its failed rows the difference, so a lost
    record and an invented one both count.
    """
    keys = set(expected) | {k for counts in parts.values() for k in counts}
    by_partition, mismatches = {}, []
    for k in sorted(keys):
        want = int(expected.get(k, 0))
        got = sum(int(counts.get(k, 0)) for counts in parts.values())
        by_partition[k] = (min(want, got), abs(want - got))
        if want != got:
            mismatches.append(
                {
                    "partition": _partition_key(k),
                    "expected": want,
                    **{name: int(counts.get(k, 0)) for name, counts in parts.items()},
                }
            )
    totals = {name: sum(int(v) for v in counts.values()) for name, counts in parts.items()}
    want_total = sum(int(v) for v in expected.values())
    text = (
        f"{identity}: {want_total} = {' + '.join(f'{v} {k}' for k, v in totals.items())}"
        if not mismatches
        else f"{identity} fails in {len(mismatches)} partition(s)"
    )
    return Evaluation(
        asset,
        check,
        severity,
        not mismatches,
        by_partition,
        text,
        {
            "identity": identity,
            "expected_total": want_total,
            **{f"{k}_total": v for k, v in totals.items()},
            "examples": mismatches[:EXAMPLES],
        },
    )


def check_rate(
    numerator: dict, denominator: dict, limit: float, asset: str, check: str, what: str, severity=WARN
) -> Evaluation:
    """numerator / denominator at most `limit` in every partition; failed rows are the numerator's."""
    by_partition, over = {}, []
    for k in sorted(set(denominator) | set(numerator)):
        num, den = int(numerator.get(k, 0)), int(denominator.get(k, 0))
        rate = num / den if den else 0.0
        by_partition[k] = (den - num, num) if rate > limit else (den, 0)
        if rate > limit:
            over.append({"partition": _partition_key(k), what: num, "of": den, "rate": round(rate, 4)})
    num_t, den_t = sum(numerator.values()), sum(denominator.values())
    rate_t = num_t / den_t if den_t else 0.0
    text = (
        f"{what} rate {rate_t:.2%} (limit {limit:.2%})"
        if not over
        else f"{what} rate above {limit:.2%} in {len(over)} partition(s)"
    )
    return Evaluation(
        asset,
        check,
        severity,
        not over,
        by_partition,
        text,
        {"rate": round(rate_t, 4), "limit": limit, "examples": over[:EXAMPLES]},
    )


def counts_by(df: DataFrame, column: str) -> dict:
    return {partition_value(r[0]): int(r[1]) for r in df.groupBy(column).count().collect()}


def _plain(v):
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


# --- the data-quality log ------------------------------------------------------------------


class DataQualityRecord(pa.DataFrameModel):
    """One check, for one partition, at one evaluation."""

    evaluated_at: T.TimestampType() = pa.Field(nullable=False)
    run_id: T.StringType() = pa.Field(nullable=False)
    asset: T.StringType() = pa.Field(nullable=False)
    check_name: T.StringType() = pa.Field(nullable=False)
    partition: T.StringType() = pa.Field(nullable=False, description="hour (YYYY-MM-DD-HH:MM) or day")
    status: T.StringType() = pa.Field(nullable=False, isin=["passed", "failed"])
    severity: T.StringType() = pa.Field(nullable=False, isin=["ERROR", "WARN"])
    passed_rows: T.LongType() = pa.Field(nullable=False, ge=0)
    failed_rows: T.LongType() = pa.Field(nullable=False, ge=0)
    description: T.StringType() = pa.Field(nullable=True)
    evaluation_date: T.DateType() = pa.Field(nullable=False, description="table partition")


DATA_QUALITY_LOG = Table("data_quality_log", DataQualityRecord, "evaluation_date")


def _partition_key(k: datetime | date | str) -> str:
    if isinstance(k, datetime):
        return k.strftime("%Y-%m-%d-%H:%M")
    return k.strftime("%Y-%m-%d") if isinstance(k, date) else str(k)


def log_rows(evaluations: list[Evaluation], run_id: str, now: datetime | None = None) -> list[tuple]:
    now = (now or datetime.now(UTC)).replace(tzinfo=None)
    rows = []
    for e in evaluations:
        for k, (ok, bad) in sorted(e.by_partition.items()):
            # A partition fails by its own rows; a failure no row explains (a schema problem) fails them all.
            failed = bad > 0 or (not e.passed and e.failed_rows == 0)
            rows.append(
                (
                    now,
                    run_id,
                    e.asset,
                    e.check,
                    _partition_key(k),
                    "failed" if failed else "passed",
                    e.severity.value,
                    int(ok),
                    int(bad),
                    e.description[:1000],
                    now.date(),
                )
            )
    return rows


def write_log(spark, lake, evaluations: list[Evaluation], run_id: str) -> int:
    """Append one row per check and partition to the data-quality log; returns the rows written."""
    rows = log_rows(evaluations, run_id)
    if rows:
        df = spark.createDataFrame(rows, struct_type(DataQualityRecord))
        df.coalesce(1).write.format("delta").mode("append").option("mergeSchema", "true").partitionBy(
            "evaluation_date"
        ).save(lake.uri(DATA_QUALITY_LOG))
    return len(rows)


def partitions_of(keys: list[str]) -> list[datetime | date]:
    """Hourly (`YYYY-MM-DD-HH:MM`) or daily (`YYYY-MM-DD`) partition keys as the checks key them."""
    return [
        datetime.strptime(k, "%Y-%m-%d").date()
        if len(k) == 10
        else datetime.strptime(k, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
        for k in keys
    ]


def report(context, spark, lake, evaluations: list[Evaluation]):
    """Log the evaluations and yield their check results for the run's window.

    Every partition of the run appears in the log, with zero rows when a table has none for it
    (an hour without rejected readings still shows that its check ran)."""
    partitioned = context.has_partition_key or context.has_partition_key_range
    window = context.partition_time_window if partitioned else None
    for e in evaluations:
        for k in partitions_of(context.partition_keys) if partitioned else [UNPARTITIONED]:
            e.by_partition.setdefault(k, (0, 0))
    write_log(spark, lake, evaluations, context.run.run_id)
    for e in evaluations:
        yield e.result(window)
