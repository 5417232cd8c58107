"""Alerts: failed asset checks, failed runs and opened incidents, sent to SNS, CloudWatch and
Slack; anomaly counts go to CloudWatch.

The path is: a check (or run, or anomaly_incidents or anomaly_log materialisation) writes an
event -> an alert sensor reads the event log after its cursor -> `AlertSinks` publishes to SNS, puts CloudWatch metrics
and posts to Slack when a webhook is configured.
"""
