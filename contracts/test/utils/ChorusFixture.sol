// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {AgentRegistry} from "../../src/AgentRegistry.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {TaskBoard} from "../../src/TaskBoard.sol";
import {Test} from "./Test.sol";
import {vm} from "./Vm.sol";

/// @title ChorusFixture
/// @notice Deploys the three contracts the way docs/protocol.md orders them, registers one
/// 384-d f32 model, and offers helpers to register agents and submit tasks.
abstract contract ChorusFixture is Test {
    uint256 internal constant MIN_STAKE = 1 ether;
    uint64 internal constant COOLDOWN = 1 days;
    uint16 internal constant DIM = 384;
    uint256 internal constant START = 1_700_000_000;
    bytes32 internal constant MODEL = keccak256("all-MiniLM-L6-v2.onnx");
    string internal constant ENDPOINT = "http://127.0.0.1:8001";

    ModelRegistry internal models;
    AgentRegistry internal registry;
    TaskBoard internal board;
    address internal owner = address(0xA11CE);
    address internal submitter = address(0xB0B);
    /// @dev Calls `finalize` in tests, and so receives the division remainder.
    address internal finalizer = address(0xF17A1);

    function setUp() public virtual {
        vm.warp(START);
        models = new ModelRegistry();
        registry = new AgentRegistry(models, MIN_STAKE, COOLDOWN);
        board = new TaskBoard(registry, owner);
        models.register(MODEL, DIM, 0, "all-MiniLM-L6-v2");
    }

    /// @dev One agent per role (0 market .. 4 coordinator), all publishing in the fixture model.
    address[5] internal roleAgents;

    /// @dev Storage slot of `TaskBoard._tasks` (see `forge inspect TaskBoard storageLayout`).
    uint256 internal constant TASKS_SLOT = 19;

    /// @dev Registers `roleAgents`.
    function _registerRoles() internal {
        for (uint8 r; r < 5; ++r) {
            roleAgents[r] = address(uint160(0xA000 + r));
            _registerAgent(roleAgents[r], r, true);
        }
    }

    /// @dev The constructor default weight of `role` under `arch` (docs/protocol.md).
    function _defaultWeight(uint8 arch, uint8 role) internal pure returns (uint16) {
        if (arch == 3 || arch == 4 || arch == 5 || arch == 8) return role == 3 ? 10_000 : 0;
        if (arch == 6 || arch == 7) return role == 4 ? 10_000 : 0;
        if (role == 0) return 5000;
        if (role == 1) return 3000;
        if (role == 2) return 2000;
        return 0;
    }

    /// @dev Reference fusion: strict argmax, hold on any tie.
    function _fuse(uint256 sell, uint256 hold, uint256 buy) internal pure returns (uint8) {
        if (sell > hold && sell > buy) return 0;
        if (buy > hold && buy > sell) return 2;
        return 1;
    }

    /// @dev Storage slot of the hot `state` word of task `taskId`.
    function _stateSlot(uint256 taskId) internal pure returns (bytes32) {
        return keccak256(abi.encode(taskId, TASKS_SLOT));
    }

    /// @dev Status of task `taskId` through `taskInfo`.
    function _status(uint256 taskId) internal view returns (uint8 status) {
        (,,, status,,,,,,) = board.taskInfo(taskId);
    }

    /// @dev Decisions and contributors of task `taskId` through `taskInfo`.
    function _counts(uint256 taskId) internal view returns (uint16 decisions, uint16 contributors) {
        (,,,,, decisions, contributors,,,) = board.taskInfo(taskId);
    }

    /// @dev Overwrites the contributor count of `taskId` (reaching 2**16 - 1 honestly takes 65535 agents).
    function _setContributors(uint256 taskId, uint16 n) internal {
        bytes32 slot = _stateSlot(taskId);
        uint256 state = uint256(vm.load(address(board), slot));
        // Sanity: the slot really is the task's hot word (its deadline in the low 64 bits).
        (, uint64 deadline,,,,,,,,) = board.taskInfo(taskId);
        assertEq(uint64(state), deadline, "state slot");
        state = (state & ~(uint256(0xffff) << 96)) | (uint256(n) << 96);
        vm.store(address(board), slot, bytes32(state));
        (, uint16 contributors) = _counts(taskId);
        assertEq(contributors, n, "contributors set");
    }

    /// @dev A deterministic address for `name`.
    function _addr(string memory name) internal pure returns (address) {
        return address(uint160(uint256(keccak256(bytes(name)))));
    }

    /// @dev Registers `agent` with the minimum stake, `role`, and the fixture model (or none).
    function _registerAgent(address agent, uint8 role, bool withModel) internal {
        vm.deal(agent, MIN_STAKE);
        vm.prank(agent);
        registry.register{value: MIN_STAKE}(role, 1, ENDPOINT, withModel ? MODEL : bytes32(0), withModel ? DIM : 0);
    }

    /// @dev Submits an inline task from `submitter` with `reward` wei.
    function _submit(uint256 reward, uint8 arch, uint64 deadline, uint16 quorum) internal returns (uint256 taskId) {
        vm.deal(submitter, reward);
        vm.prank(submitter);
        taskId = board.submitTask{value: reward}(bytes("payload"), arch, deadline, quorum);
    }

    /// @dev `len` pseudo-random, mostly non-zero bytes (like an f32 vector).
    function _vector(uint256 len, uint256 seed) internal pure returns (bytes memory v) {
        v = new bytes(len);
        for (uint256 i; i < len; i += 32) {
            bytes32 word = keccak256(abi.encode(seed, i)) | 0x0101010101010101010101010101010101010101010101010101010101010101;
            uint256 n = len - i < 32 ? len - i : 32;
            for (uint256 j; j < n; ++j) v[i + j] = word[j];
        }
    }

    /// @dev Finalizes `taskId` from `finalizer`.
    function _finalize(uint256 taskId) internal {
        vm.prank(finalizer);
        board.finalize(taskId);
    }

    /// @dev Publishes a decision from `agent`.
    function _decide(address agent, uint256 taskId, uint8 action, uint16 confidence) internal {
        vm.prank(agent);
        board.publishDecision(taskId, action, confidence);
    }

    /// @dev Publishes a 384-d f32 embedding from `agent`.
    function _embed(address agent, uint256 taskId) internal {
        vm.prank(agent);
        board.publishEmbedding(taskId, MODEL, 0, _vector(uint256(DIM) * 4, uint256(uint160(agent))));
    }
}
// forge-lint: disable-end(unsafe-typecast)
