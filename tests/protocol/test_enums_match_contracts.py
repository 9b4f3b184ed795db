"""The Python enums carry the contracts' values: each id is declared once per language, and this
test holds the two declarations (node/protocol/enums.py, contracts/src/Chorus.sol) together."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from node.protocol.enums import Action, Arch, Encoding, Modality, Role

CHORUS_SOL = Path(__file__).resolve().parents[2] / "contracts" / "src" / "Chorus.sol"


def _constants() -> dict[str, int]:
    text = CHORUS_SOL.read_text()
    found = dict(re.findall(r"uint\d+ internal constant (\w+) = (\w+);", text))
    values: dict[str, int] = {}
    for name, value in found.items():
        values[name] = int(value.replace("_", "")) if value[0].isdigit() else values[value]
    return values


def test_every_role_and_architecture_id_is_the_contracts() -> None:
    sol = _constants()
    assert {k.removeprefix("ROLE_"): v for k, v in sol.items() if k.startswith("ROLE_")} == \
        {r.name: int(r) for r in Role}
    assert {k.removeprefix("ARCH_"): v for k, v in sol.items() if k.startswith("ARCH_")} == \
        {a.name: int(a) for a in Arch}


@pytest.mark.parametrize(("enum", "bound"), [(Role, "MAX_ROLE"), (Modality, "MAX_MODALITY"),
                                             (Encoding, "MAX_ENCODING"), (Action, "MAX_ACTION")])
def test_each_enum_ends_where_the_contracts_bound_it(enum, bound: str) -> None:
    assert max(int(m) for m in enum) == _constants()[bound]
    assert sorted(int(m) for m in enum) == list(range(len(enum)))


def test_hold_is_the_tie_action_on_both_sides() -> None:
    assert _constants()["HOLD"] == Action.HOLD
