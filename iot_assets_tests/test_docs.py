"""The documentation stays true to the code: the generated settings reference is current."""

from pathlib import Path

from iot_assets import settings

ROOT = Path(__file__).resolve().parents[1]


def test_settings_reference_is_current():
    generated = settings.reference_markdown()
    assert all(f"| `{s.env}` |" in generated for s in settings.SETTINGS)
    current = (ROOT / "docs" / "settings.md").read_text()
    assert current == generated, "docs/settings.md is stale; run make docs"
