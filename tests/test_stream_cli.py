"""`lockerlink transform` and `lockerlink schemas export`, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from lockerlink.cli import _add_component_commands, cli
from schemas.export import SCHEMA_DIR, exported_schemas
from schemas.locker_order import LockerOrderEvent

ORDER = {
    "id": "CLIORDER00001",
    "merchant": {"id": "MCLI"},
    "title": "uber eats Rebecca",
    "externalReferenceId": "a3c1e2f4-1b2c-4d5e-8f90-123456abc953",
    "total": "1850",
    "modifiedTime": 1733095800000,
    "lineItems": {"elements": [{"name": "Pho ", "price": 1850}]},
}


def _runner() -> CliRunner:
    _add_component_commands()
    return CliRunner()


def test_transform_prints_the_locker_order_event() -> None:
    result = _runner().invoke(
        cli, ["transform", "--store", "downtown", "-"], input=json.dumps(ORDER)
    )
    assert result.exit_code == 0, result.output
    event = LockerOrderEvent.model_validate_json(result.stdout)
    assert event.store_id == "downtown"
    assert event.merchant_id == "MCLI"
    assert event.source.platform_order_code == "BC953"
    assert event.pickup.pin == "22953"
    assert event.customer.display_name == "Rebecca"


def test_transform_uses_the_registry_file(tmp_path: Path) -> None:
    registry = tmp_path / "stores.yaml"
    registry.write_text(
        "stores:\n"
        "  - store_id: uptown\n"
        "    merchant_ids: [MCLI]\n"
        "    pin_policy:\n"
        "      delivery: {source: platform_code, keypad: alphanumeric, length: 5}\n"
    )
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(ORDER))
    result = _runner().invoke(
        cli, ["transform", "--registry", str(registry), str(order_file)]
    )
    assert result.exit_code == 0, result.output
    event = LockerOrderEvent.model_validate_json(result.stdout)
    assert (event.store_id, event.pickup.pin) == ("uptown", "BC953")


def test_transform_of_a_merchant_without_store_exits_2_with_the_reason(
    tmp_path: Path,
) -> None:
    registry = tmp_path / "stores.yaml"
    registry.write_text("stores:\n  - store_id: uptown\n    merchant_ids: [OTHER]\n")
    result = _runner().invoke(
        cli, ["transform", "--registry", str(registry)], input=json.dumps(ORDER)
    )
    assert result.exit_code == 2
    assert "no_store" in result.stderr
    assert result.stdout == ""


def test_transform_of_broken_json_exits_2_with_the_reason() -> None:
    result = _runner().invoke(cli, ["transform"], input='{"id": ')
    assert result.exit_code == 2
    assert "invalid_json" in result.stderr


def test_committed_schema_files_equal_the_export() -> None:
    for name, text in exported_schemas().items():
        committed = (SCHEMA_DIR / name).read_text(encoding="utf-8")
        assert committed == text, f"run `lockerlink schemas export`: {name} is stale"


def test_schemas_export_writes_every_schema(tmp_path: Path) -> None:
    result = _runner().invoke(cli, ["schemas", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(exported_schemas())
    schema = json.loads((tmp_path / "locker-order.v1.json").read_text())
    assert schema["additionalProperties"] is False
    assert "pickup" in schema["required"]
