// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {AgentRegistry} from "../../src/AgentRegistry.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {TaskBoard} from "../../src/TaskBoard.sol";
import {Test} from "../utils/Test.sol";
import {vm} from "../utils/Vm.sol";
import {Handler} from "./Handler.sol";

/// @notice Invariants of the escrow and of finalization, driven through `Handler`.
contract InvariantsTest is Test {
    ModelRegistry internal models;
    AgentRegistry internal registry;
    TaskBoard internal board;
    Handler internal handler;
    bytes32 internal constant MODEL = keccak256("model");
    uint16 internal constant DIM = 16;

    function setUp() public {
        vm.warp(1_700_000_000);
        models = new ModelRegistry();
        registry = new AgentRegistry(models, 0.1 ether, 1 hours);
        board = new TaskBoard(registry, address(this));
        models.register(MODEL, DIM, 2, "tiny");
        handler = new Handler(registry, board, MODEL, DIM);
    }

    /// @dev Read by forge: fuzz only the handler.
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @notice (a) ETH held by the registry == sum of stakes not yet withdrawn == totalStaked().
    function invariant_registryHoldsExactlyTheStakes() public view {
        uint256 sum;
        for (uint256 i; i < handler.actorCount(); ++i) {
            (uint96 stake,,,,,,) = registry.agents(handler.actors(i));
            sum += stake;
        }
        assertEq(address(registry).balance, sum, "balance == sum of stakes");
        assertEq(registry.totalStaked(), sum, "totalStaked == sum of stakes");
        assertEq(handler.ghostStaked(), sum, "ghost == sum of stakes");
    }

    /// @notice (a) ETH held by the board == escrowed() == unpaid rewards of open tasks +
    /// unclaimed shares of finalized tasks.
    function invariant_boardHoldsExactlyTheEscrow() public view {
        uint256 owed;
        for (uint256 i; i < handler.taskCount(); ++i) {
            uint256 id = handler.taskIds(i);
            (,,, uint8 status,,,,, uint128 reward,) = board.taskInfo(id);
            if (status == 1) {
                owed += reward;
            } else if (status == 2) {
                owed += _unclaimed(id) * _share(id);
            }
        }
        assertEq(address(board).balance, owed, "balance == owed");
        assertEq(board.escrowed(), owed, "escrowed() == owed");
        assertEq(handler.ghostEscrow(), owed, "ghost == owed");
    }

    /// @notice (b) A task finalizes at most once, and exactly the finalized tasks logged it.
    function invariant_finalizeAtMostOnce() public view {
        for (uint256 i; i < handler.taskCount(); ++i) {
            uint256 id = handler.taskIds(i);
            uint256 events = handler.finalizedEvents(id);
            assertLe(events, 1, "TaskFinalized at most once");
            (,,, uint8 status,,,,,,) = board.taskInfo(id);
            assertEq(events == 1, status == 2, "logged iff finalized");
        }
    }

    /// @notice Counters stay consistent: decisions <= contributors <= actors, and the flags agree.
    function invariant_countsMatchFlags() public view {
        for (uint256 i; i < handler.taskCount(); ++i) {
            uint256 id = handler.taskIds(i);
            (,,,,, uint16 decisions, uint16 contributors,,,) = board.taskInfo(id);
            uint256 d;
            uint256 c;
            for (uint256 j; j < handler.actorCount(); ++j) {
                (bool e, bool dec,) = board.published(id, handler.actors(j));
                if (dec) ++d;
                if (e || dec) ++c;
            }
            assertEq(decisions, d, "decisions == decision flags");
            assertEq(contributors, c, "contributors == agents with a flag");
            assertLe(decisions, contributors, "decisions <= contributors");
        }
    }

    /// @dev Contributors of a finalized task that have not claimed.
    function _unclaimed(uint256 id) internal view returns (uint256 n) {
        for (uint256 j; j < handler.actorCount(); ++j) {
            (bool e, bool d, bool claimed) = board.published(id, handler.actors(j));
            if ((e || d) && !claimed) ++n;
        }
    }

    /// @dev The per-contributor share of a finalized task, from its public record.
    function _share(uint256 id) internal view returns (uint256) {
        (,,,,,, uint16 contributors,, uint128 reward,) = board.taskInfo(id);
        return uint256(reward) / contributors;
    }
}
// forge-lint: disable-end(unsafe-typecast)
