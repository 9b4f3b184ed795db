"""ModelRegistry alignments through the facade: register_alignment and alignment against the session
Anvil, with a map fitted by `models.align` (its map_id is what goes on chain)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.align import fit_procrustes
from node.chain.abi import ContractInterface
from node.chain.artifacts import load_protocol_artifacts
from node.chain.events import AlignmentInfo, AlignmentRegistered, snake_case
from node.protocol.enums import Encoding
from node.protocol.errors import ContractRevert

from chainhelpers import model_id


def test_alignment_info_matches_the_view_outputs() -> None:
    abi = load_protocol_artifacts()["ModelRegistry"].abi
    fn = ContractInterface("ModelRegistry", abi).function("alignment")
    assert [f.name for f in dataclasses.fields(AlignmentInfo)] == [snake_case(n) for n in fn.output_names]


def test_register_alignment_and_read_it_back(chain) -> None:
    c = chain.contracts(6)
    src, dst = model_id("align-from-8"), model_id("align-to-4")
    c.register_model(src, 8, Encoding.F32, "from-8")
    c.register_model(dst, 4, Encoding.F16, "to-4")
    rng = np.random.default_rng(0)
    fitted = fit_procrustes(rng.normal(size=(16, 8)), rng.normal(size=(16, 4)))
    assert c.alignment(src, dst) == AlignmentInfo(bytes(32), 0, 0, "0x" + "0" * 40)

    event = c.register_alignment(src, dst, fitted.map_id, 8, 4, fitted.method).event(AlignmentRegistered)
    assert (event.from_model, event.to_model, event.map_id, event.in_dim, event.out_dim, event.method,
            event.registrant) == (src, dst, fitted.map_id, 8, 4, "procrustes", c.client.address)
    assert c.alignment(src, dst) == AlignmentInfo(fitted.map_id, 8, 4, c.client.address)
    assert c.alignment(dst, src).map_id == bytes(32)

    def revert(*args) -> ContractRevert:
        with pytest.raises(ContractRevert) as info:
            c.register_alignment(*args)
        return info.value

    err = revert(src, dst, model_id("another map"), 8, 4, "cca")
    assert (err.error_name, err.error_args) == ("AlignmentAlreadyRegistered", {"fromModel": src, "toModel": dst})
    err = revert(dst, src, model_id("back"), 8, 8, "procrustes")  # wrong input dim: `dst` is 4-d
    assert (err.error_name, err.error_args) == ("DimMismatch", {"expected": 4, "got": 8})
    err = revert(src, model_id("unregistered"), model_id("x"), 8, 4, "procrustes")
    assert err.error_name == "UnknownModel"
    assert revert(src, src, model_id("x"), 8, 8, "procrustes").error_name == "SameModel"
    assert revert(dst, src, bytes(32), 4, 8, "procrustes").error_name == "ZeroMapId"
