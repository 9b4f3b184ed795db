// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {ModelRegistry} from "../src/ModelRegistry.sol";
import {Test} from "./utils/Test.sol";
import {vm} from "./utils/Vm.sol";

/// @notice ModelRegistry: register, models, isRegistered.
contract ModelRegistryTest is Test {
    ModelRegistry internal models;
    bytes32 internal constant ID = keccak256("model.onnx");

    function setUp() public {
        models = new ModelRegistry();
    }

    /*//////////////////////////////////////////////////////////////
                                REGISTER
    //////////////////////////////////////////////////////////////*/

    function test_register() public {
        vm.expectEmit(true, true, true, true, address(models));
        emit ModelRegistry.ModelRegistered(ID, 384, 1, "minilm", address(this));
        models.register(ID, 384, 1, "minilm");
        (uint16 dim, uint8 dtype, address registrant) = models.models(ID);
        assertEq(dim, 384, "dim");
        assertEq(dtype, 1, "dtype");
        assertEq(registrant, address(this), "registrant");
        assertTrue(models.isRegistered(ID), "registered");
    }

    function testFuzz_register(bytes32 id, uint16 dim, uint8 dtype, string calldata name, address who) public {
        vm.assume(id != bytes32(0));
        dim = uint16(bound(dim, 1, type(uint16).max));
        dtype = uint8(bound(dtype, 0, 3));
        vm.expectEmit(true, true, true, true, address(models));
        emit ModelRegistry.ModelRegistered(id, dim, dtype, name, who);
        vm.prank(who);
        models.register(id, dim, dtype, name);
        (uint16 d, uint8 t, address r) = models.models(id);
        assertEq(d, dim, "dim");
        assertEq(t, dtype, "dtype");
        assertEq(r, who, "registrant");
    }

    function test_register_revert_ZeroModelId() public {
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.ZeroModelId.selector));
        models.register(bytes32(0), 384, 0, "x");
    }

    function test_register_revert_ZeroDim() public {
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.ZeroDim.selector));
        models.register(ID, 0, 0, "x");
    }

    function testFuzz_register_revert_InvalidEncoding(uint8 dtype) public {
        dtype = uint8(bound(dtype, 4, type(uint8).max));
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.InvalidEncoding.selector));
        models.register(ID, 384, dtype, "x");
    }

    function testFuzz_register_revert_ModelAlreadyRegistered(uint16 dim, address other) public {
        dim = uint16(bound(dim, 1, type(uint16).max));
        models.register(ID, 384, 0, "first");
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.ModelAlreadyRegistered.selector, ID));
        vm.prank(other);
        models.register(ID, dim, 1, "second");
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function test_models_unknownIsZero() public view {
        (uint16 dim, uint8 dtype, address registrant) = models.models(ID);
        assertEq(dim, 0, "dim");
        assertEq(dtype, 0, "dtype");
        assertEq(registrant, address(0), "registrant");
    }

    function testFuzz_isRegistered(bytes32 id, bytes32 other) public {
        vm.assume(id != bytes32(0) && other != id);
        assertFalse(models.isRegistered(id), "before");
        models.register(id, 8, 3, "bits");
        assertTrue(models.isRegistered(id), "after");
        assertFalse(models.isRegistered(other), "other");
    }
}
// forge-lint: disable-end(unsafe-typecast)
