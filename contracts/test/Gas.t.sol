// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {TaskBoard} from "../src/TaskBoard.sol";
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

/// @title GasTestBatch
/// @notice Batched publications from one agent, one fresh task per item (every write a real first
/// publication). Bounds: measured + 1%, as in `GasTest`.
contract GasTestBatch is GasFixture {
    /// @dev Measured 38,156: a one-item batch: `publishDecision` plus the array's decoding.
    uint256 internal constant DECISIONS_1_MAX = 38_538;
    /// @dev Measured 247,218: about 29,870 per further item on a fresh task, of which 29,368 are
    /// the item's SSTOREs (27,100) and log (2,268); `python -m node.bench.gasbatch` puts the
    /// transaction at 1.048x its floor (the bound allows 1.057x; the goal is at most 1.05x).
    uint256 internal constant DECISIONS_8_MAX = 249_691;
    /// @dev Measured 964,002.
    uint256 internal constant DECISIONS_32_MAX = 973_643;
    /// @dev Measured 354,409.
    uint256 internal constant EMBEDDINGS_8_384_F32_MAX = 357_954;

    uint256[] internal batchTasks;

    function setUp() public override {
        super.setUp();
        for (uint256 i; i < 32; ++i) {
            batchTasks.push(_submit(1 ether, 2, uint64(START + 1 hours), 3));
        }
    }

    function _decisions(uint256 n) internal view returns (uint256[] memory items) {
        items = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            items[i] = (batchTasks[i] << 24) | (uint256(i % 3) << 16) | (7500 + i);
        }
    }

    function test_gas_publishDecisions_1() public {
        uint256[] memory items = _decisions(1);
        vm.prank(decider);
        board.publishDecisions(items);
        _assertGasAtMost(DECISIONS_1_MAX, "publishDecisions (1)");
    }

    function test_gas_publishDecisions_8() public {
        uint256[] memory items = _decisions(8);
        vm.prank(decider);
        board.publishDecisions(items);
        _assertGasAtMost(DECISIONS_8_MAX, "publishDecisions (8)");
    }

    /// @dev The goal behind `DECISIONS_8_MAX`: the batch of 8 as a transaction (21,000, its
    /// calldata and the execution measured here) costs at most 1.05x the floor of
    /// `node.bench.gasbatch`: `21000 + max(calldata + logs + sstores, 10 * tokens)`, with per item
    /// a flags slot set (22,100), the task's hot slot rewritten (5,000) and a three-topic log of
    /// three words (375 + 3 * 375 + 8 * 96).
    function test_gas_publishDecisions_8_floorRatio() public {
        uint256[] memory items = _decisions(8);
        bytes memory data = abi.encodeCall(TaskBoard.publishDecisions, (items));
        vm.prank(decider);
        board.publishDecisions(items);
        uint256 used = vm.lastCallGas().gasTotalUsed;
        uint256 zeros;
        for (uint256 i; i < data.length; ++i) {
            if (data[i] == 0) ++zeros;
        }
        uint256 calldataGas = 4 * zeros + 16 * (data.length - zeros);
        uint256 tokenFloor = 10 * (zeros + 4 * (data.length - zeros));
        uint256 standard = calldataGas + 8 * (22_100 + 5_000 + 375 + 3 * 375 + 8 * 96);
        uint256 floor = 21_000 + (standard > tokenFloor ? standard : tokenFloor);
        vm.assertLe((21_000 + calldataGas + used) * 100, floor * 105, "publishDecisions (8) within 1.05x of its floor");
    }

    function test_gas_publishDecisions_32() public {
        uint256[] memory items = _decisions(32);
        vm.prank(decider);
        board.publishDecisions(items);
        _assertGasAtMost(DECISIONS_32_MAX, "publishDecisions (32)");
    }

    function test_gas_publishEmbeddings_8_384_f32() public {
        uint256[] memory ids = new uint256[](8);
        for (uint256 i; i < 8; ++i) ids[i] = batchTasks[i];
        bytes memory vectors = _vector(8 * uint256(DIM) * 4, 43);
        vm.prank(embedder);
        board.publishEmbeddings(ids, MODEL, 0, vectors);
        _assertGasAtMost(EMBEDDINGS_8_384_F32_MAX, "publishEmbeddings (8 x 384 f32)");
    }
}

/// @title GasTestReport
/// @notice `submitReport` with 3 and 16 signers on a task whose quorum the report reaches, so it
/// finalizes in the same transaction. Bounds: measured + 1%, as in `GasTest`.
contract GasTestReport is GasFixture {
    /// @dev Measured 161,433: the aggregator's registry call, three signatures and the finalization.
    uint256 internal constant REPORT_3_MAX = 163_048;
    /// @dev Measured 545,087: about 29,500 per further signer (ecrecover 3,000, its record's two
    /// cold slots, its flags slot set from zero, 22,100).
    uint256 internal constant REPORT_16_MAX = 550_538;
    /// @dev Measured 52,542 on a task with no reward and nothing published yet: no flags written,
    /// no funds slot or `escrowed` touched.
    uint256 internal constant REPORT_3_BARE_MAX = 53_068;
    /// @dev Measured 183,439: about 10,100 per further signer.
    uint256 internal constant REPORT_16_BARE_MAX = 185_274;
    /// @dev Measured 49,665: the bare report of 3 sent by one of its signers, as nodes do (the
    /// aggregator of a task is one of its agents): the sender needs no registry call of its own.
    uint256 internal constant REPORT_3_BARE_SIGNER_MAX = 50_162;

    uint256 internal task3;
    uint256 internal task16;
    uint256 internal bare3;
    uint256 internal bare16;

    function setUp() public override {
        super.setUp();
        for (uint256 i = 1; i <= 16; ++i) {
            _registerAgent(vm.addr(i), uint8(i % 3), true);
        }
        task3 = _submit(1 ether, 2, uint64(START + 1 hours), 3);
        task16 = _submit(1 ether, 2, uint64(START + 1 hours), 16);
        bare3 = _submit(0, 2, uint64(START + 1 hours), 3);
        bare16 = _submit(0, 2, uint64(START + 1 hours), 16);
    }

    /// @dev The decisions of keys 1..n on task `id`, signers in ascending address order.
    function _report(uint256 id, uint256 n) internal view returns (TaskBoard.SignedDecision[] memory ds) {
        ds = new TaskBoard.SignedDecision[](n);
        for (uint256 i; i < n; ++i) {
            uint256 key = i + 1;
            address agent = vm.addr(key);
            uint8 action = uint8(i % 3);
            uint16 confidence = uint16(6000 + i);
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, board.decisionDigest(id, action, confidence, MODEL, agent));
            uint256 head =
                (uint256(uint160(agent)) << 96) | (uint256(v) << 24) | (uint256(action) << 16) | uint256(confidence);
            TaskBoard.SignedDecision memory d = TaskBoard.SignedDecision(head, r, s);
            uint256 j = i;
            for (; j > 0 && ds[j - 1].head >> 96 > uint160(agent); --j) {
                ds[j] = ds[j - 1];
            }
            ds[j] = d;
        }
    }

    /// @dev Sends the report of keys 1..n on task `id` from `decider` and holds it to `max`.
    function _measureReport(uint256 id, uint256 n, uint256 max, string memory what) internal {
        TaskBoard.SignedDecision[] memory ds = _report(id, n);
        vm.prank(decider);
        board.submitReport(id, ds);
        _assertGasAtMost(max, what);
    }

    function test_gas_submitReport_3() public {
        _measureReport(task3, 3, REPORT_3_MAX, "submitReport (3 signers, finalizes)");
    }

    function test_gas_submitReport_16() public {
        _measureReport(task16, 16, REPORT_16_MAX, "submitReport (16 signers, finalizes)");
    }

    function test_gas_submitReport_3_bare() public {
        _measureReport(bare3, 3, REPORT_3_BARE_MAX, "submitReport (3 signers, no reward, closes bare)");
    }

    function test_gas_submitReport_3_bare_fromSigner() public {
        TaskBoard.SignedDecision[] memory ds = _report(bare3, 3);
        vm.prank(vm.addr(2));
        board.submitReport(bare3, ds);
        _assertGasAtMost(REPORT_3_BARE_SIGNER_MAX, "submitReport (3 signers, no reward, closes bare, sent by a signer)");
    }

    function test_gas_submitReport_16_bare() public {
        _measureReport(bare16, 16, REPORT_16_BARE_MAX, "submitReport (16 signers, no reward, closes bare)");
    }
}

/// @title GasTestAlignment
/// @notice `registerAlignment` from the fixture's 384-d model into a second, 256-d one: two fresh
/// slots and the event. Bound: measured + 1%, as in `GasTest`.
contract GasTestAlignment is GasFixture {
    /// @dev Measured 53,450: two cold model reads (2,100 each), two slots set from zero (22,100 each)
    /// and the event with its three topics and the method string.
    uint256 internal constant REGISTER_ALIGNMENT_MAX = 53_985;

    bytes32 internal constant OTHER = keccak256("other-model.onnx");
    bytes32 internal constant MAP = keccak256("map bytes");

    function setUp() public override {
        super.setUp();
        models.register(OTHER, 256, 0, "other");
    }

    function test_gas_registerAlignment() public {
        models.registerAlignment(MODEL, OTHER, MAP, DIM, 256, "procrustes");
        _assertGasAtMost(REGISTER_ALIGNMENT_MAX, "registerAlignment (384 -> 256)");
    }
}
// forge-lint: disable-end(unsafe-typecast)
