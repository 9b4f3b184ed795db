// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {TaskBoard} from "../src/TaskBoard.sol";
import {ChorusFixture} from "./utils/ChorusFixture.sol";
import {vm, Vm} from "./utils/Vm.sol";

/// @title ReportFixture
/// @notice Agents with private keys (so they can sign), and a reference EIP-712 encoder written
/// with `abi.encode`, independent of the contract's assembly.
abstract contract ReportFixture is ChorusFixture {
    /// @dev secp256k1 group order.
    uint256 internal constant ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    /// @dev Keys of the market, sentiment and risk agents (their addresses ascending, as a report
    /// takes its signers), and of the aggregator (a fusion agent).
    uint256[3] internal keys = [uint256(0xA11), 0xB22, 0xC34];
    uint256 internal constant AGGREGATOR_KEY = 0xA66;
    address internal aggregator;

    /// @dev The EIP-712 digest of a Decision under an explicit domain (reference implementation).
    function _digestFor(
        uint256 chainId,
        address verifyingContract,
        uint256 taskId,
        uint8 action,
        uint16 confidence,
        bytes32 modelId,
        address agent
    ) internal pure returns (bytes32) {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Chorus TaskBoard"),
                keccak256("1"),
                chainId,
                verifyingContract
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Decision(uint256 taskId,uint8 action,uint16 confidence,bytes32 modelId,address agent)"),
                taskId,
                action,
                confidence,
                modelId,
                agent
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    /// @dev A decision signed by `key` for this board on this chain, over `modelId` (the
    /// contract checks it against the signer's registered model id, which does not travel).
    function _signed(uint256 key, uint256 taskId, uint8 action, uint16 confidence, bytes32 modelId)
        internal
        view
        returns (TaskBoard.SignedDecision memory d)
    {
        address agent = vm.addr(key);
        bytes32 digest = _digestFor(block.chainid, address(board), taskId, action, confidence, modelId, agent);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        d = _pack(agent, v, action, confidence, r, s);
    }

    /// @dev A signed decision as calldata packs it: `head = agent << 96 | v << 24 | action << 16 |
    /// confidence`, bits 32..95 zero.
    function _pack(address agent, uint8 v, uint8 action, uint16 confidence, bytes32 r, bytes32 s)
        internal
        pure
        returns (TaskBoard.SignedDecision memory)
    {
        uint256 head =
            (uint256(uint160(agent)) << 96) | (uint256(v) << 24) | (uint256(action) << 16) | uint256(confidence);
        return TaskBoard.SignedDecision(head, r, s);
    }

    function _agent(TaskBoard.SignedDecision memory d) internal pure returns (address) {
        return address(uint160(d.head >> 96));
    }

    function _v(TaskBoard.SignedDecision memory d) internal pure returns (uint8) {
        return uint8(d.head >> 24);
    }

    function _action(TaskBoard.SignedDecision memory d) internal pure returns (uint8) {
        return uint8(d.head >> 16);
    }

    function _confidence(TaskBoard.SignedDecision memory d) internal pure returns (uint16) {
        return uint16(d.head);
    }

    /// @dev Sets the `width`-bit field at `shift` of `d`'s head to `value`.
    function _setField(TaskBoard.SignedDecision memory d, uint256 shift, uint256 width, uint256 value) internal pure {
        uint256 mask = ((uint256(1) << width) - 1) << shift;
        d.head = (d.head & ~mask) | ((value << shift) & mask);
    }

    /// @dev What ecrecover finds for `d` on task `id`, signed over `modelId` (0 if nothing).
    function _recovered(uint256 id, TaskBoard.SignedDecision memory d, bytes32 modelId)
        internal
        view
        returns (address)
    {
        bytes32 digest = _digestFor(block.chainid, address(board), id, _action(d), _confidence(d), modelId, _agent(d));
        return ecrecover(digest, _v(d), d.r, d.s);
    }

    /// @dev The data word of the DecisionReported log of a decision.
    function _reported(uint256 id, address agent, uint256 role, uint256 action, uint256 confidence)
        internal
        pure
        returns (uint256)
    {
        return (id << 192) | (uint256(uint160(agent)) << 32) | (role << 24) | (action << 16) | confidence;
    }

    /// @dev Registers the agent of `key` with `role` and the fixture model.
    function _registerKey(uint256 key, uint8 role) internal returns (address agent) {
        agent = vm.addr(key);
        _registerAgent(agent, role, true);
    }

    function _one(TaskBoard.SignedDecision memory d) internal pure returns (TaskBoard.SignedDecision[] memory ds) {
        ds = new TaskBoard.SignedDecision[](1);
        ds[0] = d;
    }

    function _report(uint256 taskId, TaskBoard.SignedDecision[] memory ds) internal {
        vm.prank(aggregator);
        board.submitReport(taskId, ds);
    }
}

/// @notice TaskBoard.submitReport: EIP-712 signed decisions, one transaction from an aggregator.
contract TaskBoardReportTest is ReportFixture {
    uint256 internal taskId;
    uint64 internal deadline = uint64(START + 1 hours);
    address[3] internal agents;

    function setUp() public override {
        super.setUp();
        for (uint256 i; i < 3; ++i) {
            agents[i] = _registerKey(keys[i], uint8(i));
        }
        aggregator = _registerKey(AGGREGATOR_KEY, 3);
        taskId = _submit(1 ether, 2, deadline, 5);
    }

    function _three(uint256 id, uint8[3] memory actions, uint16[3] memory confidences)
        internal
        view
        returns (TaskBoard.SignedDecision[] memory ds)
    {
        ds = new TaskBoard.SignedDecision[](3);
        for (uint256 i; i < 3; ++i) {
            ds[i] = _signed(keys[i], id, actions[i], confidences[i], MODEL);
        }
    }

    /*//////////////////////////////////////////////////////////////
                                 DIGEST
    //////////////////////////////////////////////////////////////*/

    function testFuzz_decisionDigest_matchesReference(
        uint256 id,
        uint8 action,
        uint16 confidence,
        bytes32 modelId,
        address agent
    ) public view {
        assertEq(
            board.decisionDigest(id, action, confidence, modelId, agent),
            _digestFor(block.chainid, address(board), id, action, confidence, modelId, agent),
            "digest"
        );
    }

    function testFuzz_domainSeparator_followsChainId(uint64 chainId) public {
        vm.assume(chainId != block.chainid && chainId != 0);
        bytes32 before = board.domainSeparator();
        vm.chainId(chainId);
        assertTrue(board.domainSeparator() != before, "recomputed for the new chain");
        assertEq(
            board.decisionDigest(1, 2, 3, MODEL, address(this)),
            _digestFor(chainId, address(board), 1, 2, 3, MODEL, address(this)),
            "digest on the new chain"
        );
    }

    /*//////////////////////////////////////////////////////////////
                                 HAPPY PATH
    //////////////////////////////////////////////////////////////*/

    function test_submitReport_tallies() public {
        TaskBoard.SignedDecision[] memory ds = _three(taskId, [uint8(2), 2, 0], [uint16(8000), 6000, 9000]);
        for (uint256 i; i < 3; ++i) {
            vm.expectEmit(true, true, true, true, address(board));
            emit TaskBoard.DecisionReported(_reported(taskId, agents[i], i, _action(ds[i]), _confidence(ds[i])));
        }
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.ReportSubmitted(taskId, aggregator, 3);
        _report(taskId, ds);

        (uint64 sell, uint64 hold, uint64 buy) = board.tallies(taskId);
        assertEq(sell, 2000 * 9000, "sell tally: risk");
        assertEq(hold, 0, "hold tally");
        assertEq(buy, 5000 * 8000 + 3000 * 6000, "buy tally: market + sentiment");
        (uint16 decisions, uint16 contributors) = _counts(taskId);
        assertEq(decisions, 3, "decisions");
        assertEq(contributors, 3, "contributors: the signers, not the aggregator");
        for (uint256 i; i < 3; ++i) {
            (bool e, bool d, bool c) = board.published(taskId, agents[i]);
            assertTrue(d && !e && !c, "decision flag only");
        }
        (, bool aggDecided,) = board.published(taskId, aggregator);
        assertFalse(aggDecided, "the aggregator published nothing");
        assertEq(_status(taskId), 1, "still open below the quorum");
    }

    /// @dev A report leaves the task's hot slot exactly as the same decisions published one by one.
    function testFuzz_submitReport_equalsIndividualPublications(uint8[3] memory actions, uint16[3] memory confs)
        public
    {
        for (uint256 i; i < 3; ++i) {
            actions[i] = uint8(bound(actions[i], 0, 2));
            confs[i] = uint16(bound(confs[i], 0, 10_000));
        }
        uint256 other = _submit(1 ether, 2, deadline, 5);
        _report(taskId, _three(taskId, actions, confs));
        for (uint256 i; i < 3; ++i) {
            _decide(agents[i], other, actions[i], confs[i]);
        }
        assertEq(
            vm.load(address(board), _stateSlot(taskId)), vm.load(address(board), _stateSlot(other)), "hot slot"
        );
    }

    /// @dev Each decision of a report logs one DecisionReported word, with no topic but its
    /// selector, holding exactly the fields (task, agent, role, action, confidence) of the
    /// DecisionPublished its signer's own `publishDecision` would log; then ReportSubmitted, then
    /// TaskFinalized when the report closes the task (here: when `closing`, a bare report).
    function testFuzz_submitReport_DecisionReported_equalsIndividualPublications(
        uint8[3] memory actions,
        uint16[3] memory confs,
        bool closing
    ) public {
        for (uint256 i; i < 3; ++i) {
            actions[i] = uint8(bound(actions[i], 0, 2));
            confs[i] = uint16(bound(confs[i], 0, 10_000));
        }
        uint256 id = closing ? _submit(0, 2, deadline, 3) : taskId;
        uint256 other = _submit(1 ether, 2, deadline, 5);
        TaskBoard.SignedDecision[] memory ds = _three(id, actions, confs);
        vm.recordLogs();
        _report(id, ds);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, closing ? 5 : 4, "three DecisionReported, ReportSubmitted, TaskFinalized if closed");
        for (uint256 i; i < logs.length; ++i) {
            assertEq(logs[i].emitter, address(board), "emitter");
        }
        assertEq(logs[3].topics[0], TaskBoard.ReportSubmitted.selector, "then ReportSubmitted");
        if (closing) assertEq(logs[4].topics[0], TaskBoard.TaskFinalized.selector, "then TaskFinalized");

        for (uint256 i; i < 3; ++i) {
            assertEq(logs[i].topics.length, 1, "no indexed topic");
            assertEq(logs[i].topics[0], TaskBoard.DecisionReported.selector, "DecisionReported");
            assertEq(logs[i].data.length, 32, "one word");
            uint256 word = abi.decode(logs[i].data, (uint256));

            vm.recordLogs();
            _decide(agents[i], other, actions[i], confs[i]);
            Vm.Log[] memory one = vm.getRecordedLogs();
            assertEq(one.length, 1, "publishDecision logs once");
            assertEq(one[0].topics[0], TaskBoard.DecisionPublished.selector, "DecisionPublished");
            assertEq(uint256(one[0].topics[1]), other, "published task");
            address agent = address(uint160(uint256(one[0].topics[2])));
            (uint8 role, uint8 action, uint16 confidence) = abi.decode(one[0].data, (uint8, uint8, uint16));

            assertEq(word >> 192, id, "task id");
            assertEq(address(uint160(word >> 32)), agent, "agent");
            assertEq((word >> 24) & 0xff, role, "role");
            assertEq((word >> 16) & 0xff, action, "action");
            assertEq(word & 0xffff, confidence, "confidence");
            assertEq(word, _reported(id, agent, role, action, confidence), "nothing else in the word");
        }
    }

    function test_submitReport_finalizesAtQuorum() public {
        uint256 id = _submit(1 ether + 1, 2, deadline, 3);
        TaskBoard.SignedDecision[] memory ds = _three(id, [uint8(0), 0, 2], [uint16(9000), 9000, 9000]);
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.TaskFinalized(id, 0, 5000 * 9000 + 3000 * 9000, 0, 2000 * 9000, 3, 3);
        _report(id, ds);
        (,,, uint8 status,,,, uint8 action,,) = board.taskInfo(id);
        assertEq(status, 2, "finalized in the report's transaction");
        assertEq(action, 0, "fused: sell");
        assertEq(aggregator.balance, 2, "the remainder goes to the aggregator, as to a finalize caller");
        vm.prank(agents[0]);
        board.claimReward(id);
        assertEq(agents[0].balance, uint256(1 ether + 1) / 3, "a signer claims its share");
    }

    /*//////////////////////////////////////////////////////////////
                      BARE REPORTS (NO REWARD, NOTHING ON CHAIN)
    //////////////////////////////////////////////////////////////*/

    /// @dev A report that closes an unfunded task nobody published on writes no flags, and
    /// leaves the task exactly as the same decisions published one by one and finalized.
    function testFuzz_submitReport_bare_equalsIndividualPublications(uint8[3] memory actions, uint16[3] memory confs)
        public
    {
        for (uint256 i; i < 3; ++i) {
            actions[i] = uint8(bound(actions[i], 0, 2));
            confs[i] = uint16(bound(confs[i], 0, 10_000));
        }
        uint256 id = _submit(0, 2, deadline, 3);
        uint256 other = _submit(0, 2, deadline, 3);
        _report(id, _three(id, actions, confs));
        for (uint256 i; i < 3; ++i) {
            _decide(agents[i], other, actions[i], confs[i]);
        }
        _finalize(other);
        assertEq(_status(id), 2, "finalized by the report");
        assertEq(vm.load(address(board), _stateSlot(id)), vm.load(address(board), _stateSlot(other)), "hot slot");
        (,,,,, uint16 decisions, uint16 contributors, uint8 action,,) = board.taskInfo(id);
        (,,,,, uint16 decisions2, uint16 contributors2, uint8 action2,,) = board.taskInfo(other);
        assertEq(keccak256(abi.encode(decisions, contributors, action)), keccak256(abi.encode(decisions2, contributors2, action2)), "info");
        for (uint256 i; i < 3; ++i) {
            (bool e, bool d, bool c) = board.published(id, agents[i]);
            assertFalse(e || d || c, "no flag written");
        }
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.AlreadyFinalized.selector, id));
        _decide(agents[0], id, 1, 1);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.NotContributor.selector, id, agents[0]));
        vm.prank(agents[0]);
        board.claimReward(id);
    }

    /// @dev Each condition of a bare report, taken away alone, brings the flags back.
    function test_submitReport_flagsUnlessBare() public {
        uint256 funded = _submit(3, 2, deadline, 3); // a reward to claim
        uint256 below = _submit(0, 2, deadline, 4); // the report does not close it
        uint256 embedded = _submit(0, 2, deadline, 3); // a contributor before the report
        _embed(agents[0], embedded);
        uint256[3] memory ids = [funded, below, embedded];
        for (uint256 k; k < 3; ++k) {
            _report(ids[k], _three(ids[k], [uint8(1), 1, 1], [uint16(5), 5, 5]));
            for (uint256 i; i < 3; ++i) {
                (, bool d,) = board.published(ids[k], agents[i]);
                assertTrue(d, "decision flag written");
            }
        }
        (uint16 decisions, uint16 contributors) = _counts(embedded);
        assertEq(uint256(decisions) << 16 | contributors, uint256(3) << 16 | 3, "the embedder counted once");
        vm.prank(agents[2]);
        board.claimReward(funded);
        assertEq(agents[2].balance, 1, "a signer of a funded report claims its share");
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateDecision.selector, below, agents[1]));
        _decide(agents[1], below, 0, 1);
    }

    function test_submitReport_belowQuorum_thenFinalize() public {
        _report(taskId, _three(taskId, [uint8(1), 1, 1], [uint16(1), 1, 1]));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.QuorumNotReached.selector, taskId, 3, 5));
        _finalize(taskId);
        vm.warp(deadline + 1);
        _finalize(taskId);
        assertEq(_status(taskId), 2, "finalized after the deadline");
    }

    function test_submitReport_atDeadline() public {
        vm.warp(deadline);
        _report(taskId, _one(_signed(keys[0], taskId, 2, 1, MODEL)));
        (, bool d,) = board.published(taskId, agents[0]);
        assertTrue(d, "published at the deadline itself");
    }

    function test_submitReport_signerWithEmbeddingCountsOnce() public {
        _embed(agents[0], taskId);
        _report(taskId, _one(_signed(keys[0], taskId, 2, 1, MODEL)));
        (uint16 decisions, uint16 contributors) = _counts(taskId);
        assertEq(decisions, 1, "decisions");
        assertEq(contributors, 1, "the embedding made it a contributor already");
    }

    function test_submitReport_aggregatorMaySign() public {
        TaskBoard.SignedDecision[] memory ds = _one(_signed(AGGREGATOR_KEY, taskId, 2, 10_000, MODEL));
        _report(taskId, ds);
        (, bool d,) = board.published(taskId, aggregator);
        assertTrue(d, "its own signed decision");
    }

    function test_submitReport_decisionsOnlySigner() public {
        uint256 key = 0xD0;
        address agent = vm.addr(key);
        _registerAgent(agent, 1, false);
        _report(taskId, _one(_signed(key, taskId, 0, 500, bytes32(0))));
        (uint64 sell,,) = board.tallies(taskId);
        assertEq(sell, 3000 * 500, "a signer without a model signs model id 0");
    }

    function test_publishDecision_afterReport_revert_DuplicateDecision() public {
        _report(taskId, _one(_signed(keys[1], taskId, 2, 1, MODEL)));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateDecision.selector, taskId, agents[1]));
        _decide(agents[1], taskId, 2, 1);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateDecision.selector, taskId, agents[1]));
        vm.prank(agents[1]);
        board.publishProbabilities(taskId, [uint16(0), 0, 0]);
    }

    function test_submitReport_replayed_revert_DuplicateDecision() public {
        TaskBoard.SignedDecision[] memory ds = _one(_signed(keys[1], taskId, 2, 1, MODEL));
        _report(taskId, ds);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateDecision.selector, taskId, agents[1]));
        _report(taskId, ds);
    }

    /*//////////////////////////////////////////////////////////////
                                 REVERTS
    //////////////////////////////////////////////////////////////*/

    function test_submitReport_revert_EmptyBatch() public {
        vm.expectRevert(TaskBoard.EmptyBatch.selector);
        _report(taskId, new TaskBoard.SignedDecision[](0));
    }

    function test_submitReport_revert_UnknownAgent_aggregator() public {
        TaskBoard.SignedDecision[] memory ds = _one(_signed(keys[0], taskId, 2, 1, MODEL));
        address stranger = address(0x5757);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownAgent.selector, stranger));
        vm.prank(stranger);
        board.submitReport(taskId, ds);
    }

    function test_submitReport_revert_UnknownAgent_unregisteredSigner() public {
        uint256 key = 0x5151;
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownAgent.selector, vm.addr(key)));
        _report(taskId, _one(_signed(key, taskId, 2, 1, MODEL)));
    }

    function test_submitReport_revert_UnknownAgent_deregisteredSigner() public {
        TaskBoard.SignedDecision[] memory ds = _three(taskId, [uint8(2), 2, 2], [uint16(1), 1, 1]);
        vm.prank(agents[2]);
        registry.deregister();
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownAgent.selector, agents[2]));
        _report(taskId, ds);
    }

    /// @dev The model id does not travel: the contract verifies the signature over the signer's
    /// registered one, so a decision signed over any other model id recovers to someone else.
    function testFuzz_submitReport_revert_SignerMismatch_otherModel(bytes32 other, uint8 index) public {
        vm.assume(other != MODEL);
        uint256 i = bound(index, 0, 2);
        TaskBoard.SignedDecision[] memory ds = _three(taskId, [uint8(2), 1, 0], [uint16(10_000), 0, 4321]);
        ds[i] = _signed(keys[i], taskId, _action(ds[i]), _confidence(ds[i]), other);
        address recovered = _recovered(taskId, ds[i], MODEL);
        assertTrue(recovered != address(0) && recovered != agents[i], "recovers to someone else");
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.SignerMismatch.selector, i, agents[i], recovered));
        _report(taskId, ds);
    }

    /// @dev A model-less agent signs model id 0, and an agent with a model signs that model: the
    /// other way round, each recovers to someone else.
    function test_submitReport_revert_SignerMismatch_modelOrNone() public {
        uint256 key = 0xD0;
        address agent = vm.addr(key);
        _registerAgent(agent, 1, false);
        TaskBoard.SignedDecision memory d = _signed(key, taskId, 0, 500, MODEL);
        vm.expectRevert(
            abi.encodeWithSelector(TaskBoard.SignerMismatch.selector, 0, agent, _recovered(taskId, d, bytes32(0)))
        );
        _report(taskId, _one(d));
        d = _signed(keys[0], taskId, 0, 500, bytes32(0));
        vm.expectRevert(
            abi.encodeWithSelector(TaskBoard.SignerMismatch.selector, 0, agents[0], _recovered(taskId, d, MODEL))
        );
        _report(taskId, _one(d));
    }

    /// @dev Any bit set in 32..95 of a head, at any place in a report, refuses the report at it,
    /// before anything else about that decision is looked at (here, with `worse`, an invalid
    /// action and an unregistered, unsorted signer too).
    function testFuzz_submitReport_revert_MalformedDecision(uint64 bits, uint8 index, bool worse) public {
        vm.assume(bits != 0);
        uint256 i = bound(index, 0, 2);
        TaskBoard.SignedDecision[] memory ds = _three(taskId, [uint8(2), 1, 0], [uint16(10_000), 0, 4321]);
        ds[i].head |= uint256(bits) << 32;
        if (worse) {
            _setField(ds[i], 16, 8, 7);
            _setField(ds[i], 96, 160, 1);
        }
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.MalformedDecision.selector, i));
        _report(taskId, ds);
        (uint16 decisions,) = _counts(taskId);
        assertEq(decisions, 0, "nothing tallied");
    }

    function test_submitReport_revert_DuplicateSigner() public {
        TaskBoard.SignedDecision[] memory ds = new TaskBoard.SignedDecision[](3);
        ds[0] = _signed(keys[0], taskId, 2, 1, MODEL);
        ds[1] = _signed(keys[1], taskId, 2, 1, MODEL);
        ds[2] = _signed(keys[1], taskId, 0, 9, MODEL);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateSigner.selector, agents[1]));
        _report(taskId, ds);
    }

    /// @dev On a task that a report would close bare (no reward, no contributor), a repeated
    /// signer is refused all the same: the order check, not a flag, catches it.
    function test_submitReport_bare_revert_DuplicateSigner() public {
        uint256 id = _submit(0, 2, deadline, 2);
        TaskBoard.SignedDecision[] memory ds = new TaskBoard.SignedDecision[](2);
        ds[0] = _signed(keys[0], id, 2, 1, MODEL);
        ds[1] = _signed(keys[0], id, 0, 9, MODEL);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateSigner.selector, agents[0]));
        _report(id, ds);
    }

    function test_submitReport_revert_UnsortedSigners() public {
        TaskBoard.SignedDecision[] memory ds = _three(taskId, [uint8(2), 2, 2], [uint16(1), 1, 1]);
        (ds[1], ds[2]) = (ds[2], ds[1]);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnsortedSigners.selector, 2));
        _report(taskId, ds);
    }

    function test_submitReport_revert_DuplicateDecision_onChain() public {
        _decide(agents[1], taskId, 0, 1);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DuplicateDecision.selector, taskId, agents[1]));
        _report(taskId, _three(taskId, [uint8(2), 2, 2], [uint16(1), 1, 1]));
    }

    function testFuzz_submitReport_revert_UnknownTask(uint256 id) public {
        vm.assume(id == 0 || id > board.taskCount());
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownTask.selector, id));
        _report(id, _one(_signed(keys[0], id, 2, 1, MODEL)));
    }

    function test_submitReport_revert_AlreadyFinalized() public {
        uint256 id = _submit(0, 2, deadline, 1);
        _report(id, _one(_signed(keys[0], id, 2, 1, MODEL)));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.AlreadyFinalized.selector, id));
        _report(id, _one(_signed(keys[1], id, 2, 1, MODEL)));
    }

    function testFuzz_submitReport_revert_PastDeadline(uint256 late) public {
        late = bound(late, 1, 365 days);
        TaskBoard.SignedDecision[] memory ds = _one(_signed(keys[0], taskId, 2, 1, MODEL));
        vm.warp(uint256(deadline) + late);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.PastDeadline.selector, taskId, deadline));
        _report(taskId, ds);
    }

    function testFuzz_submitReport_revert_InvalidAction(uint8 action) public {
        action = uint8(bound(action, 3, 255));
        vm.expectRevert(TaskBoard.InvalidAction.selector);
        _report(taskId, _one(_signed(keys[0], taskId, action, 1, MODEL)));
    }

    function testFuzz_submitReport_revert_InvalidConfidence(uint16 confidence) public {
        confidence = uint16(bound(confidence, 10_001, type(uint16).max));
        vm.expectRevert(TaskBoard.InvalidConfidence.selector);
        _report(taskId, _one(_signed(keys[0], taskId, 1, confidence, MODEL)));
    }

    /*//////////////////////////////////////////////////////////////
                          SIGNATURE VERIFICATION
    //////////////////////////////////////////////////////////////*/

    /// @dev Any key: once registered, its signed decision is accepted and tallied.
    function testFuzz_submitReport_anyKey(uint256 key, uint8 action, uint16 confidence) public {
        key = bound(key, 1, ORDER - 1);
        action = uint8(bound(action, 0, 2));
        confidence = uint16(bound(confidence, 0, 10_000));
        address agent = vm.addr(key);
        vm.assume(agent != aggregator && agent != agents[0] && agent != agents[1] && agent != agents[2]);
        _registerAgent(agent, 0, true);
        TaskBoard.SignedDecision memory d = _signed(key, taskId, action, confidence, MODEL);
        assertLe(uint256(d.s), ORDER / 2, "forge signs low s");
        _report(taskId, _one(d));
        (, bool decided,) = board.published(taskId, agent);
        assertTrue(decided, "tallied");
        uint256[3] memory tally;
        (uint64 sell, uint64 hold, uint64 buy) = board.tallies(taskId);
        (tally[0], tally[1], tally[2]) = (sell, hold, buy);
        assertEq(tally[action], 5000 * uint256(confidence), "the market weight times the confidence");
    }

    /// @dev A signature under a key that is not the agent's (an unregistered one, or another
    /// registered agent's) recovers to someone else.
    function testFuzz_submitReport_revert_SignerMismatch_otherKey(uint256 key) public {
        key = bound(key, 1, ORDER - 1);
        vm.assume(key != keys[0]);
        bytes32 digest = _digestFor(block.chainid, address(board), taskId, 2, 1, MODEL, agents[0]);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        TaskBoard.SignedDecision memory d = _pack(agents[0], v, 2, 1, r, s);
        address forger = vm.addr(key);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.SignerMismatch.selector, 0, agents[0], forger));
        _report(taskId, _one(d));
    }

    /// @dev The malleable twin `(n - s, v ^ 1)` of a valid signature is rejected (EIP-2).
    function testFuzz_submitReport_revert_BadSignature_highS(uint8 signer, uint16 confidence) public {
        uint256 key = keys[bound(signer, 0, 2)];
        confidence = uint16(bound(confidence, 0, 10_000));
        TaskBoard.SignedDecision memory d = _signed(key, taskId, 1, confidence, MODEL);
        d.s = bytes32(ORDER - uint256(d.s));
        _setField(d, 24, 8, _v(d) == 27 ? 28 : 27);
        // ecrecover itself would accept the twin (same signer): only the s check stops it.
        assertEq(
            ecrecover(board.decisionDigest(taskId, 1, confidence, MODEL, _agent(d)), _v(d), d.r, d.s),
            _agent(d),
            "the twin recovers"
        );
        TaskBoard.SignedDecision[] memory ds = new TaskBoard.SignedDecision[](2);
        ds[0] = _signed(keys[(bound(signer, 0, 2) + 1) % 3], taskId, 1, 1, MODEL);
        ds[1] = d;
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.BadSignature.selector, 1));
        _report(taskId, ds);
    }

    function testFuzz_submitReport_revert_BadSignature_v(uint8 v) public {
        vm.assume(v != 27 && v != 28);
        TaskBoard.SignedDecision memory d = _signed(keys[0], taskId, 1, 1, MODEL);
        _setField(d, 24, 8, v);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.BadSignature.selector, 0));
        _report(taskId, _one(d));
    }

    /// @dev ecrecover's 0 for an unrecoverable signature never passes for the signer, not even
    /// for a decision that names address 0 (unregistered, so refused before its signature; and
    /// were it registered, the signature is refused all the same).
    function test_submitReport_revert_BadSignature_unrecoverable() public {
        TaskBoard.SignedDecision memory d = _signed(keys[0], taskId, 1, 1, MODEL);
        d.r = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.BadSignature.selector, 0));
        _report(taskId, _one(d));
        _setField(d, 96, 160, 0);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownAgent.selector, address(0)));
        _report(taskId, _one(d));
        _registerAgent(address(0), 0, true);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.BadSignature.selector, 0));
        _report(taskId, _one(d));
    }

    /// @dev Flipping any bit of r or s, or changing any field of the head after signing, refuses
    /// the decision with the one error its checks determine: MalformedDecision for a reserved bit,
    /// InvalidAction or InvalidConfidence out of range, UnknownAgent for an unregistered agent,
    /// BadSignature for a v other than 27/28, a high s or nothing recovered, and otherwise
    /// SignerMismatch with whom it recovers to (always so for an in-range action, confidence or
    /// a registered agent: the signature itself is untouched, it just signs something else).
    function testFuzz_submitReport_revert_mutated(uint8 which, uint8 bit, uint256 value) public {
        TaskBoard.SignedDecision memory d = _signed(keys[0], taskId, 1, 5000, MODEL);
        which = uint8(bound(which, 0, 6));
        bytes memory expected;
        bool signsOther; // a valid signature over another decision
        if (which == 0) {
            d.r ^= bytes32(uint256(1) << bit);
        } else if (which == 1) {
            d.s ^= bytes32(uint256(1) << bit);
        } else if (which == 2) {
            uint8 action = uint8(value);
            vm.assume(action != 1);
            _setField(d, 16, 8, action);
            if (action > 2) expected = abi.encodeWithSelector(TaskBoard.InvalidAction.selector);
            signsOther = true;
        } else if (which == 3) {
            uint16 confidence = uint16(value);
            vm.assume(confidence != 5000);
            _setField(d, 0, 16, confidence);
            if (confidence > 10_000) expected = abi.encodeWithSelector(TaskBoard.InvalidConfidence.selector);
            signsOther = true;
        } else if (which == 4) {
            uint8 v = uint8(value);
            vm.assume(v != _v(d));
            _setField(d, 24, 8, v);
        } else if (which == 5) {
            // Another registered agent (half the runs), or any address.
            address agent = bit < 128 ? [agents[1], agents[2], aggregator][value % 3] : address(uint160(value));
            vm.assume(agent != agents[0]);
            _setField(d, 96, 160, uint160(agent));
            (bool active,,,) = registry.agentInfo(agent);
            if (!active) expected = abi.encodeWithSelector(TaskBoard.UnknownAgent.selector, agent);
            signsOther = true;
        } else {
            _setField(d, 32 + bit % 64, 1, 1);
            expected = abi.encodeWithSelector(TaskBoard.MalformedDecision.selector, 0);
        }
        if (expected.length == 0) {
            (,,, bytes32 model) = registry.agentInfo(_agent(d));
            address recovered = _recovered(taskId, d, model);
            assertTrue(recovered != _agent(d), "the mutation changes the signer");
            bool bad = (_v(d) != 27 && _v(d) != 28) || uint256(d.s) > ORDER / 2 || recovered == address(0);
            if (signsOther) assertFalse(bad, "a valid signature of something else recovers");
            expected = bad
                ? abi.encodeWithSelector(TaskBoard.BadSignature.selector, 0)
                : abi.encodeWithSelector(TaskBoard.SignerMismatch.selector, 0, _agent(d), recovered);
        }
        vm.expectRevert(expected);
        _report(taskId, _one(d));
        (, bool decided,) = board.published(taskId, agents[0]);
        assertFalse(decided, "nothing tallied");
    }

    /// @dev A signature for another chain id or another verifying contract does not verify here.
    function testFuzz_submitReport_revert_wrongDomain(uint256 chainId, address verifyingContract, bool wrongChain)
        public
    {
        if (wrongChain) {
            vm.assume(chainId != block.chainid);
            verifyingContract = address(board);
        } else {
            vm.assume(verifyingContract != address(board));
            chainId = block.chainid;
        }
        bytes32 digest = _digestFor(chainId, verifyingContract, taskId, 2, 10_000, MODEL, agents[0]);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[0], digest);
        TaskBoard.SignedDecision memory d = _pack(agents[0], v, 2, 10_000, r, s);
        vm.prank(aggregator);
        try board.submitReport(taskId, _one(d)) {
            assertTrue(false, "a signature for another domain was accepted");
        } catch (bytes memory err) {
            assertEq(bytes32(bytes4(err)), bytes32(TaskBoard.SignerMismatch.selector), "SignerMismatch");
        }
    }

    /// @dev A signature made before a chain id change (a fork) no longer verifies after it.
    function test_submitReport_revert_afterChainIdChange() public {
        TaskBoard.SignedDecision memory d = _signed(keys[0], taskId, 2, 1, MODEL);
        vm.chainId(block.chainid + 1);
        vm.prank(aggregator);
        try board.submitReport(taskId, _one(d)) {
            assertTrue(false, "accepted on the other chain");
        } catch (bytes memory err) {
            assertEq(bytes32(bytes4(err)), bytes32(TaskBoard.SignerMismatch.selector), "SignerMismatch");
        }
        _report(taskId, _one(_signed(keys[0], taskId, 2, 1, MODEL)));
    }

    /// @dev A signature for another task does not verify on this one.
    function testFuzz_submitReport_revert_otherTask(uint256 other) public {
        vm.assume(other != taskId);
        TaskBoard.SignedDecision memory d = _signed(keys[0], other, 2, 1, MODEL);
        vm.prank(aggregator);
        try board.submitReport(taskId, _one(d)) {
            assertTrue(false, "a signature for another task was accepted");
        } catch (bytes memory err) {
            assertEq(bytes32(bytes4(err)), bytes32(TaskBoard.SignerMismatch.selector), "SignerMismatch");
        }
    }
}
// forge-lint: disable-end(unsafe-typecast)
