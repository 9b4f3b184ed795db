// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {AgentRegistry} from "../src/AgentRegistry.sol";
import {Chorus} from "../src/Chorus.sol";
import {TaskBoard} from "../src/TaskBoard.sol";
import {ChorusFixture} from "./utils/ChorusFixture.sol";
import {vm} from "./utils/Vm.sol";

/// @notice TaskBoard batched publications: publishDecisions and publishEmbeddings.
contract TaskBoardBatchTest is ChorusFixture {
    uint64 internal deadline = uint64(START + 1 hours);
    address internal market;
    address internal sentiment;
    uint256[] internal ids;

    function setUp() public override {
        super.setUp();
        _registerRoles();
        market = roleAgents[0];
        sentiment = roleAgents[1];
        for (uint256 i; i < 4; ++i) {
            ids.push(_submit(1 ether, 2, deadline, 3));
        }
    }

    /// @dev One `publishDecisions` item.
    function _item(uint256 taskId, uint8 action, uint16 confidence) internal pure returns (uint256) {
        return (taskId << 24) | (uint256(action) << 16) | confidence;
    }

    function _items2(uint256 a, uint256 b) internal pure returns (uint256[] memory items) {
        items = new uint256[](2);
        (items[0], items[1]) = (a, b);
    }

    function _decideBatch(address agent, uint256[] memory items) internal {
        vm.prank(agent);
        board.publishDecisions(items);
    }

    /*//////////////////////////////////////////////////////////////
                               DECISIONS
    //////////////////////////////////////////////////////////////*/

    function test_publishDecisions() public {
        uint256[] memory items = new uint256[](3);
        items[0] = _item(ids[0], 2, 7500);
        items[1] = _item(ids[1], 0, 10_000);
        items[2] = _item(ids[2], 1, 0);
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.DecisionPublished(ids[0], sentiment, 1, 2, 7500);
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.DecisionPublished(ids[1], sentiment, 1, 0, 10_000);
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.DecisionPublished(ids[2], sentiment, 1, 1, 0);
        _decideBatch(sentiment, items);
        (,, uint64 buy) = board.tallies(ids[0]);
        assertEq(buy, 3000 * 7500, "buy tally of task 0");
        (uint64 sell,,) = board.tallies(ids[1]);
        assertEq(sell, 3000 * 10_000, "sell tally of task 1");
        for (uint256 i; i < 3; ++i) {
            (uint16 decisions, uint16 contributors) = _counts(ids[i]);
            assertEq(decisions, 1, "decisions");
            assertEq(contributors, 1, "contributors");
            (bool e, bool d,) = board.published(ids[i], sentiment);
            assertTrue(d && !e, "decision flag");
        }
        (, bool untouched,) = board.published(ids[3], sentiment);
        assertFalse(untouched, "task 3 not in the batch");
    }

    /// @dev A batch leaves every task's hot slot exactly as the same decisions published one by one.
    function testFuzz_publishDecisions_equalsIndividual(uint8[4] memory actions, uint16[4] memory confs, bool embedFirst)
        public
    {
        uint256[] memory items = new uint256[](4);
        uint256[4] memory others;
        for (uint256 i; i < 4; ++i) {
            actions[i] = uint8(bound(actions[i], 0, 2));
            confs[i] = uint16(bound(confs[i], 0, 10_000));
            items[i] = _item(ids[i], actions[i], confs[i]);
            others[i] = _submit(1 ether, 2, deadline, 3);
            if (embedFirst && i % 2 == 0) {
                _embed(market, ids[i]);
                _embed(market, others[i]);
            }
        }
        _decideBatch(market, items);
        for (uint256 i; i < 4; ++i) {
            _decide(market, others[i], actions[i], confs[i]);
        }
        for (uint256 i; i < 4; ++i) {
            assertEq(
                vm.load(address(board), _stateSlot(ids[i])), vm.load(address(board), _stateSlot(others[i])), "hot slot"
            );
        }
    }

    function test_publishDecisions_finalizeAfter() public {
        uint256 id = _submit(1 ether, 2, deadline, 1);
        uint256[] memory items = new uint256[](1);
        items[0] = _item(id, 2, 10_000);
        _decideBatch(market, items);
        _finalize(id);
        assertEq(_status(id), 2, "finalized");
    }

    function test_publishDecisions_revert_EmptyBatch() public {
        vm.expectRevert(TaskBoard.EmptyBatch.selector);
        _decideBatch(market, new uint256[](0));
    }

    function test_publishDecisions_revert_UnknownAgent() public {
        address stranger = address(0x5757);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownAgent.selector, stranger));
        _decideBatch(stranger, _items2(_item(ids[0], 2, 1), _item(ids[1], 2, 1)));
    }

    function testFuzz_publishDecisions_revert_InvalidAction(uint8 action) public {
        action = uint8(bound(action, 3, 255));
        vm.expectRevert(TaskBoard.InvalidAction.selector);
        _decideBatch(market, _items2(_item(ids[0], 2, 1), _item(ids[1], action, 1)));
    }

    function testFuzz_publishDecisions_revert_InvalidConfidence(uint16 confidence) public {
        confidence = uint16(bound(confidence, 10_001, type(uint16).max));
        vm.expectRevert(TaskBoard.InvalidConfidence.selector);
        _decideBatch(market, _items2(_item(ids[0], 2, 1), _item(ids[1], 2, confidence)));
    }

    function test_publishDecisions_revert_DuplicateDecision_inBatch() public {
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateDecision.selector, ids[1], market));
        _decideBatch(market, _items2(_item(ids[1], 2, 1), _item(ids[1], 0, 1)));
    }

    function test_publishDecisions_revert_DuplicateDecision_onChain() public {
        _decide(market, ids[1], 2, 1);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateDecision.selector, ids[1], market));
        _decideBatch(market, _items2(_item(ids[0], 2, 1), _item(ids[1], 2, 1)));
        (, bool d,) = board.published(ids[0], market);
        assertFalse(d, "the whole batch reverted");
    }

    function testFuzz_publishDecisions_revert_UnknownTask(uint256 id) public {
        id = bound(id, board.taskCount() + 1, type(uint232).max);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownTask.selector, id));
        _decideBatch(market, _items2(_item(ids[0], 2, 1), _item(id, 2, 1)));
    }

    function test_publishDecisions_revert_AlreadyFinalized() public {
        uint256 id = _submit(0, 2, deadline, 1);
        _decide(sentiment, id, 2, 1);
        _finalize(id);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.AlreadyFinalized.selector, id));
        _decideBatch(market, _items2(_item(ids[0], 2, 1), _item(id, 2, 1)));
    }

    function test_publishDecisions_revert_PastDeadline() public {
        uint64 early = uint64(START + 10);
        uint256 id = _submit(0, 2, early, 1);
        vm.warp(early + 1);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.PastDeadline.selector, id, early));
        _decideBatch(market, _items2(_item(ids[0], 2, 1), _item(id, 2, 1)));
    }

    function test_publishDecisions_revert_TooManyContributors() public {
        _embed(market, ids[2]);
        _setContributors(ids[1], type(uint16).max);
        _setContributors(ids[2], type(uint16).max);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.TooManyContributors.selector, ids[1]));
        _decideBatch(market, _items2(_item(ids[0], 2, 1), _item(ids[1], 2, 1)));
        // An existing contributor may still decide.
        _decideBatch(market, _items2(_item(ids[0], 2, 1), _item(ids[2], 2, 1)));
        (uint16 decisions, uint16 contributors) = _counts(ids[2]);
        assertEq(decisions, 1, "decided");
        assertEq(contributors, type(uint16).max, "contributors unchanged");
    }

    /// @dev Tasks of several architectures in one batch, in any order (the weight is cached from
    /// one item to the next while the architecture stays the same), after an optional weight
    /// change: each tally is the weight `weights(arch, role)` at publication times the confidence.
    function testFuzz_publishDecisions_weightPerArchitecture(
        uint8[6] memory archs,
        uint8 role,
        uint16 confidence,
        uint16 newWeight,
        bool changeWeight
    ) public {
        role = uint8(bound(role, 0, Chorus.MAX_ROLE));
        confidence = uint16(bound(confidence, 0, 10_000));
        uint256[] memory items = new uint256[](6);
        uint256[6] memory tasks;
        for (uint256 i; i < 6; ++i) {
            archs[i] = uint8(bound(archs[i], 0, Chorus.MAX_ARCH));
            tasks[i] = _submit(0, archs[i], deadline, 3);
            items[i] = _item(tasks[i], 0, confidence);
        }
        if (changeWeight) {
            vm.prank(owner);
            board.setWeight(archs[5], role, newWeight);
        }
        _decideBatch(roleAgents[role], items);
        for (uint256 i; i < 6; ++i) {
            (uint64 sell,,) = board.tallies(tasks[i]);
            assertEq(sell, uint256(board.weights(archs[i], role)) * confidence, "sell tally");
        }
    }

    /// @dev The number literals and the event topic that `publishDecisions`' assembly uses equal
    /// the layout expressions and the event they stand for.
    function test_publishDecisions_assemblyConstants() public {
        (uint256[7] memory got, uint256[7] memory want) = new TaskBoardFieldsHarness(registry).fields();
        for (uint256 i; i < 7; ++i) {
            assertEq(got[i], want[i], "literal");
        }
    }

    /*//////////////////////////////////////////////////////////////
                               EMBEDDINGS
    //////////////////////////////////////////////////////////////*/

    function _embedBatch(address agent, uint256[] memory taskIds, bytes32 modelId, uint8 encoding, bytes memory v)
        internal
    {
        vm.prank(agent);
        board.publishEmbeddings(taskIds, modelId, encoding, v);
    }

    function _slice(bytes memory v, uint256 start, uint256 len) internal pure returns (bytes memory out) {
        out = new bytes(len);
        for (uint256 i; i < len; ++i) out[i] = v[start + i];
    }

    function testFuzz_publishEmbeddings(uint8 count, uint8 encoding, uint256 seed) public {
        uint256 n = bound(count, 1, 4);
        encoding = uint8(bound(encoding, 0, 3));
        uint256 len = encoding == 0 ? 4 * uint256(DIM) : encoding == 1 ? 2 * uint256(DIM) : encoding == 2
            ? uint256(DIM)
            : (uint256(DIM) + 7) / 8;
        uint256[] memory taskIds = new uint256[](n);
        for (uint256 i; i < n; ++i) taskIds[i] = ids[i];
        _decide(market, ids[0], 2, 1);
        bytes memory vectors = _vector(len * n, seed);
        for (uint256 i; i < n; ++i) {
            vm.expectEmit(true, true, true, true, address(board));
            emit TaskBoard.EmbeddingPublished(ids[i], market, MODEL, encoding, _slice(vectors, i * len, len));
        }
        _embedBatch(market, taskIds, MODEL, encoding, vectors);
        for (uint256 i; i < n; ++i) {
            (bool e, bool d,) = board.published(ids[i], market);
            assertTrue(e, "embedding flag");
            assertEq(d, i == 0, "decision flag untouched");
            (, uint16 contributors) = _counts(ids[i]);
            assertEq(contributors, 1, "counted once, with or without the earlier decision");
        }
    }

    function test_publishEmbeddings_revert_EmptyBatch() public {
        vm.expectRevert(TaskBoard.EmptyBatch.selector);
        _embedBatch(market, new uint256[](0), MODEL, 0, "");
    }

    function test_publishEmbeddings_revert_UnknownAgent() public {
        address stranger = address(0x5757);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownAgent.selector, stranger));
        _embedBatch(stranger, _items2(ids[0], ids[1]), MODEL, 2, _vector(2 * uint256(DIM), 1));
    }

    function testFuzz_publishEmbeddings_revert_ModelMismatch(bytes32 other) public {
        vm.assume(other != MODEL);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.ModelMismatch.selector, MODEL, other));
        _embedBatch(market, _items2(ids[0], ids[1]), other, 2, _vector(2 * uint256(DIM), 1));
    }

    function test_publishEmbeddings_revert_ModelMismatch_noModel() public {
        address agent = address(0xD0);
        _registerAgent(agent, 1, false);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.ModelMismatch.selector, bytes32(0), MODEL));
        _embedBatch(agent, _items2(ids[0], ids[1]), MODEL, 2, _vector(2 * uint256(DIM), 1));
    }

    function testFuzz_publishEmbeddings_revert_InvalidEncoding(uint8 encoding) public {
        encoding = uint8(bound(encoding, 4, 255));
        vm.expectRevert(TaskBoard.InvalidEncoding.selector);
        _embedBatch(market, _items2(ids[0], ids[1]), MODEL, encoding, _vector(2 * uint256(DIM), 1));
    }

    function testFuzz_publishEmbeddings_revert_WrongLength(uint256 len) public {
        len = bound(len, 0, 4 * uint256(DIM));
        vm.assume(len != 2 * uint256(DIM));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.WrongLength.selector, 2 * uint256(DIM), len));
        _embedBatch(market, _items2(ids[0], ids[1]), MODEL, 2, _vector(len, 1));
    }

    function test_publishEmbeddings_revert_DuplicateEmbedding() public {
        _embed(market, ids[1]);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateEmbedding.selector, ids[1], market));
        _embedBatch(market, _items2(ids[0], ids[1]), MODEL, 2, _vector(2 * uint256(DIM), 1));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateEmbedding.selector, ids[0], market));
        _embedBatch(market, _items2(ids[0], ids[0]), MODEL, 2, _vector(2 * uint256(DIM), 1));
    }

    function test_publishEmbeddings_revert_UnknownTask() public {
        uint256 id = board.taskCount() + 1;
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownTask.selector, id));
        _embedBatch(market, _items2(ids[0], id), MODEL, 2, _vector(2 * uint256(DIM), 1));
    }

    function test_publishEmbeddings_revert_PastDeadline() public {
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.PastDeadline.selector, ids[0], deadline));
        _embedBatch(market, _items2(ids[0], ids[1]), MODEL, 2, _vector(2 * uint256(DIM), 1));
    }
}
/// @notice Exposes the number literals of `TaskBoard._publishItems`' assembly beside the
/// expressions they stand for.
contract TaskBoardFieldsHarness is TaskBoard {
    constructor(AgentRegistry registry_) TaskBoard(registry_, address(1)) {}

    function fields() external pure returns (uint256[7] memory got, uint256[7] memory want) {
        got = [
            _ARCH_FIELD,
            _MAX_ARCH_FIELD,
            _STATUS_FIELD,
            _OPEN_FIELD,
            _ONE_DECISION_FIELD,
            _CONTRIBUTORS_FIELD,
            uint256(_DECISION_PUBLISHED_TOPIC)
        ];
        want = [
            uint256(0xff) << _ARCH_SHIFT,
            uint256(Chorus.MAX_ARCH) << _ARCH_SHIFT,
            _STATUS_MASK,
            _STATUS_OPEN << _STATUS_SHIFT,
            _ONE_DECISION,
            _MAX_COUNT << _CONTRIBUTORS_SHIFT,
            uint256(DecisionPublished.selector)
        ];
    }
}
// forge-lint: disable-end(unsafe-typecast)
