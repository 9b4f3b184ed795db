// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {AgentRegistry} from "../../src/AgentRegistry.sol";
import {TaskBoard} from "../../src/TaskBoard.sol";
import {vm, Vm} from "../utils/Vm.sol";

/// @title Handler
/// @notice The only contract the invariant fuzzer calls (solmate's BalanceSum pattern): it drives
/// the AgentRegistry and the TaskBoard through a small cast of actors with bounded inputs, and keeps
/// ghost books the invariants compare with the contracts' own.
contract Handler {
    AgentRegistry public immutable registry;
    TaskBoard public immutable board;
    bytes32 public immutable model;
    uint16 public immutable dim;
    uint256 public immutable minStake;

    /// @dev Agents and submitters.
    address[] public actors;
    address[] public submitters;

    /// @dev Ghost books.
    uint256 public ghostStaked;
    uint256 public ghostEscrow;
    uint256[] public taskIds;
    mapping(uint256 taskId => uint256) public finalizedEvents;
    mapping(uint256 taskId => uint256) public ghostReward;

    /// @dev Call counters, to see what the campaign exercised.
    mapping(bytes32 action => uint256) public calls;

    constructor(AgentRegistry registry_, TaskBoard board_, bytes32 model_, uint16 dim_) {
        registry = registry_;
        board = board_;
        model = model_;
        dim = dim_;
        minStake = registry_.minStake();
        for (uint160 i; i < 6; ++i) {
            actors.push(address(0x1000 + i));
        }
        submitters.push(address(0x2000));
        submitters.push(address(0x2001));
        // Start with every actor registered so that early calls can publish.
        for (uint256 i; i < actors.length; ++i) {
            vm.deal(actors[i], minStake);
            vm.prank(actors[i]);
            registry_.register{value: minStake}(uint8(i % 5), 1, "http://agent", model_, dim_);
            ghostStaked += minStake;
        }
    }

    /// @dev Records the logs of every action and counts TaskFinalized per task id.
    modifier countFinalized() {
        vm.recordLogs();
        _;
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(board) && logs[i].topics[0] == TaskBoard.TaskFinalized.selector) {
                ++finalizedEvents[uint256(logs[i].topics[1])];
            }
        }
    }

    /*//////////////////////////////////////////////////////////////
                                REGISTRY
    //////////////////////////////////////////////////////////////*/

    function register(uint256 actorSeed, uint256 roleSeed, uint256 stakeSeed, bool withModel) external countFinalized {
        address a = _actor(actorSeed);
        uint256 stake = minStake + stakeSeed % 5 ether;
        vm.deal(a, a.balance + stake);
        vm.prank(a);
        try registry.register{value: stake}(
            uint8(roleSeed % 5), 1, "http://agent", withModel ? model : bytes32(0), withModel ? dim : 0
        ) {
            ghostStaked += stake;
            ++calls["register"];
        } catch {}
    }

    function deregister(uint256 actorSeed) external countFinalized {
        vm.prank(_actor(actorSeed));
        try registry.deregister() {
            ++calls["deregister"];
        } catch {}
    }

    function withdraw(uint256 actorSeed, bool wait) external countFinalized {
        address a = _actor(actorSeed);
        if (wait) vm.warp(block.timestamp + registry.cooldown());
        (uint96 stake,,,,,,) = registry.agents(a);
        vm.prank(a);
        try registry.withdraw() {
            ghostStaked -= stake;
            ++calls["withdraw"];
        } catch {}
    }

    /*//////////////////////////////////////////////////////////////
                               TASK BOARD
    //////////////////////////////////////////////////////////////*/

    function submit(uint256 submitterSeed, uint256 rewardSeed, uint256 archSeed, uint256 durationSeed, uint256 quorumSeed, bool uri)
        external
        countFinalized
    {
        address s = submitters[submitterSeed % submitters.length];
        uint256 reward = rewardSeed % 10 ether;
        uint64 deadline = uint64(block.timestamp + 1 + durationSeed % 6 hours);
        uint16 quorum = uint16(1 + quorumSeed % 3);
        vm.deal(s, s.balance + reward);
        vm.prank(s);
        uint256 id = uri
            ? board.submitTaskURI{value: reward}(keccak256("p"), "ipfs://p", uint8(archSeed % 16), deadline, quorum)
            : board.submitTask{value: reward}("payload", uint8(archSeed % 16), deadline, quorum);
        taskIds.push(id);
        ghostReward[id] = reward;
        ghostEscrow += reward;
        ++calls["submit"];
    }

    /// @dev One to three actors, from `actorSeed` on, embed on one task.
    function embed(uint256 actorSeed, uint256 taskSeed) external countFinalized {
        if (taskIds.length == 0) return;
        uint256 id = _task(taskSeed);
        for (uint256 k; k <= actorSeed % 3; ++k) {
            vm.prank(_actor(actorSeed % actors.length + k));
            try board.publishEmbedding(id, model, 2, new bytes(dim)) {
                ++calls["embed"];
            } catch {}
        }
    }

    /// @dev One to three actors, from `actorSeed` on, decide on one task.
    function decide(uint256 actorSeed, uint256 taskSeed, uint256 actionSeed, uint256 confidenceSeed)
        external
        countFinalized
    {
        if (taskIds.length == 0) return;
        uint256 id = _task(taskSeed);
        for (uint256 k; k <= actorSeed % 3; ++k) {
            uint8 action = uint8((actionSeed >> (8 * k)) % 3);
            uint16 confidence = uint16((confidenceSeed >> (16 * k)) % 10_001);
            vm.prank(_actor(actorSeed % actors.length + k));
            try board.publishDecision(id, action, confidence) {
                ++calls["decide"];
            } catch {}
        }
    }

    /// @dev An actor finalizes one task and receives its division remainder.
    function finalize(uint256 actorSeed, uint256 taskSeed) external countFinalized {
        if (taskIds.length == 0) return;
        uint256 id = _task(taskSeed);
        address caller = _actor(actorSeed);
        uint256 before = caller.balance;
        // Finalized (and reclaimed) tasks stay in the draw: a second finalize must revert, and
        // the modifier would count a second TaskFinalized if it did not.
        vm.prank(caller);
        try board.finalize(id) {
            ghostEscrow -= caller.balance - before; // the remainder went to the caller
            ++calls["finalize"];
        } catch {}
    }

    /// @dev Every actor from `actorSeed` on tries to claim its share of one task.
    function claim(uint256 actorSeed, uint256 taskSeed) external countFinalized {
        if (taskIds.length == 0) return;
        uint256 id = _task(taskSeed);
        for (uint256 k = actorSeed % actors.length; k < actors.length; ++k) {
            address a = actors[k];
            uint256 before = a.balance;
            vm.prank(a);
            try board.claimReward(id) {
                ghostEscrow -= a.balance - before;
                ++calls["claim"];
            } catch {}
        }
    }

    function reclaim(uint256 taskSeed) external countFinalized {
        if (taskIds.length == 0) return;
        uint256 id = _task(taskSeed);
        (address s,,,,,,,,,) = board.taskInfo(id);
        uint256 before = s.balance;
        vm.prank(s);
        try board.reclaim(id) {
            ghostEscrow -= s.balance - before;
            ++calls["reclaim"];
        } catch {}
    }

    function warp(uint256 secondsSeed) external countFinalized {
        vm.warp(block.timestamp + secondsSeed % 1 hours);
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function taskCount() external view returns (uint256) {
        return taskIds.length;
    }

    function _actor(uint256 seed) internal view returns (address) {
        return actors[seed % actors.length];
    }

    function _task(uint256 seed) internal view returns (uint256) {
        return taskIds[seed % taskIds.length];
    }
}
// forge-lint: disable-end(unsafe-typecast)
