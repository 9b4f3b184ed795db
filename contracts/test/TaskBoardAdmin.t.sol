// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {AgentRegistry} from "../src/AgentRegistry.sol";
import {TaskBoard} from "../src/TaskBoard.sol";
import {ChorusFixture} from "./utils/ChorusFixture.sol";
import {vm, Vm} from "./utils/Vm.sol";

/// @notice TaskBoard construction, ownership and fusion weights.
contract TaskBoardAdminTest is ChorusFixture {
    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    function test_constructor_defaults() public view {
        assertEq(address(board.registry()), address(registry), "registry");
        assertEq(board.owner(), owner, "owner");
        assertEq(board.taskCount(), 0, "taskCount");
        assertEq(board.escrowed(), 0, "escrowed");
        for (uint8 arch; arch < 16; ++arch) {
            for (uint8 role; role < 5; ++role) {
                assertEq(board.weights(arch, role), _defaultWeight(arch, role), "default weight");
            }
        }
        // The modular baseline 0.5a + 0.3b + 0.2c sums to 10_000 wherever it applies.
        assertEq(uint256(board.weights(2, 0)) + board.weights(2, 1) + board.weights(2, 2), 10_000, "baseline sum");
    }

    function test_constructor_events() public {
        vm.recordLogs();
        vm.expectEmit(true, true, true, true);
        emit TaskBoard.OwnershipTransferred(address(0), owner);
        TaskBoard b = new TaskBoard(registry, owner);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 weightEvents;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(b) || logs[i].topics[0] != TaskBoard.WeightSet.selector) continue;
            uint8 arch = uint8(uint256(logs[i].topics[1]));
            uint8 role = uint8(uint256(logs[i].topics[2]));
            assertEq(abi.decode(logs[i].data, (uint16)), _defaultWeight(arch, role), "logged default");
            ++weightEvents;
        }
        // Every non-zero default is logged: 11 baseline archs x 3 roles + 3 fusion + 2 coordinator.
        assertEq(weightEvents, 36, "WeightSet events");
    }

    function test_constructor_revert_ZeroAddress() public {
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.ZeroAddress.selector));
        new TaskBoard(registry, address(0));
    }

    function testFuzz_constructor(address registryAddr, address owner_) public {
        vm.assume(owner_ != address(0));
        TaskBoard b = new TaskBoard(AgentRegistry(registryAddr), owner_);
        assertEq(b.owner(), owner_, "owner");
        assertEq(address(b.registry()), registryAddr, "registry");
    }

    /*//////////////////////////////////////////////////////////////
                               OWNERSHIP
    //////////////////////////////////////////////////////////////*/

    function test_transferOwnership() public {
        address next = address(0xCAFE);
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.OwnershipTransferred(owner, next);
        vm.prank(owner);
        board.transferOwnership(next);
        assertEq(board.owner(), next, "owner");
        // The old owner lost the admin role; the new one has it.
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.Unauthorized.selector));
        vm.prank(owner);
        board.setWeight(0, 0, 1);
        vm.prank(next);
        board.setWeight(0, 0, 1);
    }

    function test_transferOwnership_revert_ZeroAddress() public {
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.ZeroAddress.selector));
        vm.prank(owner);
        board.transferOwnership(address(0));
        // The admin role stays where it was.
        assertEq(board.owner(), owner, "owner");
        vm.prank(owner);
        board.setWeight(0, 0, 1);
    }

    function testFuzz_transferOwnership(address next) public {
        vm.assume(next != address(0));
        vm.prank(owner);
        board.transferOwnership(next);
        assertEq(board.owner(), next, "owner");
    }

    function testFuzz_transferOwnership_revert_Unauthorized(address caller) public {
        vm.assume(caller != owner);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.Unauthorized.selector));
        vm.prank(caller);
        board.transferOwnership(caller);
    }

    /*//////////////////////////////////////////////////////////////
                                WEIGHTS
    //////////////////////////////////////////////////////////////*/

    function test_setWeight() public {
        vm.expectEmit(true, true, true, true, address(board));
        emit TaskBoard.WeightSet(2, 1, 4242);
        vm.prank(owner);
        board.setWeight(2, 1, 4242);
        assertEq(board.weights(2, 1), 4242, "set");
        assertEq(board.weights(2, 0), 5000, "neighbour role untouched");
        assertEq(board.weights(2, 2), 2000, "neighbour role untouched");
        assertEq(board.weights(1, 1), 3000, "other arch untouched");
    }

    function testFuzz_setWeight(uint8 arch, uint8 role, uint16 weight) public {
        arch = uint8(bound(arch, 0, 15));
        role = uint8(bound(role, 0, 4));
        vm.prank(owner);
        board.setWeight(arch, role, weight);
        for (uint8 a; a < 16; ++a) {
            for (uint8 r; r < 5; ++r) {
                uint16 expected = (a == arch && r == role) ? weight : _defaultWeight(a, r);
                assertEq(board.weights(a, r), expected, "weights");
            }
        }
    }

    function testFuzz_setWeight_revert_Unauthorized(address caller) public {
        vm.assume(caller != owner);
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.Unauthorized.selector));
        vm.prank(caller);
        board.setWeight(0, 0, 1);
    }

    function testFuzz_setWeight_revert_InvalidArchitecture(uint8 arch) public {
        arch = uint8(bound(arch, 16, 255));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.InvalidArchitecture.selector));
        vm.prank(owner);
        board.setWeight(arch, 0, 1);
    }

    function testFuzz_setWeight_revert_InvalidRole(uint8 role) public {
        role = uint8(bound(role, 5, 255));
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.InvalidRole.selector));
        vm.prank(owner);
        board.setWeight(0, role, 1);
    }

    function test_weights_revert_InvalidArchitecture() public {
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.InvalidArchitecture.selector));
        board.weights(16, 0);
    }

    function test_weights_revert_InvalidRole() public {
        vm.expectRevert(abi.encodeWithSelector(TaskBoard.InvalidRole.selector));
        board.weights(0, 5);
    }
}
// forge-lint: disable-end(unsafe-typecast)
