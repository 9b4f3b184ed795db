// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {AgentRegistry} from "../src/AgentRegistry.sol";
import {ModelRegistry} from "../src/ModelRegistry.sol";
import {ChorusFixture} from "./utils/ChorusFixture.sol";
import {Rejector} from "./utils/Rejector.sol";
import {vm} from "./utils/Vm.sol";

/// @notice AgentRegistry: register, updateEndpoint, deregister, withdraw and the views.
contract AgentRegistryTest is ChorusFixture {
    address internal alice = address(0xA1);
    address internal bob = address(0xB2);

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    function test_constructor_getters() public view {
        assertEq(address(registry.modelRegistry()), address(models), "modelRegistry");
        assertEq(registry.minStake(), MIN_STAKE, "minStake");
        assertEq(registry.cooldown(), COOLDOWN, "cooldown");
        assertEq(registry.totalStaked(), 0, "totalStaked");
    }

    function testFuzz_constructor_getters(address modelsAddr, uint256 minStake, uint64 cooldown) public {
        AgentRegistry r = new AgentRegistry(ModelRegistry(modelsAddr), minStake, cooldown);
        assertEq(address(r.modelRegistry()), modelsAddr, "modelRegistry");
        assertEq(r.minStake(), minStake, "minStake");
        assertEq(r.cooldown(), cooldown, "cooldown");
    }

    /*//////////////////////////////////////////////////////////////
                                REGISTER
    //////////////////////////////////////////////////////////////*/

    function test_register_withModel() public {
        vm.deal(alice, 2 ether);
        vm.expectEmit(true, true, true, true, address(registry));
        emit AgentRegistry.AgentRegistered(alice, 1, 2, ENDPOINT, MODEL, DIM, 2 ether);
        vm.prank(alice);
        registry.register{value: 2 ether}(1, 2, ENDPOINT, MODEL, DIM);

        (uint96 stake, uint64 unlockAt, uint8 role, uint8 modality, uint16 dim, bool active, bytes32 modelId) =
            registry.agents(alice);
        assertEq(stake, 2 ether, "stake");
        assertEq(unlockAt, 0, "unlockAt");
        assertEq(role, 1, "role");
        assertEq(modality, 2, "modality");
        assertEq(dim, DIM, "dim");
        assertTrue(active, "active");
        assertEq(modelId, MODEL, "modelId");
        assertEq(registry.totalStaked(), 2 ether, "totalStaked");
        assertEq(address(registry).balance, 2 ether, "balance");
    }

    function test_register_decisionsOnly() public {
        _registerAgent(alice, 3, false);
        (bool active, uint8 role, uint16 dim, bytes32 modelId) = registry.agentInfo(alice);
        assertTrue(active, "active");
        assertEq(role, 3, "role");
        assertEq(dim, 0, "dim");
        assertEq(modelId, bytes32(0), "modelId");
    }

    function testFuzz_register(address who, uint8 role, uint8 modality, uint256 stake, bool withModel, string calldata endpoint)
        public
    {
        vm.assume(who.code.length == 0 && uint160(who) > 0xff);
        vm.assume(bytes(endpoint).length != 0);
        role = uint8(bound(role, 0, 4));
        modality = uint8(bound(modality, 0, 5));
        stake = bound(stake, MIN_STAKE, type(uint96).max);
        bytes32 modelId = withModel ? MODEL : bytes32(0);
        uint16 dim = withModel ? DIM : 0;
        vm.deal(who, stake);
        vm.expectEmit(true, true, true, true, address(registry));
        emit AgentRegistry.AgentRegistered(who, role, modality, endpoint, modelId, dim, stake);
        vm.prank(who);
        registry.register{value: stake}(role, modality, endpoint, modelId, dim);
        _checkRecord(who, stake, role, modality, dim, modelId);
        assertEq(registry.totalStaked(), stake, "totalStaked");
    }

    function _checkRecord(address who, uint256 stake, uint8 role, uint8 modality, uint16 dim, bytes32 modelId)
        internal
        view
    {
        (uint96 s,, uint8 r, uint8 m, uint16 d, bool active, bytes32 id) = registry.agents(who);
        assertEq(s, stake, "stake");
        assertEq(r, role, "role");
        assertEq(m, modality, "modality");
        assertEq(d, dim, "dim");
        assertTrue(active, "active");
        assertEq(id, modelId, "modelId");
    }

    function test_register_revert_AlreadyRegistered() public {
        _registerAgent(alice, 0, true);
        vm.deal(alice, MIN_STAKE);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.AlreadyRegistered.selector, alice));
        vm.prank(alice);
        registry.register{value: MIN_STAKE}(0, 1, ENDPOINT, MODEL, DIM);
    }

    function test_register_revert_AlreadyRegistered_whileCoolingDown() public {
        _registerAgent(alice, 0, true);
        vm.prank(alice);
        registry.deregister();
        vm.deal(alice, MIN_STAKE);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.AlreadyRegistered.selector, alice));
        vm.prank(alice);
        registry.register{value: MIN_STAKE}(0, 1, ENDPOINT, MODEL, DIM);
    }

    function testFuzz_register_revert_InvalidRole(uint8 role) public {
        role = uint8(bound(role, 5, type(uint8).max));
        vm.deal(alice, MIN_STAKE);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.InvalidRole.selector));
        vm.prank(alice);
        registry.register{value: MIN_STAKE}(role, 1, ENDPOINT, MODEL, DIM);
    }

    function testFuzz_register_revert_InvalidModality(uint8 modality) public {
        modality = uint8(bound(modality, 6, type(uint8).max));
        vm.deal(alice, MIN_STAKE);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.InvalidModality.selector));
        vm.prank(alice);
        registry.register{value: MIN_STAKE}(0, modality, ENDPOINT, MODEL, DIM);
    }

    function testFuzz_register_revert_InsufficientStake(uint256 stake) public {
        stake = bound(stake, 0, MIN_STAKE - 1);
        vm.deal(alice, stake);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.InsufficientStake.selector, stake, MIN_STAKE));
        vm.prank(alice);
        registry.register{value: stake}(0, 1, ENDPOINT, MODEL, DIM);
    }

    function test_register_revert_StakeTooLarge() public {
        uint256 stake = uint256(type(uint96).max) + 1;
        vm.deal(alice, stake);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.StakeTooLarge.selector, stake));
        vm.prank(alice);
        registry.register{value: stake}(0, 1, ENDPOINT, MODEL, DIM);
    }

    function test_register_revert_EmptyEndpoint() public {
        vm.deal(alice, MIN_STAKE);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.EmptyEndpoint.selector));
        vm.prank(alice);
        registry.register{value: MIN_STAKE}(0, 1, "", MODEL, DIM);
    }

    function testFuzz_register_revert_DimMismatch_noModel(uint16 dim) public {
        dim = uint16(bound(dim, 1, type(uint16).max));
        vm.deal(alice, MIN_STAKE);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.DimMismatch.selector, uint16(0), dim));
        vm.prank(alice);
        registry.register{value: MIN_STAKE}(0, 1, ENDPOINT, bytes32(0), dim);
    }

    function testFuzz_register_revert_DimMismatch_model(uint16 dim) public {
        vm.assume(dim != DIM);
        vm.deal(alice, MIN_STAKE);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.DimMismatch.selector, DIM, dim));
        vm.prank(alice);
        registry.register{value: MIN_STAKE}(0, 1, ENDPOINT, MODEL, dim);
    }

    function testFuzz_register_revert_UnknownModel(bytes32 modelId) public {
        vm.assume(modelId != bytes32(0) && modelId != MODEL);
        vm.deal(alice, MIN_STAKE);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.UnknownModel.selector, modelId));
        vm.prank(alice);
        registry.register{value: MIN_STAKE}(0, 1, ENDPOINT, modelId, DIM);
    }

    /*//////////////////////////////////////////////////////////////
                            UPDATE ENDPOINT
    //////////////////////////////////////////////////////////////*/

    function test_updateEndpoint() public {
        _registerAgent(alice, 0, true);
        vm.expectEmit(true, true, true, true, address(registry));
        emit AgentRegistry.EndpointUpdated(alice, "http://10.0.0.2:9000");
        vm.prank(alice);
        registry.updateEndpoint("http://10.0.0.2:9000");
    }

    function testFuzz_updateEndpoint(string calldata endpoint) public {
        vm.assume(bytes(endpoint).length != 0);
        _registerAgent(alice, 0, true);
        vm.expectEmit(true, true, true, true, address(registry));
        emit AgentRegistry.EndpointUpdated(alice, endpoint);
        vm.prank(alice);
        registry.updateEndpoint(endpoint);
    }

    function test_updateEndpoint_revert_NotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.NotRegistered.selector, alice));
        vm.prank(alice);
        registry.updateEndpoint(ENDPOINT);
    }

    function test_updateEndpoint_revert_AgentInactive() public {
        _registerAgent(alice, 0, true);
        vm.prank(alice);
        registry.deregister();
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.AgentInactive.selector, alice));
        vm.prank(alice);
        registry.updateEndpoint(ENDPOINT);
    }

    function test_updateEndpoint_revert_EmptyEndpoint() public {
        _registerAgent(alice, 0, true);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.EmptyEndpoint.selector));
        vm.prank(alice);
        registry.updateEndpoint("");
    }

    /*//////////////////////////////////////////////////////////////
                               DEREGISTER
    //////////////////////////////////////////////////////////////*/

    function test_deregister() public {
        _registerAgent(alice, 2, true);
        vm.expectEmit(true, true, true, true, address(registry));
        emit AgentRegistry.AgentDeregistered(alice, uint64(START + COOLDOWN));
        vm.prank(alice);
        registry.deregister();
        (, uint64 unlockAt,,,, bool active,) = registry.agents(alice);
        assertFalse(active, "active");
        assertEq(unlockAt, START + COOLDOWN, "unlockAt");
        (bool infoActive,,,) = registry.agentInfo(alice);
        assertFalse(infoActive, "agentInfo.active");
        assertEq(registry.totalStaked(), MIN_STAKE, "stake stays locked");
    }

    function testFuzz_deregister(uint64 cooldown, uint256 elapsed) public {
        elapsed = bound(elapsed, 0, type(uint32).max);
        AgentRegistry r = new AgentRegistry(models, 0, cooldown);
        vm.warp(START + elapsed);
        vm.prank(alice);
        r.register(0, 1, ENDPOINT, bytes32(0), 0);
        uint256 unlock = block.timestamp + cooldown;
        uint64 expected = unlock > type(uint64).max ? type(uint64).max : uint64(unlock);
        vm.expectEmit(true, true, true, true, address(r));
        emit AgentRegistry.AgentDeregistered(alice, expected);
        vm.prank(alice);
        r.deregister();
        (, uint64 unlockAt,,,,,) = r.agents(alice);
        assertEq(unlockAt, expected, "unlockAt saturates at 2**64 - 1");
    }

    function test_deregister_revert_NotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.NotRegistered.selector, alice));
        vm.prank(alice);
        registry.deregister();
    }

    function test_deregister_revert_AgentInactive() public {
        _registerAgent(alice, 0, true);
        vm.startPrank(alice);
        registry.deregister();
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.AgentInactive.selector, alice));
        registry.deregister();
        vm.stopPrank();
    }

    /*//////////////////////////////////////////////////////////////
                                WITHDRAW
    //////////////////////////////////////////////////////////////*/

    function test_withdraw() public {
        _registerAgent(alice, 0, true);
        vm.prank(alice);
        registry.deregister();
        vm.warp(START + COOLDOWN);
        vm.expectEmit(true, true, true, true, address(registry));
        emit AgentRegistry.StakeWithdrawn(alice, MIN_STAKE);
        vm.prank(alice);
        registry.withdraw();
        assertEq(alice.balance, MIN_STAKE, "stake back");
        assertEq(registry.totalStaked(), 0, "totalStaked");
        assertEq(address(registry).balance, 0, "balance");
        (uint96 stake,,,,, bool active, bytes32 modelId) = registry.agents(alice);
        assertEq(stake, 0, "record deleted");
        assertFalse(active, "inactive");
        assertEq(modelId, bytes32(0), "modelId deleted");
        // The address may register again.
        _registerAgent(alice, 1, false);
        (bool again,,,) = registry.agentInfo(alice);
        assertTrue(again, "re-registered");
    }

    function testFuzz_withdraw(uint256 stakeA, uint256 stakeB, uint256 wait) public {
        stakeA = bound(stakeA, MIN_STAKE, type(uint96).max);
        stakeB = bound(stakeB, MIN_STAKE, type(uint96).max);
        wait = bound(wait, COOLDOWN, 10 * 365 days);
        vm.deal(alice, stakeA);
        vm.deal(bob, stakeB);
        vm.prank(alice);
        registry.register{value: stakeA}(0, 1, ENDPOINT, MODEL, DIM);
        vm.prank(bob);
        registry.register{value: stakeB}(1, 2, ENDPOINT, bytes32(0), 0);
        assertEq(registry.totalStaked(), stakeA + stakeB, "total before");
        vm.prank(alice);
        registry.deregister();
        vm.warp(block.timestamp + wait);
        vm.prank(alice);
        registry.withdraw();
        assertEq(alice.balance, stakeA, "alice paid");
        assertEq(registry.totalStaked(), stakeB, "total after");
        assertEq(address(registry).balance, stakeB, "balance after");
    }

    function test_withdraw_revert_NotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.NotRegistered.selector, alice));
        vm.prank(alice);
        registry.withdraw();
    }

    function test_withdraw_revert_StillActive() public {
        _registerAgent(alice, 0, true);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.StillActive.selector, alice));
        vm.prank(alice);
        registry.withdraw();
    }

    function testFuzz_withdraw_revert_CooldownActive(uint256 early) public {
        early = bound(early, 0, COOLDOWN - 1);
        _registerAgent(alice, 0, true);
        vm.prank(alice);
        registry.deregister();
        vm.warp(START + early);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.CooldownActive.selector, uint64(START + COOLDOWN)));
        vm.prank(alice);
        registry.withdraw();
    }

    function test_withdraw_revert_TransferFailed() public {
        Rejector agent = new Rejector();
        vm.deal(address(agent), MIN_STAKE);
        agent.exec(
            address(registry),
            MIN_STAKE,
            abi.encodeCall(AgentRegistry.register, (0, 1, ENDPOINT, bytes32(0), uint16(0)))
        );
        agent.exec(address(registry), 0, abi.encodeCall(AgentRegistry.deregister, ()));
        vm.warp(START + COOLDOWN);
        vm.expectRevert(abi.encodeWithSelector(AgentRegistry.TransferFailed.selector));
        agent.exec(address(registry), 0, abi.encodeCall(AgentRegistry.withdraw, ()));
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function test_views_unknownAgentIsZero() public view {
        (bool active, uint8 role, uint16 dim, bytes32 modelId) = registry.agentInfo(alice);
        assertFalse(active, "active");
        assertEq(role, 0, "role");
        assertEq(dim, 0, "dim");
        assertEq(modelId, bytes32(0), "modelId");
        (bool active2, uint8 role2) = registry.agentRole(alice);
        assertFalse(active2, "agentRole.active");
        assertEq(role2, 0, "agentRole.role");
    }

    function testFuzz_views_agree(uint8 role, bool withModel, bool deregistered) public {
        role = uint8(bound(role, 0, 4));
        _registerAgent(alice, role, withModel);
        if (deregistered) {
            vm.prank(alice);
            registry.deregister();
        }
        (bool active, uint8 r, uint16 dim, bytes32 modelId) = registry.agentInfo(alice);
        assertEq(active, !deregistered, "active");
        assertEq(r, role, "role");
        assertEq(dim, withModel ? DIM : 0, "dim");
        assertEq(modelId, withModel ? MODEL : bytes32(0), "modelId");
        (bool active2, uint8 r2) = registry.agentRole(alice);
        assertEq(active2, active, "agentRole.active");
        assertEq(r2, role, "agentRole.role");
        _checkAgents(alice, active, role, dim, modelId);
    }

    function _checkAgents(address a, bool active, uint8 role, uint16 dim, bytes32 modelId) internal view {
        (uint96 stake,, uint8 r, uint8 modality, uint16 d, bool act, bytes32 id) = registry.agents(a);
        assertEq(stake, MIN_STAKE, "agents.stake");
        assertEq(r, role, "agents.role");
        assertEq(modality, 1, "agents.modality");
        assertEq(d, dim, "agents.dim");
        assertEq(act, active, "agents.active");
        assertEq(id, modelId, "agents.modelId");
    }

    function testFuzz_totalStaked(uint8 n, uint256 seed) public {
        n = uint8(bound(n, 1, 12));
        uint256 sum;
        for (uint256 i; i < n; ++i) {
            address a = address(uint160(0x1000 + i));
            uint256 stake = bound(uint256(keccak256(abi.encode(seed, i))), MIN_STAKE, 1000 ether);
            vm.deal(a, stake);
            vm.prank(a);
            registry.register{value: stake}(uint8(i % 5), 0, ENDPOINT, bytes32(0), 0);
            sum += stake;
        }
        assertEq(registry.totalStaked(), sum, "totalStaked");
        assertEq(address(registry).balance, sum, "balance");
    }
}
// forge-lint: disable-end(unsafe-typecast)
