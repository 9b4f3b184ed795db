// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {TaskBoard} from "../src/TaskBoard.sol";
import {ChorusFixture} from "./utils/ChorusFixture.sol";
import {Rejector} from "./utils/Rejector.sol";
import {vm} from "./utils/Vm.sol";

/// @notice TaskBoard settlement: finalize, claimReward, reclaim, escrow accounting.
contract TaskBoardSettleTest is ChorusFixture {
    uint256 internal taskId;
    uint64 internal deadline = uint64(START + 1 hours);
    uint256 internal constant REWARD = 1 ether + 3;

    function setUp() public override {
        super.setUp();
        _registerRoles();
        taskId = _submit(REWARD, 2, deadline, 3);
    }

    /*//////////////////////////////////////////////////////////////
                                FINALIZE
    //////////////////////////////////////////////////////////////*/

    function test_finalize() public {
        _decide(roleAgents[0], taskId, 2, 8000); // buy  5000 * 8000
        _decide(roleAgents[1], taskId, 2, 6000); // buy  3000 * 6000
        _decide(roleAgents[2], taskId, 0, 9000); // sell 2000 * 9000
        _embed(roleAgents[3], taskId); // an embedding-only contributor
        uint256 buy = 5000 * 8000 + 3000 * 6000;
        uint256 sell = 2000 * 9000;
        uint256 submitterBefore = submitter.balance;

        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.TaskFinalized(taskId, 2, uint64(sell), 0, uint64(buy), 3, 4);
        _finalize(taskId);

        (,,, uint8 status,,,, uint8 action,,) = board.taskInfo(taskId);
        assertEq(status, 2, "finalized");
        assertEq(action, 2, "buy wins");
        // REWARD = 1 ether + 3 split among 4 contributors: 3 wei of remainder go to the caller.
        assertEq(finalizer.balance, 3, "remainder to the finalizer");
        assertEq(submitter.balance, submitterBefore, "nothing to the submitter");
        assertEq(board.escrowed(), 1 ether, "shares stay escrowed");
        assertEq(address(board).balance, 1 ether, "balance");
    }

    function test_finalize_afterDeadlineBelowQuorum() public {
        _decide(roleAgents[2], taskId, 0, 1);
        vm.warp(deadline + 1);
        _finalize(taskId);
        (,,, uint8 status,,,, uint8 action,,) = board.taskInfo(taskId);
        assertEq(status, 2, "finalized");
        assertEq(action, 0, "sell");
    }

    function test_finalize_tieGivesHold() public {
        _decide(roleAgents[0], taskId, 0, 3000); // sell 5000 * 3000
        _decide(roleAgents[1], taskId, 2, 5000); // buy  3000 * 5000
        _decide(roleAgents[2], taskId, 1, 1); // hold 2000
        _finalize(taskId);
        (,,,,,,, uint8 action,,) = board.taskInfo(taskId);
        assertEq(action, 1, "sell == buy > hold: hold");
    }

    function test_finalize_allZeroGivesHold() public {
        uint256 id = _submit(0, 3, deadline, 2); // M-learned: only the fusion agent weighs
        _decide(roleAgents[0], id, 2, 10_000);
        _decide(roleAgents[1], id, 0, 10_000);
        _finalize(id);
        (,,,,,,, uint8 action,,) = board.taskInfo(id);
        assertEq(action, 1, "all-zero tallies: hold");
    }

    function testFuzz_finalize(uint256 seed, uint8 n, uint8 embedders, uint256 reward) public {
        n = uint8(bound(n, 1, 5));
        embedders = uint8(bound(embedders, 0, 5));
        reward = bound(reward, 0, 1e24);
        uint256 id = _submit(reward, uint8(seed % 16), deadline, n);
        uint256[3] memory tally;
        for (uint8 r; r < n; ++r) {
            uint8 act = uint8(uint256(keccak256(abi.encode(seed, r, "a"))) % 3);
            uint16 confidence = uint16(uint256(keccak256(abi.encode(seed, r, "c"))) % 10_001);
            _decide(roleAgents[r], id, act, confidence);
            tally[act] += uint256(_defaultWeight(uint8(seed % 16), r)) * confidence;
        }
        uint256 contributors = n;
        for (uint8 r; r < embedders; ++r) {
            _embed(roleAgents[r], id);
            if (r >= n) ++contributors;
        }
        uint256 escrowBefore = board.escrowed();
        _finalize(id); // quorum == n reached
        (uint64 sell, uint64 hold, uint64 buy) = board.tallies(id);
        assertEq(sell, tally[0], "sell");
        assertEq(hold, tally[1], "hold");
        assertEq(buy, tally[2], "buy");
        (,,,,, uint16 decisions, uint16 c, uint8 action,,) = board.taskInfo(id);
        assertEq(decisions, n, "decisions");
        assertEq(c, contributors, "contributors");
        assertEq(action, _fuse(tally[0], tally[1], tally[2]), "fused action");
        assertEq(escrowBefore - board.escrowed(), reward % contributors, "remainder left escrow");
        assertEq(finalizer.balance, reward % contributors, "remainder to the finalizer");
    }

    function testFuzz_finalize_revert_UnknownTask(uint256 id) public {
        vm.assume(id != taskId);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownTask.selector, id));
        board.finalize(id);
    }

    function testFuzz_finalize_revert_QuorumNotReached(uint8 decided, uint256 early) public {
        decided = uint8(bound(decided, 0, 2));
        early = bound(early, 0, deadline - START);
        for (uint8 r; r < decided; ++r) {
            _decide(roleAgents[r], taskId, 2, 1);
        }
        vm.warp(START + early); // up to and including the deadline itself
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.QuorumNotReached.selector, taskId, uint16(decided), uint16(3)));
        board.finalize(taskId);
    }

    function test_finalize_revert_NothingToFinalize() public {
        _embed(roleAgents[0], taskId); // embeddings alone do not make a result
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.NothingToFinalize.selector, taskId));
        board.finalize(taskId);
    }

    function test_finalize_revert_AlreadyFinalized() public {
        _decideQuorum(taskId);
        _finalize(taskId);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.AlreadyFinalized.selector, taskId));
        board.finalize(taskId);
    }

    function test_finalize_revert_AlreadyFinalized_reclaimed() public {
        vm.warp(deadline + 1);
        vm.prank(submitter);
        board.reclaim(taskId);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.AlreadyFinalized.selector, taskId));
        board.finalize(taskId);
    }

    function test_finalize_refusingSubmitterCannotBlock() public {
        Rejector rejector = new Rejector();
        vm.deal(address(rejector), 10);
        bytes memory ret = rejector.exec(
            address(board), 10, abi.encodeCall(TaskBoard.submitTask, (bytes("p"), uint8(2), deadline, uint16(3)))
        );
        uint256 id = abi.decode(ret, (uint256));
        _decideQuorum(id); // 10 wei among 3 contributors: shares of 3, 1 wei of remainder
        _finalize(id);
        assertEq(_status(id), 2, "finalized despite the refusing submitter");
        assertEq(finalizer.balance, 1, "remainder to the finalizer");
        for (uint8 r; r < 3; ++r) {
            uint256 before = roleAgents[r].balance;
            vm.prank(roleAgents[r]);
            board.claimReward(id);
            assertEq(roleAgents[r].balance - before, 3, "share paid");
        }
        assertEq(board.escrowed(), REWARD, "only the fixture task stays escrowed");
        assertEq(address(board).balance, REWARD, "balance");
    }

    /// @dev A finalizer that refuses the remainder blocks only its own call; anyone else may finalize.
    function test_finalize_revert_TransferFailed() public {
        Rejector rejector = new Rejector();
        _decideQuorum(taskId); // REWARD = 1 ether + 3 among 3 contributors leaves 1 wei
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.TransferFailed.selector));
        rejector.exec(address(board), 0, abi.encodeCall(TaskBoard.finalize, (taskId)));
        assertEq(_status(taskId), 1, "still open");
        _finalize(taskId);
        assertEq(_status(taskId), 2, "finalized by another caller");
    }

    /*//////////////////////////////////////////////////////////////
                                 CLAIM
    //////////////////////////////////////////////////////////////*/

    function test_claimReward() public {
        _decideQuorum(taskId);
        _finalize(taskId);
        uint256 share = REWARD / 3;
        for (uint8 r; r < 3; ++r) {
            address agent = roleAgents[r];
            uint256 before = agent.balance;
            vm.expectEmit(true, true, true, true, address(board));
            emit TaskBoard.RewardClaimed(taskId, agent, share);
            vm.prank(agent);
            board.claimReward(taskId);
            assertEq(agent.balance - before, share, "share paid");
            (,, bool claimed) = board.published(taskId, agent);
            assertTrue(claimed, "claimed flag");
        }
        assertEq(board.escrowed(), 0, "nothing owed");
        assertEq(address(board).balance, 0, "nothing held");
    }

    function testFuzz_claimReward(uint256 reward, uint8 deciders, uint8 embedders) public {
        reward = bound(reward, 0, type(uint128).max);
        deciders = uint8(bound(deciders, 1, 5));
        embedders = uint8(bound(embedders, 0, 5));
        uint256 id = _submit(reward, 0, deadline, deciders);
        for (uint8 r; r < deciders; ++r) _decide(roleAgents[r], id, 1, 1);
        for (uint8 r; r < embedders; ++r) _embed(roleAgents[r], id);
        uint256 contributors = deciders > embedders ? deciders : embedders;
        _finalize(id);
        uint256 paid;
        for (uint8 r; r < contributors; ++r) {
            uint256 before = roleAgents[r].balance;
            vm.prank(roleAgents[r]);
            board.claimReward(id);
            paid += roleAgents[r].balance - before;
        }
        assertEq(paid + finalizer.balance, reward, "shares + remainder == reward");
        assertEq(paid, reward - reward % contributors, "equal shares, remainder to the finalizer");
        assertEq(board.escrowed(), REWARD, "only the fixture task stays escrowed");
    }

    function testFuzz_claimReward_revert_NotFinalized(uint256 id) public {
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.NotFinalized.selector, id));
        vm.prank(roleAgents[0]);
        board.claimReward(id);
    }

    function test_claimReward_revert_NotFinalized_open() public {
        _decide(roleAgents[0], taskId, 1, 1);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.NotFinalized.selector, taskId));
        vm.prank(roleAgents[0]);
        board.claimReward(taskId);
    }

    function testFuzz_claimReward_revert_NotContributor(address who) public {
        vm.assume(who != roleAgents[0] && who != roleAgents[1] && who != roleAgents[2]);
        _decideQuorum(taskId);
        _finalize(taskId);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.NotContributor.selector, taskId, who));
        vm.prank(who);
        board.claimReward(taskId);
    }

    function test_claimReward_revert_AlreadyClaimed() public {
        _decideQuorum(taskId);
        _finalize(taskId);
        vm.startPrank(roleAgents[0]);
        board.claimReward(taskId);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.AlreadyClaimed.selector, taskId, roleAgents[0]));
        board.claimReward(taskId);
        vm.stopPrank();
    }

    function test_claimReward_revert_TransferFailed() public {
        Rejector agent = new Rejector();
        vm.deal(address(agent), MIN_STAKE);
        agent.exec(
            address(registry),
            MIN_STAKE,
            abi.encodeWithSignature("register(uint8,uint8,string,bytes32,uint16)", 0, 1, ENDPOINT, bytes32(0), 0)
        );
        uint256 id = _submit(3 ether, 2, deadline, 1);
        agent.exec(address(board), 0, abi.encodeCall(TaskBoard.publishDecision, (id, uint8(2), uint16(5))));
        _finalize(id);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.TransferFailed.selector));
        agent.exec(address(board), 0, abi.encodeCall(TaskBoard.claimReward, (id)));
    }

    /*//////////////////////////////////////////////////////////////
                                RECLAIM
    //////////////////////////////////////////////////////////////*/

    function test_reclaim() public {
        _embed(roleAgents[0], taskId); // embeddings without a decision still allow reclaiming
        vm.warp(deadline + 1);
        uint256 before = submitter.balance;
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.TaskReclaimed(taskId, REWARD);
        vm.prank(submitter);
        board.reclaim(taskId);
        assertEq(submitter.balance - before, REWARD, "reward back");
        assertEq(_status(taskId), 3, "reclaimed");
        assertEq(board.escrowed(), 0, "escrowed");
        assertEq(address(board).balance, 0, "balance");
    }

    function testFuzz_reclaim(uint256 reward, uint256 late) public {
        reward = bound(reward, 0, type(uint128).max);
        late = bound(late, 1, type(uint32).max);
        uint256 id = _submit(reward, 7, deadline, 1);
        vm.warp(uint256(deadline) + late);
        uint256 before = submitter.balance;
        vm.prank(submitter);
        board.reclaim(id);
        assertEq(submitter.balance - before, reward, "reward back");
        assertEq(board.escrowed(), REWARD, "only the fixture task stays escrowed");
    }

    function testFuzz_reclaim_revert_UnknownTask(uint256 id) public {
        vm.assume(id != taskId);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.UnknownTask.selector, id));
        board.reclaim(id);
    }

    function testFuzz_reclaim_revert_Unauthorized(address who) public {
        vm.assume(who != submitter);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.Unauthorized.selector));
        vm.prank(who);
        board.reclaim(taskId);
    }

    function testFuzz_reclaim_revert_DeadlineNotPassed(uint256 t) public {
        t = bound(t, START, deadline);
        vm.warp(t);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DeadlineNotPassed.selector, taskId, deadline));
        vm.prank(submitter);
        board.reclaim(taskId);
    }

    function test_reclaim_revert_HasDecisions() public {
        _decide(roleAgents[0], taskId, 1, 1);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.HasDecisions.selector, taskId, uint16(1)));
        vm.prank(submitter);
        board.reclaim(taskId);
    }

    function test_reclaim_revert_AlreadyFinalized() public {
        vm.warp(deadline + 1);
        vm.startPrank(submitter);
        board.reclaim(taskId);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.AlreadyFinalized.selector, taskId));
        board.reclaim(taskId);
        vm.stopPrank();
    }

    function test_reclaim_revert_TransferFailed() public {
        Rejector rejector = new Rejector();
        vm.deal(address(rejector), 1 ether);
        bytes memory ret = rejector.exec(
            address(board), 1 ether, abi.encodeCall(TaskBoard.submitTask, (bytes("p"), uint8(0), deadline, uint16(1)))
        );
        uint256 id = abi.decode(ret, (uint256));
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.TransferFailed.selector));
        rejector.exec(address(board), 0, abi.encodeCall(TaskBoard.reclaim, (id)));
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    /// @dev Market, sentiment and risk decide on `id` (a quorum of 3).
    function _decideQuorum(uint256 id) internal {
        _decide(roleAgents[0], id, 2, 100);
        _decide(roleAgents[1], id, 2, 100);
        _decide(roleAgents[2], id, 0, 100);
    }
}
// forge-lint: disable-end(unsafe-typecast)
