// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {Chorus} from "../src/Chorus.sol";
import {TaskBoard} from "../src/TaskBoard.sol";
import {ChorusFixture} from "./utils/ChorusFixture.sol";
import {vm} from "./utils/Vm.sol";

/// @notice TaskBoard publications: publishEmbedding, publishDecision and publishProbabilities.
contract TaskBoardPublishTest is ChorusFixture {
    uint256 internal taskId;
    uint64 internal deadline = uint64(START + 1 hours);
    address internal market;

    function setUp() public override {
        super.setUp();
        _registerRoles();
        market = roleAgents[0];
        taskId = _submit(1 ether, 2, deadline, 3);
    }

    /*//////////////////////////////////////////////////////////////
                               EMBEDDINGS
    //////////////////////////////////////////////////////////////*/

    function test_publishEmbedding() public {
        bytes memory vector = _vector(uint256(DIM) * 4, 7);
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.EmbeddingPublished(taskId, market, MODEL, 0, vector);
        vm.prank(market);
        board.publishEmbedding(taskId, MODEL, 0, vector);
        (bool e, bool d, bool c) = board.published(taskId, market);
        assertTrue(e, "embedding flag");
        assertFalse(d || c, "other flags");
        (uint16 decisions, uint16 contributors) = _counts(taskId);
        assertEq(decisions, 0, "decisions");
        assertEq(contributors, 1, "contributors");
    }

    function test_publishEmbedding_atDeadline() public {
        vm.warp(deadline);
        _embed(market, taskId);
        (bool e,,) = board.published(taskId, market);
        assertTrue(e, "published at the deadline itself");
    }

    function testFuzz_publishEmbedding(uint16 dim, uint8 dtype, uint8 encoding, uint256 seed) public {
        dim = uint16(bound(dim, 1, 1024));
        dtype = uint8(bound(dtype, 0, 3));
        encoding = uint8(bound(encoding, 0, 3));
        bytes32 modelId = keccak256(abi.encode("fuzz model", dim, dtype));
        models.register(modelId, dim, dtype, "fuzz");
        address agent = address(0xF00D);
        vm.deal(agent, MIN_STAKE);
        vm.prank(agent);
        registry.register{value: MIN_STAKE}(2, 3, ENDPOINT, modelId, dim);

        uint256 len = encoding == 0 ? 4 * uint256(dim) : encoding == 1 ? 2 * uint256(dim) : encoding == 2
            ? uint256(dim)
            : (uint256(dim) + 7) / 8;
        assertEq(Chorus.vectorBytes(dim, encoding), len, "vectorBytes");
        bytes memory vector = _vector(len, seed);
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.EmbeddingPublished(taskId, agent, modelId, encoding, vector);
        vm.prank(agent);
        board.publishEmbedding(taskId, modelId, encoding, vector);
        (bool e,,) = board.published(taskId, agent);
        assertTrue(e, "embedding flag");
    }

    function test_publishEmbedding_revert_UnknownAgent() public {
        address stranger = address(0x5757);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownAgent.selector, stranger));
        vm.prank(stranger);
        board.publishEmbedding(taskId, MODEL, 0, _vector(uint256(DIM) * 4, 1));
    }

    function test_publishEmbedding_revert_UnknownAgent_deregistered() public {
        vm.prank(market);
        registry.deregister();
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownAgent.selector, market));
        _embed(market, taskId);
    }

    function testFuzz_publishEmbedding_revert_UnknownTask(uint256 id) public {
        vm.assume(id != taskId);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownTask.selector, id));
        _embed(market, id);
    }

    function test_publishEmbedding_revert_AlreadyFinalized() public {
        _finalizeWithQuorum();
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.AlreadyFinalized.selector, taskId));
        _embed(market, taskId);
    }

    function test_publishEmbedding_revert_AlreadyFinalized_reclaimed() public {
        vm.warp(deadline + 1);
        vm.prank(submitter);
        board.reclaim(taskId);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.AlreadyFinalized.selector, taskId));
        _embed(market, taskId);
    }

    function testFuzz_publishEmbedding_revert_PastDeadline(uint256 late) public {
        late = bound(late, 1, type(uint32).max);
        vm.warp(uint256(deadline) + late);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.PastDeadline.selector, taskId, deadline));
        _embed(market, taskId);
    }

    function testFuzz_publishEmbedding_revert_ModelMismatch(bytes32 other) public {
        vm.assume(other != MODEL);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.ModelMismatch.selector, MODEL, other));
        vm.prank(market);
        board.publishEmbedding(taskId, other, 0, _vector(uint256(DIM) * 4, 1));
    }

    function testFuzz_publishEmbedding_revert_ModelMismatch_noModel(bytes32 got) public {
        address decider = address(0xDEC1DE);
        _registerAgent(decider, 3, false);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.ModelMismatch.selector, bytes32(0), got));
        vm.prank(decider);
        board.publishEmbedding(taskId, got, 0, "");
    }

    function testFuzz_publishEmbedding_revert_InvalidEncoding(uint8 encoding) public {
        encoding = uint8(bound(encoding, 4, 255));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.InvalidEncoding.selector));
        vm.prank(market);
        board.publishEmbedding(taskId, MODEL, encoding, _vector(uint256(DIM) * 4, 1));
    }

    function testFuzz_publishEmbedding_revert_WrongLength(uint8 encoding, uint256 len) public {
        encoding = uint8(bound(encoding, 0, 3));
        uint256 expected = Chorus.vectorBytes(DIM, encoding);
        len = bound(len, 0, 4 * uint256(DIM) + 64);
        vm.assume(len != expected);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.WrongLength.selector, expected, len));
        vm.prank(market);
        board.publishEmbedding(taskId, MODEL, encoding, new bytes(len));
    }

    function test_publishEmbedding_revert_DuplicateEmbedding() public {
        _embed(market, taskId);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateEmbedding.selector, taskId, market));
        vm.prank(market);
        board.publishEmbedding(taskId, MODEL, 1, _vector(uint256(DIM) * 2, 3)); // another encoding, still one per task
    }

    function test_publishEmbedding_revert_TooManyContributors() public {
        _setContributors(taskId, type(uint16).max);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.TooManyContributors.selector, taskId));
        _embed(market, taskId);
    }

    /*//////////////////////////////////////////////////////////////
                               DECISIONS
    //////////////////////////////////////////////////////////////*/

    function test_publishDecision() public {
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.DecisionPublished(taskId, market, 0, 2, 7500);
        _decide(market, taskId, 2, 7500);
        (uint64 sell, uint64 hold, uint64 buy) = board.tallies(taskId);
        assertEq(sell, 0, "sell");
        assertEq(hold, 0, "hold");
        assertEq(buy, 5000 * 7500, "buy = weight * confidence");
        (bool e, bool d, bool c) = board.published(taskId, market);
        assertTrue(d, "decision flag");
        assertFalse(e || c, "other flags");
        (uint16 decisions, uint16 contributors) = _counts(taskId);
        assertEq(decisions, 1, "decisions");
        assertEq(contributors, 1, "contributors");
    }

    function test_publishDecision_embeddingAndDecisionCountOnce() public {
        _embed(market, taskId);
        _decide(market, taskId, 0, 10_000);
        _decide(roleAgents[1], taskId, 0, 5000);
        _embed(roleAgents[1], taskId);
        (uint16 decisions, uint16 contributors) = _counts(taskId);
        assertEq(decisions, 2, "decisions");
        assertEq(contributors, 2, "each agent counted once");
        (bool e, bool d,) = board.published(taskId, market);
        assertTrue(e && d, "both flags");
        (uint64 sell,,) = board.tallies(taskId);
        assertEq(sell, 5000 * 10_000 + 3000 * 5000, "sell tally");
    }

    function test_publishDecision_usesCurrentWeight() public {
        _decide(market, taskId, 2, 100);
        vm.prank(owner);
        board.setWeight(2, 1, 7);
        _decide(roleAgents[1], taskId, 2, 100);
        (,, uint64 buy) = board.tallies(taskId);
        assertEq(buy, 5000 * 100 + 7 * 100, "weights read at publication");
    }

    function testFuzz_publishDecision(uint8 role, uint8 arch, uint16 weight, uint8 action, uint16 confidence) public {
        role = uint8(bound(role, 0, 4));
        arch = uint8(bound(arch, 0, 15));
        action = uint8(bound(action, 0, 2));
        confidence = uint16(bound(confidence, 0, 10_000));
        vm.prank(owner);
        board.setWeight(arch, role, weight);
        uint256 id = _submit(0, arch, deadline, 1);
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.DecisionPublished(id, roleAgents[role], role, action, confidence);
        _decide(roleAgents[role], id, action, confidence);
        (uint64 sell, uint64 hold, uint64 buy) = board.tallies(id);
        uint256 expected = uint256(weight) * confidence;
        assertEq(sell, action == 0 ? expected : 0, "sell");
        assertEq(hold, action == 1 ? expected : 0, "hold");
        assertEq(buy, action == 2 ? expected : 0, "buy");
    }

    function testFuzz_publishDecision_maxTallyFits(uint8 action) public {
        action = uint8(bound(action, 0, 2));
        vm.prank(owner);
        board.setWeight(2, 0, type(uint16).max);
        // The largest tally reachable: 2**16 - 1 decisions at the largest weight and confidence.
        bytes32 slot = _stateSlot(taskId);
        uint256 state = uint256(vm.load(address(board), slot));
        uint256 maxPerDecision = uint256(type(uint16).max) * 10_000;
        uint256 tally = maxPerDecision * (type(uint16).max - 1);
        state |= uint256(type(uint16).max - 1) << 80; // decisions
        state |= uint256(type(uint16).max - 1) << 96; // contributors
        state |= tally << (112 + 48 * uint256(action));
        vm.store(address(board), slot, bytes32(state));
        _decide(market, taskId, action, 10_000);
        (uint64 sell, uint64 hold, uint64 buy) = board.tallies(taskId);
        uint64 got = action == 0 ? sell : action == 1 ? hold : buy;
        assertEq(got, tally + maxPerDecision, "no overflow into the next field");
        (uint16 decisions, uint16 contributors) = _counts(taskId);
        assertEq(decisions, type(uint16).max, "decisions");
        assertEq(contributors, type(uint16).max, "contributors");
    }

    function test_publishDecision_revert_UnknownAgent() public {
        address stranger = address(0x5757);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownAgent.selector, stranger));
        _decide(stranger, taskId, 1, 1);
    }

    function testFuzz_publishDecision_revert_UnknownTask(uint256 id) public {
        vm.assume(id != taskId);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownTask.selector, id));
        _decide(market, id, 1, 1);
    }

    function test_publishDecision_revert_AlreadyFinalized() public {
        _finalizeWithQuorum();
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.AlreadyFinalized.selector, taskId));
        _decide(roleAgents[3], taskId, 1, 1);
    }

    function testFuzz_publishDecision_revert_PastDeadline(uint256 late) public {
        late = bound(late, 1, type(uint32).max);
        vm.warp(uint256(deadline) + late);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.PastDeadline.selector, taskId, deadline));
        _decide(market, taskId, 1, 1);
    }

    function testFuzz_publishDecision_revert_InvalidAction(uint8 action) public {
        action = uint8(bound(action, 3, 255));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.InvalidAction.selector));
        _decide(market, taskId, action, 1);
    }

    function testFuzz_publishDecision_revert_InvalidConfidence(uint16 confidence) public {
        confidence = uint16(bound(confidence, 10_001, type(uint16).max));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.InvalidConfidence.selector));
        _decide(market, taskId, 1, confidence);
    }

    function test_publishDecision_revert_DuplicateDecision() public {
        _decide(market, taskId, 2, 10);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateDecision.selector, taskId, market));
        _decide(market, taskId, 0, 10);
    }

    function test_publishDecision_revert_TooManyContributors() public {
        _embed(market, taskId);
        _setContributors(taskId, type(uint16).max);
        // An existing contributor may still decide; a new one may not.
        _decide(market, taskId, 2, 10);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.TooManyContributors.selector, taskId));
        _decide(roleAgents[1], taskId, 2, 10);
    }

    /*//////////////////////////////////////////////////////////////
                             PROBABILITIES
    //////////////////////////////////////////////////////////////*/

    function test_publishProbabilities() public {
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.DecisionPublished(taskId, market, 0, 2, 6000);
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.ProbabilitiesPublished(taskId, market, 1000, 3000, 6000);
        _probs(market, taskId, [uint16(1000), 3000, 6000]);
        (uint64 sell, uint64 hold, uint64 buy) = board.tallies(taskId);
        assertEq(sell + hold, 0, "only the argmax is tallied");
        assertEq(buy, 5000 * 6000, "buy = weight * its probability");
        (, bool d,) = board.published(taskId, market);
        assertTrue(d, "decision flag");
        (uint16 decisions, uint16 contributors) = _counts(taskId);
        assertEq(decisions, 1, "decisions");
        assertEq(contributors, 1, "contributors");
    }

    function test_publishProbabilities_allZeroAbstains() public {
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.DecisionPublished(taskId, market, 0, 1, 0);
        _probs(market, taskId, [uint16(0), 0, 0]);
        (uint64 sell, uint64 hold, uint64 buy) = board.tallies(taskId);
        assertEq(sell + hold + buy, 0, "an abstention weighs nothing");
        (uint16 decisions,) = _counts(taskId);
        assertEq(decisions, 1, "it still counts towards the quorum");
    }

    /// @dev The decision is the first of the maxima (numpy's argmax), whatever the split.
    function testFuzz_publishProbabilities(uint16 a, uint16 b) public {
        a = uint16(bound(a, 0, 10_000));
        b = uint16(bound(b, 0, 10_000 - a));
        uint16[3] memory p = [a, b, uint16(10_000 - a - b)];
        uint8 best;
        for (uint8 k = 1; k < 3; ++k) {
            if (p[k] > p[best]) best = k;
        }
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.DecisionPublished(taskId, market, 0, best, p[best]);
        _probs(market, taskId, p);
        (uint64 sell, uint64 hold, uint64 buy) = board.tallies(taskId);
        uint256 expected = 5000 * uint256(p[best]);
        assertEq(sell, best == 0 ? expected : 0, "sell");
        assertEq(hold, best == 1 ? expected : 0, "hold");
        assertEq(buy, best == 2 ? expected : 0, "buy");
    }

    function testFuzz_publishProbabilities_revert_InvalidProbabilities(uint16 a, uint16 b, uint16 c) public {
        uint256 sum = uint256(a) + b + c;
        vm.assume(sum != 0 && sum != 10_000);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.InvalidProbabilities.selector, sum));
        _probs(market, taskId, [a, b, c]);
    }

    function test_publishProbabilities_revert_DuplicateDecision() public {
        _decide(market, taskId, 2, 10);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateDecision.selector, taskId, market));
        _probs(market, taskId, [uint16(10_000), 0, 0]);
    }

    function test_publishProbabilities_revert_UnknownAgent() public {
        address stranger = address(0x5757);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownAgent.selector, stranger));
        _probs(stranger, taskId, [uint16(10_000), 0, 0]);
    }

    function testFuzz_publishProbabilities_revert_PastDeadline(uint256 late) public {
        late = bound(late, 1, type(uint32).max);
        vm.warp(uint256(deadline) + late);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.PastDeadline.selector, taskId, deadline));
        _probs(market, taskId, [uint16(10_000), 0, 0]);
    }

    function test_constructor_mLearnedP_fusionAlone() public view {
        for (uint8 role; role <= Chorus.MAX_ROLE; ++role) {
            uint16 expected = role == Chorus.ROLE_FUSION ? 10_000 : 0;
            assertEq(board.weights(Chorus.ARCH_M_LEARNED_P, role), expected, "M-learned-p weights");
        }
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    /// @dev Three decisions reach the quorum of 3; finalize.
    function _finalizeWithQuorum() internal {
        _decide(roleAgents[0], taskId, 2, 1);
        _decide(roleAgents[1], taskId, 2, 1);
        _decide(roleAgents[2], taskId, 2, 1);
        _finalize(taskId);
    }

    function _probs(address agent, uint256 id, uint16[3] memory p) internal {
        vm.prank(agent);
        board.publishProbabilities(id, p);
    }
}
// forge-lint: disable-end(unsafe-typecast)
