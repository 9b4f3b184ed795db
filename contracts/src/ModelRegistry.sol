// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Chorus} from "./Chorus.sol";

/// @title ModelRegistry
/// @notice The on-chain statement of "which space is this vector in": an embedding space is
/// identified by `modelId = sha256(ONNX file bytes)` and recorded once, immutably, with its
/// dimension and dtype. Vectors from different model ids must never be fused as they are; an
/// alignment registered here names a map (by its sha256) that takes one space into another.
/// @dev One slot per model: dim 16 | dtype 8 | registrant 160. The name lives in the event only.
/// Two slots per alignment: the map id, then inDim 16 | outDim 16 | registrant 160; the method
/// lives in the event only.
/// @author Chorus
contract ModelRegistry {
    /*//////////////////////////////////////////////////////////////
                                 ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @dev The model id is zero (zero means "no model" to the AgentRegistry).
    error ZeroModelId();

    /// @dev The dimension is zero (zero means "unknown model" to readers).
    error ZeroDim();

    /// @dev The dtype is not one of 0 f32, 1 f16, 2 i8, 3 binary.
    error InvalidEncoding();

    /// @dev Models are immutable: the id is already registered.
    error ModelAlreadyRegistered(bytes32 modelId);

    /// @dev An alignment names a model id that is not registered.
    error UnknownModel(bytes32 modelId);

    /// @dev The map id is zero (zero means "no alignment" to readers).
    error ZeroMapId();

    /// @dev An alignment from a model to itself.
    error SameModel(bytes32 modelId);

    /// @dev The map's input or output dimension is not the registered dim of its model.
    error DimMismatch(uint16 expected, uint16 got);

    /// @dev Alignments are immutable: the pair (fromModel, toModel) already has one.
    error AlignmentAlreadyRegistered(bytes32 fromModel, bytes32 toModel);

    /*//////////////////////////////////////////////////////////////
                                 EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @dev Emitted once per model id.
    event ModelRegistered(bytes32 indexed modelId, uint16 dim, uint8 dtype, string name, address indexed registrant);

    /// @dev Emitted once per (fromModel, toModel) pair.
    event AlignmentRegistered(
        bytes32 indexed fromModel,
        bytes32 indexed toModel,
        bytes32 mapId,
        uint16 inDim,
        uint16 outDim,
        string method,
        address indexed registrant
    );

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @dev A registered embedding space. `dim == 0` means unknown.
    struct Model {
        uint16 dim;
        uint8 dtype;
        address registrant;
    }

    /// @notice The model recorded under `modelId`; `dim == 0` means unknown.
    mapping(bytes32 modelId => Model) public models;

    /// @dev A registered map from one space into another. `mapId == 0` means none.
    struct Alignment {
        bytes32 mapId;
        uint16 inDim;
        uint16 outDim;
        address registrant;
    }

    /// @dev The alignment from `fromModel` into `toModel`; read through `alignment`.
    mapping(bytes32 fromModel => mapping(bytes32 toModel => Alignment)) internal _alignments;

    /*//////////////////////////////////////////////////////////////
                                 LOGIC
    //////////////////////////////////////////////////////////////*/

    /// @notice Records the embedding space `modelId`; anyone may register, once per id.
    /// @param modelId sha256 of the ONNX file bytes, non-zero.
    /// @param dim Embedding dimension, non-zero.
    /// @param dtype Native dtype of the model's output: 0 f32, 1 f16, 2 i8, 3 binary.
    /// @param name Human-readable name, kept in the event only.
    function register(bytes32 modelId, uint16 dim, uint8 dtype, string calldata name) external {
        if (modelId == bytes32(0)) revert ZeroModelId();
        if (dim == 0) revert ZeroDim();
        if (dtype > Chorus.MAX_ENCODING) revert InvalidEncoding();
        Model storage m = models[modelId];
        if (m.dim != 0) revert ModelAlreadyRegistered(modelId);
        models[modelId] = Model({dim: dim, dtype: dtype, registrant: msg.sender});
        emit ModelRegistered(modelId, dim, dtype, name, msg.sender);
    }

    /// @notice Records that the map whose sha256 is `mapId` takes embeddings of `fromModel` into
    /// the space of `toModel`; anyone may register, once per (fromModel, toModel) pair. The chain
    /// keeps the map's hash, not the map: readers fetch its bytes off chain and check the hash.
    /// @param fromModel Registered model whose embeddings the map takes in.
    /// @param toModel Registered model, not `fromModel`, whose space the map writes into.
    /// @param mapId sha256 of the map's canonical bytes, non-zero.
    /// @param inDim The map's input dimension: `fromModel`'s registered dim.
    /// @param outDim The map's output dimension: `toModel`'s registered dim.
    /// @param method How the map was fitted (e.g. "procrustes"), kept in the event only.
    function registerAlignment(
        bytes32 fromModel,
        bytes32 toModel,
        bytes32 mapId,
        uint16 inDim,
        uint16 outDim,
        string calldata method
    ) external {
        if (mapId == bytes32(0)) revert ZeroMapId();
        if (fromModel == toModel) revert SameModel(fromModel);
        uint16 fromDim = models[fromModel].dim;
        if (fromDim == 0) revert UnknownModel(fromModel);
        uint16 toDim = models[toModel].dim;
        if (toDim == 0) revert UnknownModel(toModel);
        if (inDim != fromDim) revert DimMismatch(fromDim, inDim);
        if (outDim != toDim) revert DimMismatch(toDim, outDim);
        Alignment storage a = _alignments[fromModel][toModel];
        if (a.mapId != bytes32(0)) revert AlignmentAlreadyRegistered(fromModel, toModel);
        a.mapId = mapId;
        a.inDim = inDim;
        a.outDim = outDim;
        a.registrant = msg.sender;
        emit AlignmentRegistered(fromModel, toModel, mapId, inDim, outDim, method, msg.sender);
    }

    /// @notice Whether `modelId` has been registered.
    function isRegistered(bytes32 modelId) external view returns (bool) {
        return models[modelId].dim != 0;
    }

    /// @notice The alignment from `fromModel` into `toModel`; all zero when none is registered.
    function alignment(bytes32 fromModel, bytes32 toModel)
        external
        view
        returns (bytes32 mapId, uint16 inDim, uint16 outDim, address registrant)
    {
        Alignment storage a = _alignments[fromModel][toModel];
        return (a.mapId, a.inDim, a.outDim, a.registrant);
    }
}
