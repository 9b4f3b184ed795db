// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {TaskBoard} from "../src/TaskBoard.sol";
import {ChorusFixture} from "./utils/ChorusFixture.sol";
import {vm} from "./utils/Vm.sol";

/// @notice TaskBoard submission: submitTask, submitTaskURI, and the task views right after.
contract TaskBoardSubmitTest is ChorusFixture {
    /*//////////////////////////////////////////////////////////////
                              SUBMIT INLINE
    //////////////////////////////////////////////////////////////*/

    function test_submitTask() public {
        bytes memory payload = bytes('{"series":[1,2,3],"headline":"ETH rallies"}');
        uint64 deadline = uint64(START + 600);
        vm.deal(submitter, 2 ether);
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.TaskSubmitted(1, submitter, 2, deadline, 3, 2 ether, sha256(payload), "", payload);
        vm.prank(submitter);
        uint256 taskId = board.submitTask{value: 2 ether}(payload, 2, deadline, 3);
        assertEq(taskId, 1, "first id is 1");
        assertEq(board.taskCount(), 1, "taskCount");
        assertEq(board.escrowed(), 2 ether, "escrowed");
        assertEq(address(board).balance, 2 ether, "balance");
        _checkOpenTask(taskId, submitter, deadline, 2, 3, 2 ether, sha256(payload));
    }

    function testFuzz_submitTask(bytes calldata payload, uint8 arch, uint64 deadline, uint16 quorum, uint256 reward)
        public
    {
        vm.assume(payload.length != 0);
        arch = uint8(bound(arch, 0, 15));
        deadline = uint64(bound(deadline, START + 1, type(uint64).max));
        quorum = uint16(bound(quorum, 1, type(uint16).max));
        reward = bound(reward, 0, type(uint128).max);
        vm.deal(submitter, reward);
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.TaskSubmitted(1, submitter, arch, deadline, quorum, reward, sha256(payload), "", payload);
        vm.prank(submitter);
        uint256 taskId = board.submitTask{value: reward}(payload, arch, deadline, quorum);
        assertEq(board.escrowed(), reward, "escrowed");
        _checkOpenTask(taskId, submitter, deadline, arch, quorum, reward, sha256(payload));
    }

    function testFuzz_submitTask_sequentialIds(uint8 n) public {
        n = uint8(bound(n, 1, 20));
        uint256 total;
        for (uint256 i = 1; i <= n; ++i) {
            assertEq(_submit(i, uint8(i % 16), uint64(START + i), 1), i, "sequential id");
            total += i;
        }
        assertEq(board.taskCount(), n, "taskCount");
        assertEq(board.escrowed(), total, "escrowed");
    }

    function test_submitTask_revert_EmptyPayload() public {
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.EmptyPayload.selector));
        board.submitTask("", 0, uint64(START + 1), 1);
    }

    function testFuzz_submitTask_revert_InvalidArchitecture(uint8 arch) public {
        arch = uint8(bound(arch, 16, 255));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.InvalidArchitecture.selector));
        board.submitTask("p", arch, uint64(START + 1), 1);
    }

    function testFuzz_submitTask_revert_DeadlineInPast(uint64 deadline) public {
        deadline = uint64(bound(deadline, 0, START));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DeadlineInPast.selector, deadline, START));
        board.submitTask("p", 0, deadline, 1);
    }

    function test_submitTask_revert_ZeroQuorum() public {
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.ZeroQuorum.selector));
        board.submitTask("p", 0, uint64(START + 1), 0);
    }

    function test_submitTask_revert_RewardTooLarge() public {
        uint256 reward = uint256(type(uint128).max) + 1;
        vm.deal(submitter, reward);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.RewardTooLarge.selector, reward));
        vm.prank(submitter);
        board.submitTask{value: reward}("p", 0, uint64(START + 1), 1);
    }

    /*//////////////////////////////////////////////////////////////
                               SUBMIT URI
    //////////////////////////////////////////////////////////////*/

    function test_submitTaskURI() public {
        bytes32 hash = sha256("payload at the uri");
        string memory uri = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
        uint64 deadline = uint64(START + 60);
        vm.deal(submitter, 1 ether);
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.TaskSubmitted(1, submitter, 6, deadline, 1, 1 ether, hash, uri, "");
        vm.prank(submitter);
        uint256 taskId = board.submitTaskURI{value: 1 ether}(hash, uri, 6, deadline, 1);
        assertEq(taskId, 1, "id");
        _checkOpenTask(taskId, submitter, deadline, 6, 1, 1 ether, hash);
    }

    function testFuzz_submitTaskURI(bytes32 hash, string calldata uri, uint8 arch, uint64 deadline, uint16 quorum)
        public
    {
        vm.assume(bytes(uri).length != 0);
        arch = uint8(bound(arch, 0, 15));
        deadline = uint64(bound(deadline, START + 1, type(uint64).max));
        quorum = uint16(bound(quorum, 1, type(uint16).max));
        _submit(5, 0, uint64(START + 1), 1); // ids keep counting across both entry points
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.TaskSubmitted(2, address(this), arch, deadline, quorum, 0, hash, uri, "");
        uint256 taskId = board.submitTaskURI(hash, uri, arch, deadline, quorum);
        assertEq(taskId, 2, "id");
        _checkOpenTask(taskId, address(this), deadline, arch, quorum, 0, hash);
    }

    function test_submitTaskURI_revert_EmptyPayload() public {
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.EmptyPayload.selector));
        board.submitTaskURI(bytes32(uint256(1)), "", 0, uint64(START + 1), 1);
    }

    function testFuzz_submitTaskURI_revert_InvalidArchitecture(uint8 arch) public {
        arch = uint8(bound(arch, 16, 255));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.InvalidArchitecture.selector));
        board.submitTaskURI(bytes32(0), "u", arch, uint64(START + 1), 1);
    }

    function testFuzz_submitTaskURI_revert_DeadlineInPast(uint64 deadline) public {
        deadline = uint64(bound(deadline, 0, START));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.DeadlineInPast.selector, deadline, START));
        board.submitTaskURI(bytes32(0), "u", 0, deadline, 1);
    }

    function test_submitTaskURI_revert_ZeroQuorum() public {
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.ZeroQuorum.selector));
        board.submitTaskURI(bytes32(0), "u", 0, uint64(START + 1), 0);
    }

    function test_submitTaskURI_revert_RewardTooLarge() public {
        uint256 reward = uint256(type(uint128).max) + 1;
        vm.deal(submitter, reward);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.RewardTooLarge.selector, reward));
        vm.prank(submitter);
        board.submitTaskURI{value: reward}(bytes32(0), "u", 0, uint64(START + 1), 1);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function testFuzz_views_unknownTaskIsZero(uint256 taskId) public view {
        (address s, uint64 deadline, uint8 arch, uint8 status, uint16 quorum) = board.tasks(taskId);
        assertEq(s, address(0), "submitter");
        assertEq(deadline, 0, "deadline");
        assertEq(arch, 0, "arch");
        assertEq(status, 0, "status none");
        assertEq(quorum, 0, "quorum");
        (uint64 sell, uint64 hold, uint64 buy) = board.tallies(taskId);
        assertEq(uint256(sell) + hold + buy, 0, "tallies");
        (bool e, bool d, bool c) = board.published(taskId, address(this));
        assertFalse(e || d || c, "published");
    }

    /// @dev What a freshly submitted task should look like.
    struct Expected {
        address submitter;
        uint64 deadline;
        uint8 arch;
        uint16 quorum;
        uint256 reward;
        bytes32 payloadHash;
    }

    /// @dev Checks every view of a freshly submitted task.
    function _checkOpenTask(
        uint256 taskId,
        address who,
        uint64 deadline,
        uint8 arch,
        uint16 quorum,
        uint256 reward,
        bytes32 payloadHash
    ) internal view {
        _checkTasks(taskId, Expected(who, deadline, arch, quorum, reward, payloadHash));
        _checkInfo(taskId, Expected(who, deadline, arch, quorum, reward, payloadHash));
    }

    function _checkTasks(uint256 taskId, Expected memory x) internal view {
        (address s, uint64 d, uint8 a, uint8 status, uint16 q) = board.tasks(taskId);
        assertEq(s, x.submitter, "tasks.submitter");
        assertEq(d, x.deadline, "tasks.deadline");
        assertEq(a, x.arch, "tasks.arch");
        assertEq(status, 1, "tasks.status open");
        assertEq(q, x.quorum, "tasks.quorum");
        (uint64 sell, uint64 hold, uint64 buy) = board.tallies(taskId);
        assertEq(uint256(sell) + hold + buy, 0, "tallies");
    }

    function _checkInfo(uint256 taskId, Expected memory x) internal view {
        (address s, uint64 d, uint8 a, uint8 status, uint16 q,,,,,) = board.taskInfo(taskId);
        assertEq(s, x.submitter, "taskInfo.submitter");
        assertEq(d, x.deadline, "taskInfo.deadline");
        assertEq(a, x.arch, "taskInfo.arch");
        assertEq(status, 1, "taskInfo.status");
        assertEq(q, x.quorum, "taskInfo.quorum");
        (,,,,, uint16 decisions, uint16 contributors, uint8 action, uint128 r, bytes32 h) = board.taskInfo(taskId);
        assertEq(decisions, 0, "decisions");
        assertEq(contributors, 0, "contributors");
        assertEq(action, 0, "action unset");
        assertEq(r, x.reward, "reward");
        assertEq(h, x.payloadHash, "payloadHash");
    }
}
// forge-lint: disable-end(unsafe-typecast)
