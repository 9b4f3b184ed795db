// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Chorus} from "./Chorus.sol";

/// @title ModelRegistry
/// @notice The on-chain statement of "which space is this vector in": an embedding space is
/// identified by `modelId = sha256(ONNX file bytes)` and recorded once, immutably, with its
/// dimension and dtype. Vectors from different model ids must never be fused.
/// @dev One slot per model: dim 16 | dtype 8 | registrant 160. The name lives in the event only.
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

    /*//////////////////////////////////////////////////////////////
                                 EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @dev Emitted once per model id.
    event ModelRegistered(bytes32 indexed modelId, uint16 dim, uint8 dtype, string name, address indexed registrant);

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

    /// @notice Whether `modelId` has been registered.
    function isRegistered(bytes32 modelId) external view returns (bool) {
        return models[modelId].dim != 0;
    }
}
