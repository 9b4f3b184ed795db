// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {ChorusFixture} from "./utils/ChorusFixture.sol";
import {vm} from "./utils/Vm.sol";

/// @title GasFixture
/// @notice One registered embedder and decider, one open task, one 384-d f32 vector (1536 bytes).
/// Everything is set up in `setUp`, so each measured publication starts with cold storage like
/// a real transaction.
abstract contract GasFixture is ChorusFixture {
    address internal embedder = address(0xE1);
    address internal decider = address(0xD1);
    uint256 internal taskId;
    bytes internal vector;

    function setUp() public virtual override {
        super.setUp();
        _registerAgent(embedder, 0, true);
        _registerAgent(decider, 0, true);
        taskId = _submit(1 ether, 2, uint64(START + 1 hours), 3);
        vector = _vector(uint256(DIM) * 4, 42);
    }

    /// @dev Fails when the last call used more than `bound` gas (execution in the callee, without
    /// the 21000 base and calldata of a transaction: those the contract cannot change).
    function _assertGasAtMost(uint256 bound, string memory what) internal view {
        uint256 used = vm.lastCallGas().gasTotalUsed;
        vm.assertLe(used, bound, what);
    }
}

/// @title GasTest
/// @notice The hot-path costs, each under a bound, so a regression fails the suite. Bounds are the
/// measured gas (forge 1.7.1, solc 0.8.37, optimizer 10000 runs) plus 1%: a real improvement
/// passes, and lowering a bound after one is a one-line change.
contract GasTest is GasFixture {
    /// @dev Measured 51,517.
    uint256 internal constant EMBEDDING_384_F32_MAX = 52_033;
    /// @dev Measured 38,133: a first publication, so the agent becomes a contributor.
    uint256 internal constant DECISION_FIRST_MAX = 38_515;
    /// @dev Measured 41,235: the decision plus a second log with the three probabilities.
    uint256 internal constant PROBABILITIES_FIRST_MAX = 41_647;

    function test_gas_publishEmbedding_384_f32() public {
        (uint256 id, bytes memory v) = (taskId, vector);
        vm.prank(embedder);
        board.publishEmbedding(id, MODEL, 0, v);
        _assertGasAtMost(EMBEDDING_384_F32_MAX, "publishEmbedding (384 f32)");
    }

    function test_gas_publishDecision_first() public {
        uint256 id = taskId;
        vm.prank(decider);
        board.publishDecision(id, 2, 7500);
        _assertGasAtMost(DECISION_FIRST_MAX, "publishDecision (first on the task)");
    }

    function test_gas_publishProbabilities_first() public {
        uint256 id = taskId;
        vm.prank(decider);
        board.publishProbabilities(id, [uint16(1000), 1500, 7500]);
        _assertGasAtMost(PROBABILITIES_FIRST_MAX, "publishProbabilities (first on the task)");
    }
}

/// @title GasTestAfterEmbedding
/// @notice A decision from an agent whose embedding is already on chain, in a transaction of its
/// own (the embedding is published in `setUp`, so the decision starts cold).
contract GasTestAfterEmbedding is GasFixture {
    /// @dev Measured 20,942 (bound: measured + 1%, as in `GasTest`).
    uint256 internal constant DECISION_AFTER_EMBEDDING_MAX = 21_152;

    function setUp() public override {
        super.setUp();
        _embed(decider, taskId);
    }

    function test_gas_publishDecision_afterEmbedding() public {
        uint256 id = taskId;
        vm.prank(decider);
        board.publishDecision(id, 2, 7500);
        _assertGasAtMost(DECISION_AFTER_EMBEDDING_MAX, "publishDecision (after its embedding)");
    }
}
// forge-lint: disable-end(unsafe-typecast)
