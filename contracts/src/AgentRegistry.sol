// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Chorus} from "./Chorus.sol";
import {ModelRegistry} from "./ModelRegistry.sol";

/// @title AgentRegistry
/// @notice Staked registry of Chorus agents: role, modality, model id and embedding dimension.
/// An agent registers once per address with at least `minStake`, deregisters, waits `cooldown`
/// seconds and withdraws its stake, which deletes the record.
/// @dev The record takes two slots: slot 0 packs
/// `stake 96 | unlockAt 64 | role 8 | modality 8 | dim 16 | active 8 | registered 8`,
/// slot 1 holds `modelId`. `agentRole` (what a decision needs) reads slot 0 only, `agentInfo`
/// (what an embedding needs) reads both. The endpoint is kept in events only.
/// @author Chorus
contract AgentRegistry {
    /*//////////////////////////////////////////////////////////////
                                 ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @dev The address already has a record (active, or deregistered and not yet withdrawn).
    error AlreadyRegistered(address agent);

    /// @dev The role is not one of 0..4.
    error InvalidRole();

    /// @dev The modality is not one of 0..5.
    error InvalidModality();

    /// @dev `msg.value` is below `minStake`.
    error InsufficientStake(uint256 sent, uint256 required);

    /// @dev `msg.value` does not fit the record's uint96 stake field (beyond any real ETH supply).
    error StakeTooLarge(uint256 sent);

    /// @dev The endpoint string is empty.
    error EmptyEndpoint();

    /// @dev `dim` differs from the model's dimension (0 for an agent without a model).
    error DimMismatch(uint16 expected, uint16 got);

    /// @dev The model id is not in the ModelRegistry.
    error UnknownModel(bytes32 modelId);

    /// @dev The address has no record.
    error NotRegistered(address agent);

    /// @dev The agent has deregistered.
    error AgentInactive(address agent);

    /// @dev The agent must deregister before it withdraws.
    error StillActive(address agent);

    /// @dev The cooldown has not elapsed.
    error CooldownActive(uint64 unlockAt);

    /// @dev The stake could not be sent back.
    error TransferFailed();

    /*//////////////////////////////////////////////////////////////
                                 EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @dev Emitted when `agent` registers with `stake` wei.
    event AgentRegistered(
        address indexed agent, uint8 role, uint8 modality, string endpoint, bytes32 modelId, uint16 dim, uint256 stake
    );

    /// @dev Emitted when an active agent changes its HTTP endpoint.
    event EndpointUpdated(address indexed agent, string endpoint);

    /// @dev Emitted when `agent` deregisters; its stake unlocks at `unlockAt`.
    event AgentDeregistered(address indexed agent, uint64 unlockAt);

    /// @dev Emitted when `agent` takes its stake back and its record is deleted.
    event StakeWithdrawn(address indexed agent, uint256 amount);

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @dev An agent record; the first seven fields share slot 0.
    struct Agent {
        uint96 stake;
        uint64 unlockAt;
        uint8 role;
        uint8 modality;
        uint16 dim;
        bool active;
        bool registered;
        bytes32 modelId;
    }

    /// @notice The registry of embedding spaces that agents' model ids are checked against.
    ModelRegistry public immutable modelRegistry;

    /// @notice The least stake, in wei, an agent must lock to register.
    uint256 public immutable minStake;

    /// @notice Seconds between `deregister` and `withdraw`.
    uint64 public immutable cooldown;

    /// @notice Sum of the stakes of all records not yet withdrawn (the ETH this contract owes).
    uint256 public totalStaked;

    /// @dev Agent records by address.
    mapping(address agent => Agent) internal _agents;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @param models The ModelRegistry that model ids are checked against.
    /// @param minStake_ The least stake in wei.
    /// @param cooldown_ Seconds between deregistration and withdrawal.
    constructor(ModelRegistry models, uint256 minStake_, uint64 cooldown_) {
        modelRegistry = models;
        minStake = minStake_;
        cooldown = cooldown_;
    }

    /*//////////////////////////////////////////////////////////////
                                 LOGIC
    //////////////////////////////////////////////////////////////*/

    /// @notice Registers the sender as an agent, locking `msg.value` as its stake.
    /// @param role 0 market, 1 sentiment, 2 risk, 3 fusion, 4 coordinator.
    /// @param modality 0 none, 1 series, 2 text, 3 flows, 4 image, 5 multimodal.
    /// @param endpoint The agent node's HTTP endpoint, non-empty, kept in the event only.
    /// @param modelId The embedding space the agent publishes in; zero for a decisions-only agent.
    /// @param dim The model's dimension; zero exactly when `modelId` is zero.
    function register(uint8 role, uint8 modality, string calldata endpoint, bytes32 modelId, uint16 dim)
        external
        payable
    {
        Agent storage a = _agents[msg.sender];
        if (a.registered) revert AlreadyRegistered(msg.sender);
        if (role > Chorus.MAX_ROLE) revert InvalidRole();
        if (modality > Chorus.MAX_MODALITY) revert InvalidModality();
        if (msg.value < minStake) revert InsufficientStake(msg.value, minStake);
        if (msg.value > type(uint96).max) revert StakeTooLarge(msg.value);
        if (bytes(endpoint).length == 0) revert EmptyEndpoint();
        if (modelId == bytes32(0)) {
            if (dim != 0) revert DimMismatch(0, dim);
        } else {
            // Only the dimension is checked; the model's dtype and registrant do not matter here.
            // slither-disable-next-line unused-return
            (uint16 modelDim,,) = modelRegistry.models(modelId);
            if (modelDim == 0) revert UnknownModel(modelId);
            if (dim != modelDim) revert DimMismatch(modelDim, dim);
            a.modelId = modelId;
        }
        a.stake = uint96(msg.value);
        a.role = role;
        a.modality = modality;
        a.dim = dim;
        a.active = true;
        a.registered = true;
        totalStaked += msg.value;
        emit AgentRegistered(msg.sender, role, modality, endpoint, modelId, dim, msg.value);
    }

    /// @notice Replaces the sender's HTTP endpoint.
    /// @param endpoint The new endpoint, non-empty.
    function updateEndpoint(string calldata endpoint) external {
        _requireActive(_agents[msg.sender]);
        if (bytes(endpoint).length == 0) revert EmptyEndpoint();
        emit EndpointUpdated(msg.sender, endpoint);
    }

    /// @notice Deactivates the sender; its stake unlocks `cooldown` seconds from now.
    function deregister() external {
        Agent storage a = _agents[msg.sender];
        _requireActive(a);
        uint256 unlock = block.timestamp + cooldown;
        // Saturate instead of reverting: a cooldown reaching past 2**64 - 1 never unlocks anyway.
        // (slither reads this clamp as a timestamp comparison; nothing is decided on time here.)
        // slither-disable-start timestamp
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 unlockAt = unlock > type(uint64).max ? type(uint64).max : uint64(unlock);
        // slither-disable-end timestamp
        a.active = false;
        a.unlockAt = unlockAt;
        emit AgentDeregistered(msg.sender, unlockAt);
    }

    /// @notice Pays the sender's stake back after its cooldown and deletes its record, so the
    /// address may register again.
    function withdraw() external {
        Agent storage a = _agents[msg.sender];
        if (!a.registered) revert NotRegistered(msg.sender);
        if (a.active) revert StillActive(msg.sender);
        uint64 unlockAt = a.unlockAt;
        // A validator's few seconds of drift do not matter against a cooldown.
        // slither-disable-start timestamp
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp < unlockAt) revert CooldownActive(unlockAt);
        // slither-disable-end timestamp
        uint256 amount = a.stake;
        delete _agents[msg.sender];
        // The record held `amount` of `totalStaked`, so this cannot underflow.
        unchecked {
            totalStaked -= amount;
        }
        emit StakeWithdrawn(msg.sender, amount);
        // A plain `call` forwards all gas, so contract wallets can withdraw; the result is checked
        // and the record is deleted before it.
        // slither-disable-next-line low-level-calls
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @notice What the TaskBoard checks for an embedding (two slots).
    /// @return active Registered and not deregistered.
    /// @return role The agent's role.
    /// @return dim The agent's embedding dimension (0 without a model).
    /// @return modelId The agent's model id (0 without a model).
    function agentInfo(address agent) external view returns (bool active, uint8 role, uint16 dim, bytes32 modelId) {
        Agent storage a = _agents[agent];
        return (a.active, a.role, a.dim, a.modelId);
    }

    /// @notice What the TaskBoard checks for a decision (slot 0 only): the agentInfo fields
    /// without the model id, one cold storage read fewer on the hot path.
    /// @return active Registered and not deregistered.
    /// @return role The agent's role.
    function agentRole(address agent) external view returns (bool active, uint8 role) {
        Agent storage a = _agents[agent];
        return (a.active, a.role);
    }

    /// @notice The full record of `agent` (all zero for an unknown address).
    function agents(address agent)
        external
        view
        returns (
            uint96 stake,
            uint64 unlockAt,
            uint8 role,
            uint8 modality,
            uint16 dim,
            bool active,
            bytes32 modelId
        )
    {
        Agent storage a = _agents[agent];
        return (a.stake, a.unlockAt, a.role, a.modality, a.dim, a.active, a.modelId);
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev Reverts unless `a` (the sender's record) is registered and active.
    function _requireActive(Agent storage a) internal view {
        if (!a.registered) revert NotRegistered(msg.sender);
        if (!a.active) revert AgentInactive(msg.sender);
    }
}
