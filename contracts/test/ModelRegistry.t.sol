// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

import {ModelRegistry} from "../src/ModelRegistry.sol";
import {Test} from "./utils/Test.sol";
import {vm} from "./utils/Vm.sol";

/// @notice ModelRegistry: register, models, isRegistered, registerAlignment, alignment.
contract ModelRegistryTest is Test {
    ModelRegistry internal models;
    bytes32 internal constant ID = keccak256("model.onnx");
    bytes32 internal constant TO = keccak256("other-model.onnx");
    /// @dev keccak, not sha256: a constant sha256 is a precompile call, which `expectRevert` would take.
    bytes32 internal constant MAP = keccak256("map bytes");

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
                               ALIGNMENTS
    //////////////////////////////////////////////////////////////*/

    /// @dev `ID` (384-d f32) and `TO` (256-d f16) registered.
    function _registerPair() internal {
        models.register(ID, 384, 0, "minilm");
        models.register(TO, 256, 1, "other");
    }

    function test_registerAlignment() public {
        _registerPair();
        vm.expectEmit(true, true, true, true, address(models));
        emit ModelRegistry.AlignmentRegistered(ID, TO, MAP, 384, 256, "procrustes", address(this));
        models.registerAlignment(ID, TO, MAP, 384, 256, "procrustes");
        (bytes32 mapId, uint16 inDim, uint16 outDim, address registrant) = models.alignment(ID, TO);
        assertEq(mapId, MAP, "mapId");
        assertEq(inDim, 384, "inDim");
        assertEq(outDim, 256, "outDim");
        assertEq(registrant, address(this), "registrant");
        (mapId,,,) = models.alignment(TO, ID);
        assertEq(mapId, bytes32(0), "the reverse direction is a pair of its own");
    }

    function test_registerAlignment_bothDirections() public {
        _registerPair();
        models.registerAlignment(ID, TO, MAP, 384, 256, "procrustes");
        bytes32 back = keccak256("inverse map bytes");
        models.registerAlignment(TO, ID, back, 256, 384, "procrustes");
        (bytes32 mapId, uint16 inDim, uint16 outDim,) = models.alignment(TO, ID);
        assertEq(mapId, back, "mapId");
        assertEq(inDim, 256, "inDim");
        assertEq(outDim, 384, "outDim");
        (mapId,,,) = models.alignment(ID, TO);
        assertEq(mapId, MAP, "forward kept");
    }

    function testFuzz_registerAlignment(uint16 inDim, uint16 outDim, bytes32 mapId, string calldata method, address who)
        public
    {
        vm.assume(mapId != bytes32(0));
        inDim = uint16(bound(inDim, 1, type(uint16).max));
        outDim = uint16(bound(outDim, 1, type(uint16).max));
        models.register(ID, inDim, 0, "from");
        models.register(TO, outDim, 0, "to");
        vm.expectEmit(true, true, true, true, address(models));
        emit ModelRegistry.AlignmentRegistered(ID, TO, mapId, inDim, outDim, method, who);
        vm.prank(who);
        models.registerAlignment(ID, TO, mapId, inDim, outDim, method);
        (bytes32 m, uint16 i, uint16 o, address r) = models.alignment(ID, TO);
        assertEq(m, mapId, "mapId");
        assertEq(i, inDim, "inDim");
        assertEq(o, outDim, "outDim");
        assertEq(r, who, "registrant");
    }

    function testFuzz_registerAlignment_revert_DimMismatch(uint16 fromDim, uint16 toDim, uint16 inDim, uint16 outDim)
        public
    {
        fromDim = uint16(bound(fromDim, 1, type(uint16).max));
        toDim = uint16(bound(toDim, 1, type(uint16).max));
        models.register(ID, fromDim, 0, "from");
        models.register(TO, toDim, 0, "to");
        if (inDim != fromDim) {
            vm.expectRevert(abi.encodeWithSelector(ModelRegistry.DimMismatch.selector, fromDim, inDim));
            models.registerAlignment(ID, TO, MAP, inDim, toDim, "x");
        }
        if (outDim != toDim) {
            vm.expectRevert(abi.encodeWithSelector(ModelRegistry.DimMismatch.selector, toDim, outDim));
            models.registerAlignment(ID, TO, MAP, fromDim, outDim, "x");
        }
        (bytes32 mapId,,,) = models.alignment(ID, TO);
        assertEq(mapId, bytes32(0), "nothing recorded");
    }

    function test_registerAlignment_revert_DimMismatch_inputFirst() public {
        _registerPair();
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.DimMismatch.selector, uint16(384), uint16(256)));
        models.registerAlignment(ID, TO, MAP, 256, 384, "swapped");
    }

    function test_registerAlignment_revert_ZeroMapId() public {
        _registerPair();
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.ZeroMapId.selector));
        models.registerAlignment(ID, TO, bytes32(0), 384, 256, "x");
    }

    function test_registerAlignment_revert_SameModel() public {
        _registerPair();
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.SameModel.selector, ID));
        models.registerAlignment(ID, ID, MAP, 384, 384, "x");
    }

    function test_registerAlignment_revert_UnknownModel_from() public {
        models.register(TO, 256, 1, "other");
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, ID));
        models.registerAlignment(ID, TO, MAP, 384, 256, "x");
    }

    function test_registerAlignment_revert_UnknownModel_to() public {
        models.register(ID, 384, 0, "minilm");
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, TO));
        models.registerAlignment(ID, TO, MAP, 384, 256, "x");
    }

    function test_registerAlignment_revert_UnknownModel_zeroId() public {
        _registerPair();
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, bytes32(0)));
        models.registerAlignment(bytes32(0), TO, MAP, 384, 256, "x");
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.UnknownModel.selector, bytes32(0)));
        models.registerAlignment(ID, bytes32(0), MAP, 384, 256, "x");
    }

    function testFuzz_registerAlignment_revert_AlignmentAlreadyRegistered(bytes32 mapId, address other) public {
        vm.assume(mapId != bytes32(0));
        _registerPair();
        models.registerAlignment(ID, TO, MAP, 384, 256, "first");
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.AlignmentAlreadyRegistered.selector, ID, TO));
        vm.prank(other);
        models.registerAlignment(ID, TO, mapId, 384, 256, "second");
        vm.expectRevert(abi.encodeWithSelector(ModelRegistry.AlignmentAlreadyRegistered.selector, ID, TO));
        models.registerAlignment(ID, TO, mapId, 384, 256, "first again");
        (bytes32 m,,, address r) = models.alignment(ID, TO);
        assertEq(m, MAP, "first map kept");
        assertEq(r, address(this), "first registrant kept");
    }

    function test_registerAlignment_leavesModelsAlone() public {
        _registerPair();
        models.registerAlignment(ID, TO, MAP, 384, 256, "procrustes");
        (uint16 dim, uint8 dtype, address registrant) = models.models(ID);
        assertEq(dim, 384, "dim");
        assertEq(dtype, 0, "dtype");
        assertEq(registrant, address(this), "registrant");
        (dim, dtype,) = models.models(TO);
        assertEq(dim, 256, "to dim");
        assertEq(dtype, 1, "to dtype");
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

    function testFuzz_alignment_unknownIsZero(bytes32 fromModel, bytes32 toModel) public view {
        (bytes32 mapId, uint16 inDim, uint16 outDim, address registrant) = models.alignment(fromModel, toModel);
        assertEq(mapId, bytes32(0), "mapId");
        assertEq(inDim, 0, "inDim");
        assertEq(outDim, 0, "outDim");
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
