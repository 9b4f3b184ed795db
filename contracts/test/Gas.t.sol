// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {ChorusFixture} from "./utils/ChorusFixture.sol";
import {vm} from "./utils/Vm.sol";

/// @title GasTest
/// @notice One publication per test, with all setup done in `setUp`, so that each publication
/// starts with cold storage like a real transaction: `forge test --match-contract GasTest
/// --gas-report` shows the hot-path costs (d = 384 f32, i.e. 1536 bytes, and one decision).
contract GasTest is ChorusFixture {
    address internal embedder = address(0xE1);
    address internal decider = address(0xD1);
    uint256 internal taskId;
    bytes internal vector;

    function setUp() public override {
        super.setUp();
        _registerAgent(embedder, 0, true);
        _registerAgent(decider, 0, true);
        taskId = _submit(1 ether, 2, uint64(START + 1 hours), 3);
        vector = _vector(uint256(DIM) * 4, 42);
    }

    function test_gas_publishEmbedding_384_f32() public {
        vm.prank(embedder);
        board.publishEmbedding(taskId, MODEL, 0, vector);
    }

    function test_gas_publishDecision_first() public {
        vm.prank(decider);
        board.publishDecision(taskId, 2, 7500);
    }

    function test_gas_publishDecision_afterEmbedding() public {
        _embed(decider, taskId);
        vm.prank(decider);
        board.publishDecision(taskId, 2, 7500);
    }
}
// forge-lint: disable-end(unsafe-typecast)
