// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AgentRegistry} from "./AgentRegistry.sol";
import {Chorus} from "./Chorus.sol";

// Field extraction from the packed slots narrows on purpose, and deadlines are timestamps by
// design (a validator's few seconds of drift do not matter at task granularity):
// forge-lint: disable-start(unsafe-typecast, block-timestamp)
// For the same reason each deadline comparison carries `slither-disable-next-line timestamp`.

/// @title TaskBoard
/// @notice Chorus tasks: a submitter escrows a reward for a payload (inline or by URI), registered
/// agents publish embeddings and decisions before the deadline, and `finalize` fuses the decisions
/// on chain with per-architecture, per-role weights (the modular baseline) and splits the reward
/// equally among contributors, who pull their shares with `claimReward`.
/// @dev Vectors and payloads travel in calldata and events; storage holds hashes, tallies and
/// escrow. Publications are the hot path, so everything a publication reads or writes about a
/// task lives in one slot (`Task.state`):
///
///     bits   0..63   deadline       bits  96..111  contributors
///     bits  64..71   arch           bits 112..159  sell tally
///     bits  72..79   status         bits 160..207  hold tally
///     bits  80..95   decisions      bits 208..255  buy tally
///
/// The slot is non-zero from submission on, so every publication rewrites it at the
/// non-zero-to-non-zero price. Tallies fit 48 bits: each decision adds at most
/// `(2**16 - 1) * 10_000 < 2**30`, and a task takes at most `2**16 - 1` decisions (the
/// contributor count is capped there), so a tally stays below `2**46`. The cold fields sit in
/// `Task.meta` (`submitter 160 | quorum 16 | funded 1`, bit 184), `Task.funds` (`reward 128 |
/// share 128`) and `Task.payloadHash`. The fused action is not stored: it is a function of the
/// tallies (`_fusedAction`), which finalization freezes. Per (task, agent) flags (embedding, decision, claimed) take one slot
/// (`_flagSlot`); the weights of one architecture (five roles x 16 bits) take one slot. A
/// publication makes one call to the AgentRegistry and touches three cold slots of this
/// contract: the task's hot slot, its own flags and, for a decision, the weights of the
/// task's architecture (read when the decision is published, as docs/protocol.md says).
/// @author Chorus
contract TaskBoard {
    /*//////////////////////////////////////////////////////////////
                                 ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @dev The caller is not the owner (admin) or not the submitter (reclaim).
    error Unauthorized();

    /// @dev The owner would be the zero address (constructor, `transferOwnership`).
    error ZeroAddress();

    /// @dev Class probabilities that sum to neither 10_000 nor 0 (basis points).
    error InvalidProbabilities(uint256 sum);

    /// @dev The architecture id is above 15.
    error InvalidArchitecture();

    /// @dev The role is above 4.
    error InvalidRole();

    /// @dev The inline payload or the URI is empty.
    error EmptyPayload();

    /// @dev The deadline is not in the future.
    error DeadlineInPast(uint64 deadline, uint256 timestamp);

    /// @dev The quorum is zero.
    error ZeroQuorum();

    /// @dev `msg.value` does not fit the uint128 reward field (beyond any real ETH supply).
    error RewardTooLarge(uint256 sent);

    /// @dev The sender is not a registered, active agent.
    error UnknownAgent(address agent);

    /// @dev No task has this id.
    error UnknownTask(uint256 taskId);

    /// @dev The task is no longer open (finalized, or reclaimed by its submitter).
    error AlreadyFinalized(uint256 taskId);

    /// @dev The task's deadline has passed.
    error PastDeadline(uint256 taskId, uint64 deadline);

    /// @dev The embedding's model id is not the agent's (`expected == 0`: the agent has no model).
    error ModelMismatch(bytes32 expected, bytes32 got);

    /// @dev The encoding is not one of 0 f32, 1 f16, 2 i8, 3 binary.
    error InvalidEncoding();

    /// @dev The vector's byte length does not match the agent's dim under the encoding.
    error WrongLength(uint256 expected, uint256 got);

    /// @dev The agent already published an embedding to this task.
    error DuplicateEmbedding(uint256 taskId, address agent);

    /// @dev The action is not one of 0 sell, 1 hold, 2 buy.
    error InvalidAction();

    /// @dev The confidence is above 10_000 basis points.
    error InvalidConfidence();

    /// @dev The agent already published a decision to this task.
    error DuplicateDecision(uint256 taskId, address agent);

    /// @dev The task already has `2**16 - 1` contributors.
    error TooManyContributors(uint256 taskId);

    /// @dev Before the deadline, finalizing needs `decisions >= quorum`.
    error QuorumNotReached(uint256 taskId, uint16 decisions, uint16 quorum);

    /// @dev After the deadline, finalizing needs at least one decision.
    error NothingToFinalize(uint256 taskId);

    /// @dev Rewards are claimable once the task is finalized.
    error NotFinalized(uint256 taskId);

    /// @dev The agent published nothing to this task.
    error NotContributor(uint256 taskId, address agent);

    /// @dev The agent already claimed its share.
    error AlreadyClaimed(uint256 taskId, address agent);

    /// @dev Reclaiming waits for the deadline to pass.
    error DeadlineNotPassed(uint256 taskId, uint64 deadline);

    /// @dev A task with decisions is finalized, not reclaimed.
    error HasDecisions(uint256 taskId, uint16 decisions);

    /// @dev An ETH transfer failed.
    error TransferFailed();

    /// @dev A batch or a report with no item.
    error EmptyBatch();

    /// @dev Signature `index` of a report is malformed: `v` not 27 or 28, `s` in the upper half of
    /// the curve order (the malleable twin of a valid signature), or no signer recovers from it.
    error BadSignature(uint256 index);

    /// @dev Signature `index` of a report recovers to `recovered`, not to the decision's `agent`
    /// (also when what was signed is not this decision: another task, action, confidence, or a
    /// model id other than the agent's registered one).
    error SignerMismatch(uint256 index, address agent, address recovered);

    /// @dev Signed decision `index` of a report sets bits its head does not use (32..95).
    error MalformedDecision(uint256 index);

    /// @dev The report carries two decisions signed by `agent`.
    error DuplicateSigner(address agent);

    /// @dev Signer `index` of a report is below the one before it (signers go in ascending order).
    error UnsortedSigners(uint256 index);

    /*//////////////////////////////////////////////////////////////
                                 EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @dev Emitted on construction and on every ownership transfer.
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    /// @dev Emitted when the fusion weight of `role` under `arch` is set (constructor defaults included).
    event WeightSet(uint8 indexed arch, uint8 indexed role, uint16 weight);

    /// @dev Emitted on submission; `uri` is empty for inline tasks, `payload` is empty for URI tasks.
    event TaskSubmitted(
        uint256 indexed taskId,
        address indexed submitter,
        uint8 arch,
        uint64 deadline,
        uint16 quorum,
        uint256 reward,
        bytes32 payloadHash,
        string uri,
        bytes payload
    );

    /// @dev Emitted for every embedding; the vector is in the event data only.
    event EmbeddingPublished(
        uint256 indexed taskId, address indexed agent, bytes32 modelId, uint8 encoding, bytes vector
    );

    /// @dev Emitted for every decision.
    event DecisionPublished(
        uint256 indexed taskId, address indexed agent, uint8 role, uint8 action, uint16 confidence
    );

    /// @dev Emitted after the DecisionPublished of a `publishProbabilities` call.
    event ProbabilitiesPublished(uint256 indexed taskId, address indexed agent, uint16 sell, uint16 hold, uint16 buy);

    /// @dev Emitted for every decision of a `submitReport` call, in place of its DecisionPublished
    /// and with the same fields, packed into one word of data and no indexed topic (a quarter of
    /// the log gas): `decision = taskId << 192 | agent << 32 | role << 24 | action << 16 |
    /// confidence`. Task ids are sequential from 1, so they fit 64 bits.
    event DecisionReported(uint256 decision);

    /// @dev Emitted after the DecisionReported logs of a `submitReport` call.
    event ReportSubmitted(uint256 indexed taskId, address indexed aggregator, uint256 count);

    /// @dev Emitted once per finalized task.
    event TaskFinalized(
        uint256 indexed taskId,
        uint8 action,
        uint64 sellTally,
        uint64 holdTally,
        uint64 buyTally,
        uint16 decisions,
        uint16 contributors
    );

    /// @dev Emitted when a contributor pulls its share.
    event RewardClaimed(uint256 indexed taskId, address indexed agent, uint256 amount);

    /// @dev Emitted when the submitter takes back the reward of a task nobody decided.
    event TaskReclaimed(uint256 indexed taskId, uint256 amount);

    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @dev Task status values.
    uint256 internal constant _STATUS_NONE = 0;
    uint256 internal constant _STATUS_OPEN = 1;
    uint256 internal constant _STATUS_FINALIZED = 2;
    uint256 internal constant _STATUS_RECLAIMED = 3;

    /// @dev `Task.state` layout (see the contract notes).
    uint256 internal constant _ARCH_SHIFT = 64;
    uint256 internal constant _STATUS_SHIFT = 72;
    uint256 internal constant _DECISIONS_SHIFT = 80;
    uint256 internal constant _CONTRIBUTORS_SHIFT = 96;
    uint256 internal constant _TALLY_SHIFT = 112;
    uint256 internal constant _TALLY_BITS = 48;
    uint256 internal constant _STATUS_MASK = uint256(0xff) << _STATUS_SHIFT;
    uint256 internal constant _ONE_DECISION = uint256(1) << _DECISIONS_SHIFT;
    uint256 internal constant _ONE_CONTRIBUTOR = uint256(1) << _CONTRIBUTORS_SHIFT;
    uint256 internal constant _MAX_COUNT = 0xffff;

    /// @dev Fields of `Task.state` in place, as the number literals that inline assembly takes
    /// (not constant expressions, and it does not fold `shl` of constants itself), in groups
    /// of 16 bits: what `_publishItems` masks, compares and adds per item. TaskBoardBatch.t.sol
    /// checks each against the expression in its comment.
    uint256 internal constant _ARCH_FIELD = 0xff_0000_0000_0000_0000; // 0xff << _ARCH_SHIFT
    uint256 internal constant _MAX_ARCH_FIELD = 0x0f_0000_0000_0000_0000; // Chorus.MAX_ARCH << _ARCH_SHIFT
    uint256 internal constant _STATUS_FIELD = 0xff00_0000_0000_0000_0000; // _STATUS_MASK
    uint256 internal constant _OPEN_FIELD = 0x0100_0000_0000_0000_0000; // _STATUS_OPEN << _STATUS_SHIFT
    uint256 internal constant _ONE_DECISION_FIELD = 0x0001_0000_0000_0000_0000_0000; // _ONE_DECISION
    uint256 internal constant _CONTRIBUTORS_FIELD = 0xffff_0000_0000_0000_0000_0000_0000; // _MAX_COUNT << _CONTRIBUTORS_SHIFT

    /// @dev `Task.meta` layout.
    uint256 internal constant _QUORUM_SHIFT = 160;
    /// @dev Set in `Task.meta` when the task escrows a reward: an unfunded task's finalization
    /// leaves its `funds` slot and `escrowed` alone, and a report that closes it writes no flags.
    uint256 internal constant _FUNDED = uint256(1) << 184;

    /// @dev `Task.funds` layout: reward in the low half, per-contributor share in the high half.
    uint256 internal constant _SHARE_SHIFT = 128;

    /// @dev Per (task, agent) flag bits, stored at `_flagSlot(taskId, agent)`.
    uint256 internal constant _FLAGS_SEED = 0xF1A65;
    uint256 internal constant _EMBEDDING = 1;
    uint256 internal constant _DECISION = 2;
    uint256 internal constant _CLAIMED = 4;

    /// @dev The topic of `DecisionPublished`, which `_publishItems` logs itself (its selector,
    /// spelled out: Slither cannot read an event's `.selector`; TaskBoardBatch.t.sol checks it).
    bytes32 internal constant _DECISION_PUBLISHED_TOPIC = keccak256("DecisionPublished(uint256,address,uint8,uint8,uint16)");

    /// @dev The topic of `DecisionReported`, which `_reportItems` logs itself (TaskBoardReport.t.sol
    /// checks it against the event's selector).
    bytes32 internal constant _DECISION_REPORTED_TOPIC = keccak256("DecisionReported(uint256)");

    /// @dev `publishDecisions` item layout: `taskId << 24 | action << 16 | confidence`.
    uint256 internal constant _ITEM_TASK_SHIFT = 24;
    uint256 internal constant _ITEM_ACTION_SHIFT = 16;

    /// @dev EIP-712: the domain (`name`, `version`, `chainId`, `verifyingContract`) and the
    /// signed struct of `submitReport`.
    bytes32 internal constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant _NAME_HASH = keccak256("Chorus TaskBoard");
    bytes32 internal constant _VERSION_HASH = keccak256("1");
    bytes32 internal constant _DECISION_TYPEHASH =
        keccak256("Decision(uint256 taskId,uint8 action,uint16 confidence,bytes32 modelId,address agent)");

    /// @dev Half the secp256k1 group order: a valid `s` is at most this (EIP-2), so each
    /// signature has one accepted form.
    uint256 internal constant _HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @dev A task: one hot slot, three cold ones.
    struct Task {
        uint256 state;
        uint256 meta;
        uint256 funds;
        bytes32 payloadHash;
    }

    /// @dev A decision signed off chain as the EIP-712 struct
    /// `Decision(uint256 taskId,uint8 action,uint16 confidence,bytes32 modelId,address agent)`,
    /// packed for calldata: `head = agent << 96 | v << 24 | action << 16 | confidence` (bits
    /// 32..95 zero), then the signature's `r` and `s`. The task id is the report's and the model
    /// id the agent's registered one, read from the AgentRegistry: neither travels.
    struct SignedDecision {
        uint256 head;
        bytes32 r;
        bytes32 s;
    }

    /// @notice The registry that publications are checked against (one call per publication).
    AgentRegistry public immutable registry;

    /// @dev The EIP-712 domain separator at deployment, and the chain it was computed for (a
    /// fork's other chain id gets it recomputed).
    bytes32 internal immutable _cachedDomainSeparator;
    uint256 internal immutable _cachedChainId;

    /// @notice The admin that sets fusion weights.
    address public owner;

    /// @notice Number of tasks submitted; ids run from 1 to `taskCount`.
    uint256 public taskCount;

    /// @notice Wei owed: rewards of open tasks plus unclaimed shares of finalized tasks.
    uint256 public escrowed;

    /// @dev Fusion weights: architecture => five 16-bit weights, role `r` at bits `16r`.
    uint256[16] internal _weights;

    /// @dev Tasks by id.
    mapping(uint256 taskId => Task) internal _tasks;

    // Per (task, agent) flags (embedding, decision, claimed) live at `_flagSlot(taskId, agent)`.

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @dev Sets the default weights: the modular baseline `0.5 market + 0.3 sentiment + 0.2 risk`
    /// for architectures 0..2 and 9..15; the fusion agent alone for 3 (M-learned), 4 (M-regret),
    /// 5 (E-d) and 8 (M-learned-p); the coordinator alone for 6 (U) and 7 (U-rep).
    /// @param registry_ The AgentRegistry.
    /// @param owner_ The admin, non-zero (`ZeroAddress`).
    constructor(AgentRegistry registry_, address owner_) {
        if (owner_ == address(0)) revert ZeroAddress();
        registry = registry_;
        owner = owner_;
        _cachedChainId = block.chainid;
        _cachedDomainSeparator = _buildDomainSeparator();
        emit OwnershipTransferred(address(0), owner_);
        for (uint8 arch; arch <= Chorus.MAX_ARCH; ++arch) {
            if (
                arch == Chorus.ARCH_M_LEARNED || arch == Chorus.ARCH_M_REGRET || arch == Chorus.ARCH_E_D
                    || arch == Chorus.ARCH_M_LEARNED_P
            ) {
                _setWeight(arch, Chorus.ROLE_FUSION, 10_000);
            } else if (arch == Chorus.ARCH_U || arch == Chorus.ARCH_U_REP) {
                _setWeight(arch, Chorus.ROLE_COORDINATOR, 10_000);
            } else {
                _setWeight(arch, Chorus.ROLE_MARKET, 5000);
                _setWeight(arch, Chorus.ROLE_SENTIMENT, 3000);
                _setWeight(arch, Chorus.ROLE_RISK, 2000);
            }
        }
    }

    /*//////////////////////////////////////////////////////////////
                                 ADMIN
    //////////////////////////////////////////////////////////////*/

    /// @notice Hands the admin role to `newOwner`, never to the zero address (`ZeroAddress`): a
    /// mistyped or empty argument must not leave the weights without an admin.
    function transferOwnership(address newOwner) external {
        if (msg.sender != owner) revert Unauthorized();
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(msg.sender, newOwner);
        owner = newOwner;
    }

    /// @notice Sets the fusion weight of `role` under architecture `arch`.
    /// @dev Applies to decisions published from now on, open tasks included.
    function setWeight(uint8 arch, uint8 role, uint16 weight) external {
        if (msg.sender != owner) revert Unauthorized();
        if (arch > Chorus.MAX_ARCH) revert InvalidArchitecture();
        if (role > Chorus.MAX_ROLE) revert InvalidRole();
        _setWeight(arch, role, weight);
    }

    /// @notice The fusion weight of `role` under architecture `arch`.
    function weights(uint8 arch, uint8 role) external view returns (uint16) {
        if (arch > Chorus.MAX_ARCH) revert InvalidArchitecture();
        if (role > Chorus.MAX_ROLE) revert InvalidRole();
        return uint16(_weights[arch] >> (uint256(role) << 4));
    }

    /*//////////////////////////////////////////////////////////////
                               SUBMISSION
    //////////////////////////////////////////////////////////////*/

    /// @notice Submits a task whose payload travels inline; `msg.value` is the escrowed reward.
    /// @param payload The task payload, non-empty; its sha256 is computed on chain.
    /// @param arch Architecture id, 0..15.
    /// @param deadline Last timestamp at which publications are accepted; in the future.
    /// @param quorum Decisions that allow finalizing before the deadline; at least 1.
    /// @return taskId The new task's id.
    function submitTask(bytes calldata payload, uint8 arch, uint64 deadline, uint16 quorum)
        external
        payable
        returns (uint256 taskId)
    {
        if (payload.length == 0) revert EmptyPayload();
        bytes32 payloadHash = sha256(payload);
        taskId = _open(payloadHash, arch, deadline, quorum);
        emit TaskSubmitted(taskId, msg.sender, arch, deadline, quorum, msg.value, payloadHash, "", payload);
    }

    /// @notice Submits a task whose payload lives at `uri`; nodes fetch it and check its sha256.
    /// @param payloadHash sha256 of the payload bytes.
    /// @param uri Where the payload lives, non-empty.
    /// @param arch Architecture id, 0..15.
    /// @param deadline Last timestamp at which publications are accepted; in the future.
    /// @param quorum Decisions that allow finalizing before the deadline; at least 1.
    /// @return taskId The new task's id.
    function submitTaskURI(bytes32 payloadHash, string calldata uri, uint8 arch, uint64 deadline, uint16 quorum)
        external
        payable
        returns (uint256 taskId)
    {
        if (bytes(uri).length == 0) revert EmptyPayload();
        taskId = _open(payloadHash, arch, deadline, quorum);
        emit TaskSubmitted(taskId, msg.sender, arch, deadline, quorum, msg.value, payloadHash, uri, "");
    }

    /*//////////////////////////////////////////////////////////////
                              PUBLICATION
    //////////////////////////////////////////////////////////////*/

    /// @notice Publishes the sender's embedding of task `taskId`'s payload.
    /// @param taskId An open task whose deadline has not passed.
    /// @param modelId The sender's registered model id.
    /// @param encoding 0 f32, 1 f16, 2 i8, 3 binary.
    /// @param vector The encoded vector; its length follows from the sender's dim and `encoding`.
    function publishEmbedding(uint256 taskId, bytes32 modelId, uint8 encoding, bytes calldata vector) external {
        (bool active,, uint16 dim, bytes32 agentModel) = _agentInfo(msg.sender);
        if (!active) revert UnknownAgent(msg.sender);
        Task storage t = _tasks[taskId];
        uint256 s = t.state;
        _requirePublishable(taskId, s);
        if (agentModel == bytes32(0) || agentModel != modelId) revert ModelMismatch(agentModel, modelId);
        if (encoding > Chorus.MAX_ENCODING) revert InvalidEncoding();
        uint256 expected = Chorus.vectorBytes(dim, encoding);
        if (vector.length != expected) revert WrongLength(expected, vector.length);
        uint256 slot = _flagSlot(taskId, msg.sender);
        uint256 f = _load(slot);
        if (f & _EMBEDDING != 0) revert DuplicateEmbedding(taskId, msg.sender);
        _store(slot, f | _EMBEDDING);
        // A first publication makes the sender a contributor; otherwise the hot slot is untouched.
        if (f == 0) t.state = _addContributor(taskId, s);
        emit EmbeddingPublished(taskId, msg.sender, modelId, encoding, vector);
    }

    /// @notice Publishes the sender's decision on task `taskId`, adding
    /// `weights(arch, role) * confidence` to the tally of `action`.
    /// @param taskId An open task whose deadline has not passed.
    /// @param action 0 sell, 1 hold, 2 buy.
    /// @param confidence Basis points, 0..10_000.
    function publishDecision(uint256 taskId, uint8 action, uint16 confidence) external {
        if (action > Chorus.MAX_ACTION) revert InvalidAction();
        if (confidence > Chorus.MAX_CONFIDENCE) revert InvalidConfidence();
        _decide(taskId, action, confidence);
    }

    /// @notice Publishes the sender's class probabilities on task `taskId` (what a learned late
    /// fusion reads): its decision is their argmax, the first of equal maxima, with that
    /// probability as its confidence, tallied as `publishDecision` would; all zeros abstain
    /// (hold, confidence 0).
    /// @param taskId An open task whose deadline has not passed.
    /// @param probs Sell, hold and buy probabilities in basis points, summing to 10_000 (or all 0).
    function publishProbabilities(uint256 taskId, uint16[3] calldata probs) external {
        (uint16 sell, uint16 hold, uint16 buy) = (probs[0], probs[1], probs[2]);
        uint256 sum = uint256(sell) + hold + buy;
        uint8 action = Chorus.HOLD;
        uint16 confidence = 0;
        if (sum != 0) {
            if (sum != Chorus.MAX_CONFIDENCE) revert InvalidProbabilities(sum);
            (action, confidence) = (0, sell);
            if (hold > confidence) (action, confidence) = (1, hold);
            if (buy > confidence) (action, confidence) = (2, buy);
        }
        _decide(taskId, action, confidence);
        emit ProbabilitiesPublished(taskId, msg.sender, sell, hold, buy);
    }

    /// @notice Publishes the sender's decisions on several tasks in one transaction, each checked
    /// and tallied exactly as `publishDecision` would (same errors); any bad item reverts the
    /// whole batch. One registry call for the batch.
    /// @param items One word per decision: `taskId << 24 | action << 16 | confidence`.
    function publishDecisions(uint256[] calldata items) external {
        uint256 n = items.length;
        if (n == 0) revert EmptyBatch();
        (bool active, uint256 role) = _agentRole(msg.sender);
        if (!active) revert UnknownAgent(msg.sender);
        uint256 p;
        uint256 end;
        // The ABI decoder has checked that the whole array, `32 * n` bytes from `items.offset`,
        // lies inside calldata, so every word from `p` up to `end` is one item.
        // slither-disable-next-line assembly
        assembly ("memory-safe") {
            p := items.offset
            end := add(p, shl(5, n))
        }
        _publishItems(p, end, role);
    }

    /// @notice Publishes the sender's embeddings of several tasks' payloads in one transaction,
    /// each checked as `publishEmbedding` would (same errors); any bad item reverts the whole
    /// batch. One registry call for the batch; model, encoding and length are checked once.
    /// @param taskIds Open tasks whose deadlines have not passed, one per vector.
    /// @param modelId The sender's registered model id.
    /// @param encoding 0 f32, 1 f16, 2 i8, 3 binary, for every vector.
    /// @param vectors The encoded vectors end to end, `taskIds.length` of the sender's length
    /// under `encoding` (`WrongLength(taskIds.length * length, vectors.length)`).
    function publishEmbeddings(uint256[] calldata taskIds, bytes32 modelId, uint8 encoding, bytes calldata vectors)
        external
    {
        uint256 n = taskIds.length;
        if (n == 0) revert EmptyBatch();
        (bool active,, uint16 dim, bytes32 agentModel) = _agentInfo(msg.sender);
        if (!active) revert UnknownAgent(msg.sender);
        if (agentModel == bytes32(0) || agentModel != modelId) revert ModelMismatch(agentModel, modelId);
        if (encoding > Chorus.MAX_ENCODING) revert InvalidEncoding();
        uint256 len = Chorus.vectorBytes(dim, encoding);
        if (vectors.length != len * n) revert WrongLength(len * n, vectors.length);
        for (uint256 i; i < n; ++i) {
            // i < n and len * n == vectors.length, so the slice bounds cannot overflow.
            uint256 start;
            unchecked {
                start = i * len;
            }
            _embedOne(taskIds[i], modelId, encoding, vectors[start:start + len]);
        }
    }

    /// @notice Publishes decisions that agents signed off chain (EIP-712, see `decisionDigest`)
    /// on task `taskId`, in one transaction from an aggregator, itself a registered active agent
    /// (`UnknownAgent`, checked after the decisions: an aggregator that signed one of them was
    /// found active with it). Each decision is checked and tallied as its signer's
    /// `publishDecision` would be (one decision per agent per task: `DuplicateDecision` if it
    /// already published), after its signature (`MalformedDecision`, `BadSignature`;
    /// `SignerMismatch` when it does not recover to the agent under its registered model id).
    /// Signers come in strictly ascending address order (`DuplicateSigner` for a repeated one,
    /// `UnsortedSigners` otherwise). If the decisions reach
    /// the quorum, the task is finalized in the same transaction, as `finalize` would (the
    /// division remainder goes to the aggregator).
    ///
    /// A report that closes a task nothing was published on yet and that escrows no reward
    /// writes no per-agent flags: the flags exist to refuse a second publication of an open task
    /// and to pay shares, and the task is closed in this transaction with no share to pay. Its
    /// decisions are in its `DecisionReported` logs; `published` shows no decision flag for them.
    /// @param taskId An open task whose deadline has not passed.
    /// @param decisions The signed decisions, at least one, signers in ascending order.
    function submitReport(uint256 taskId, SignedDecision[] calldata decisions) external {
        uint256 n = decisions.length;
        if (n == 0) revert EmptyBatch();
        Task storage t = _tasks[taskId];
        uint256 s = t.state;
        _requirePublishable(taskId, s);
        bool bare = _bareReport(t, s, n);
        uint256 archWeights = _weights[uint8(s >> _ARCH_SHIFT)];
        uint256 taken;
        address previous;
        bool signed;
        // The assembly loop takes every decision it can; the first it turns down, and all after
        // it, go through `_tallySigned`, which reverts with that decision's named error.
        (s, taken, previous, signed) = _reportItems(_reportScratch(taskId, archWeights), s, decisions, bare);
        if (taken < n) s = _tallyRest(taskId, s, archWeights, decisions, taken, previous, bare);
        if (!signed) {
            // An aggregator that signed a decision of the report was found active with it.
            (bool aggregator,) = _agentRole(msg.sender);
            if (!aggregator) revert UnknownAgent(msg.sender);
        }
        if (bare) {
            if (n > _MAX_COUNT) revert TooManyContributors(taskId);
            // contributors was 0 and n fits its field.
            unchecked {
                s += n * _ONE_CONTRIBUTOR;
            }
        }
        t.state = s;
        emit ReportSubmitted(taskId, msg.sender, n);
        if (uint16(s >> _DECISIONS_SHIFT) >= uint16(t.meta >> _QUORUM_SHIFT)) _finalize(taskId);
    }

    /*//////////////////////////////////////////////////////////////
                               SETTLEMENT
    //////////////////////////////////////////////////////////////*/

    /// @notice Fuses the decisions of task `taskId` and splits its reward among contributors.
    /// Anyone may call it once `decisions >= quorum`, or after the deadline with one decision
    /// or more. The fused action is the strict argmax of the tallies, hold (1) on a tie; the
    /// shares are pulled with `claimReward`. The division remainder (under one wei per
    /// contributor) goes to the caller, not the submitter: no third party can block finalize by
    /// refusing ETH, since a caller that refuses it only reverts its own call (`TransferFailed`).
    function finalize(uint256 taskId) external {
        _finalize(taskId);
    }

    /// @notice Pays the sender its equal share of finalized task `taskId`'s reward.
    function claimReward(uint256 taskId) external {
        Task storage t = _tasks[taskId];
        if ((t.state >> _STATUS_SHIFT) & 0xff != _STATUS_FINALIZED) revert NotFinalized(taskId);
        uint256 slot = _flagSlot(taskId, msg.sender);
        uint256 f = _load(slot);
        if (f & (_EMBEDDING | _DECISION) == 0) revert NotContributor(taskId, msg.sender);
        if (f & _CLAIMED != 0) revert AlreadyClaimed(taskId, msg.sender);
        _store(slot, f | _CLAIMED);
        uint256 share = t.funds >> _SHARE_SHIFT;
        // Each share was counted in `escrowed` at submission and is paid at most once.
        unchecked {
            escrowed -= share;
        }
        emit RewardClaimed(taskId, msg.sender, share);
        _payCaller(share);
    }

    /// @notice Gives the submitter back the reward of a task past its deadline with no decision.
    function reclaim(uint256 taskId) external {
        Task storage t = _tasks[taskId];
        uint256 s = t.state;
        _requireOpen(taskId, s);
        if (msg.sender != address(uint160(t.meta))) revert Unauthorized();
        uint64 deadline = uint64(s);
        // slither-disable-next-line timestamp
        if (block.timestamp <= deadline) revert DeadlineNotPassed(taskId, deadline);
        uint16 decisions = uint16(s >> _DECISIONS_SHIFT);
        if (decisions != 0) revert HasDecisions(taskId, decisions);
        t.state = (s & ~_STATUS_MASK) | (_STATUS_RECLAIMED << _STATUS_SHIFT);
        uint256 reward = uint128(t.funds);
        // The reward was counted in `escrowed` at submission and nothing of it was paid.
        unchecked {
            escrowed -= reward;
        }
        emit TaskReclaimed(taskId, reward);
        _payCaller(reward);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @notice The task record (all zero for an unknown id). `status`: 0 none, 1 open,
    /// 2 finalized, 3 reclaimed.
    function tasks(uint256 taskId)
        external
        view
        returns (address submitter, uint64 deadline, uint8 arch, uint8 status, uint16 quorum)
    {
        Task storage t = _tasks[taskId];
        uint256 s = t.state;
        uint256 meta = t.meta;
        return (
            address(uint160(meta)),
            uint64(s),
            uint8(s >> _ARCH_SHIFT),
            uint8(s >> _STATUS_SHIFT),
            uint16(meta >> _QUORUM_SHIFT)
        );
    }

    /// @notice Everything about a task but its tallies. `action` is meaningful once finalized.
    function taskInfo(uint256 taskId)
        external
        view
        returns (
            address submitter,
            uint64 deadline,
            uint8 arch,
            uint8 status,
            uint16 quorum,
            uint16 decisions,
            uint16 contributors,
            uint8 action,
            uint128 reward,
            bytes32 payloadHash
        )
    {
        Task storage t = _tasks[taskId];
        uint256 s = t.state;
        uint256 meta = t.meta;
        submitter = address(uint160(meta));
        deadline = uint64(s);
        arch = uint8(s >> _ARCH_SHIFT);
        status = uint8(s >> _STATUS_SHIFT);
        quorum = uint16(meta >> _QUORUM_SHIFT);
        decisions = uint16(s >> _DECISIONS_SHIFT);
        contributors = uint16(s >> _CONTRIBUTORS_SHIFT);
        if (status == _STATUS_FINALIZED) action = _fusedAction(s);
        reward = uint128(t.funds);
        payloadHash = t.payloadHash;
    }

    /// @notice What `agent` published to task `taskId`, and whether it claimed its share.
    function published(uint256 taskId, address agent) external view returns (bool embedding, bool decision, bool claimed) {
        uint256 f = _load(_flagSlot(taskId, agent));
        return (f & _EMBEDDING != 0, f & _DECISION != 0, f & _CLAIMED != 0);
    }

    /// @notice The EIP-712 domain separator of `submitReport`'s signatures: name
    /// "Chorus TaskBoard", version "1", this chain's id, this contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// @notice The EIP-712 digest an agent signs for its decision on task `taskId` in a report.
    function decisionDigest(uint256 taskId, uint8 action, uint16 confidence, bytes32 modelId, address agent)
        external
        view
        returns (bytes32)
    {
        return _decisionDigest(_domainSeparator(), taskId, action, confidence, modelId, agent);
    }

    /// @notice The weighted tallies of task `taskId` (sum of `weight * confidence` per action).
    function tallies(uint256 taskId) external view returns (uint64 sell, uint64 hold, uint64 buy) {
        uint256 s = _tasks[taskId].state;
        return (
            uint64(uint48(s >> _TALLY_SHIFT)),
            uint64(uint48(s >> (_TALLY_SHIFT + _TALLY_BITS))),
            uint64(s >> (_TALLY_SHIFT + 2 * _TALLY_BITS))
        );
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev Validates a submission and writes the new task; returns its id.
    function _open(bytes32 payloadHash, uint8 arch, uint64 deadline, uint16 quorum) internal returns (uint256 taskId) {
        if (arch > Chorus.MAX_ARCH) revert InvalidArchitecture();
        // slither-disable-next-line timestamp
        if (deadline <= block.timestamp) revert DeadlineInPast(deadline, block.timestamp);
        if (quorum == 0) revert ZeroQuorum();
        // Ids are sequential from 1; 2**256 submissions are out of reach.
        unchecked {
            taskId = ++taskCount;
        }
        Task storage t = _tasks[taskId];
        t.state = uint256(deadline) | (uint256(arch) << _ARCH_SHIFT) | (_STATUS_OPEN << _STATUS_SHIFT);
        t.payloadHash = payloadHash;
        uint256 meta = uint256(uint160(msg.sender)) | (uint256(quorum) << _QUORUM_SHIFT);
        if (msg.value != 0) {
            // An unfunded task leaves `funds` and `escrowed` alone (one cold slot read fewer).
            if (msg.value > type(uint128).max) revert RewardTooLarge(msg.value);
            meta |= _FUNDED;
            t.funds = msg.value;
            escrowed += msg.value;
        }
        t.meta = meta;
    }

    /// @dev Reverts unless the task whose hot slot is `s` is open.
    function _requireOpen(uint256 taskId, uint256 s) internal pure {
        uint256 status = (s >> _STATUS_SHIFT) & 0xff;
        if (status != _STATUS_OPEN) {
            if (status == _STATUS_NONE) revert UnknownTask(taskId);
            revert AlreadyFinalized(taskId);
        }
    }

    /// @dev Reverts unless the task whose hot slot is `s` is open and its deadline has not passed.
    function _requirePublishable(uint256 taskId, uint256 s) internal view {
        _requireOpen(taskId, s);
        uint64 deadline = uint64(s);
        // slither-disable-next-line timestamp
        if (block.timestamp > deadline) revert PastDeadline(taskId, deadline);
    }

    /// @dev `finalize`'s body, also run by a `submitReport` that reaches the quorum.
    function _finalize(uint256 taskId) internal {
        Task storage t = _tasks[taskId];
        uint256 s = t.state;
        _requireOpen(taskId, s);
        uint256 meta = t.meta;
        uint16 decisions = uint16(s >> _DECISIONS_SHIFT);
        uint16 quorum = uint16(meta >> _QUORUM_SHIFT);
        if (decisions < quorum) {
            // slither-disable-next-line timestamp
            if (block.timestamp <= uint64(s)) revert QuorumNotReached(taskId, decisions, quorum);
            if (decisions == 0) revert NothingToFinalize(taskId);
        }
        uint16 contributors = uint16(s >> _CONTRIBUTORS_SHIFT);
        // The tallies stay as they are from here on, and with them the fused action.
        t.state = (s & ~_STATUS_MASK) | (_STATUS_FINALIZED << _STATUS_SHIFT);
        emit TaskFinalized(
            taskId,
            _fusedAction(s),
            uint64(uint48(s >> _TALLY_SHIFT)),
            uint64(uint48(s >> (_TALLY_SHIFT + _TALLY_BITS))),
            uint64(s >> (_TALLY_SHIFT + 2 * _TALLY_BITS)),
            decisions,
            contributors
        );
        if (meta & _FUNDED == 0) return;
        uint256 reward = uint128(t.funds);
        uint256 share;
        uint256 remainder;
        // contributors >= decisions >= 1, and share * contributors + remainder == reward.
        unchecked {
            share = reward / contributors;
            remainder = reward % contributors;
        }
        t.funds = reward | (share << _SHARE_SHIFT);
        if (remainder != 0) {
            unchecked {
                escrowed -= remainder;
            }
            _payCaller(remainder);
        }
    }

    /// @dev The fused action of the tallies in hot slot `s`: their strict argmax, hold (1) on a tie.
    function _fusedAction(uint256 s) internal pure returns (uint8) {
        uint64 sell = uint64(uint48(s >> _TALLY_SHIFT));
        uint64 hold = uint64(uint48(s >> (_TALLY_SHIFT + _TALLY_BITS)));
        uint64 buy = uint64(s >> (_TALLY_SHIFT + 2 * _TALLY_BITS));
        if (sell > hold && sell > buy) return 0;
        if (buy > hold && buy > sell) return 2;
        return Chorus.HOLD;
    }

    /// @dev Records the sender's valid decision on task `taskId` and tallies it.
    function _decide(uint256 taskId, uint8 action, uint16 confidence) internal {
        (bool active, uint256 role) = _agentRole(msg.sender);
        if (!active) revert UnknownAgent(msg.sender);
        _tally(taskId, msg.sender, role, action, confidence);
    }

    /// @dev Records the valid decision of `agent` (active, of role `role`) on task `taskId` and
    /// tallies it: the checks and the state change of a `publishDecision` after its registry call.
    function _tally(uint256 taskId, address agent, uint256 role, uint8 action, uint16 confidence) internal {
        Task storage t = _tasks[taskId];
        uint256 s = t.state;
        _requirePublishable(taskId, s);
        uint256 slot = _flagSlot(taskId, agent);
        uint256 f = _load(slot);
        if (f & _DECISION != 0) revert DuplicateDecision(taskId, agent);
        _store(slot, f | _DECISION);
        if (f == 0) s = _addContributor(taskId, s);
        uint256 weight = uint16(_weights[uint8(s >> _ARCH_SHIFT)] >> (role << 4));
        // No field overflows: the tally stays below 2**46 (see the contract notes), and
        // decisions <= contributors <= 2**16 - 1 with this agent not yet counted in decisions.
        unchecked {
            s += (weight * confidence) << (_TALLY_SHIFT + _TALLY_BITS * action);
            s += _ONE_DECISION;
        }
        t.state = s;
        emit DecisionPublished(taskId, agent, uint8(role), action, confidence);
    }

    /// @dev The items of a `publishDecisions` batch, the calldata words from `p` up to `end`, of
    /// the sender, active with role `role`. A loop in assembly takes the items it accepts, which
    /// are exactly those `_tallyItem` accepts, making the same state change and log; it stops at
    /// the first other item and hands it to `_tallyItem` itself, which reverts with the error
    /// `publishDecision` would give (and would tally the item if the loop ever turned down a
    /// valid one), then resumes after it. What the loop saves, about 500 gas per item: the
    /// bounds-checked array access, the internal calls, checked arithmetic, Solidity's ABI
    /// encoding of the log, and the weight lookup of every item (the weight is read again only
    /// when an item's architecture differs from the previous item's).
    function _publishItems(uint256 p, uint256 end, uint256 role) internal {
        bytes32 topic = _DECISION_PUBLISHED_TOPIC;
        // The architecture field (`s & 0xff << 64`) of the previous item's task, and the sender's
        // weight under it, shifted to the sell tally (`weight << 112`); no field matches the
        // initial `cachedArch`, so the first item reads its weight.
        uint256 cachedArch = type(uint256).max;
        uint256 weight;
        while (true) {
            // slither-disable-next-line assembly
            assembly ("memory-safe") {
                let agentWord := or(caller(), shl(160, _FLAGS_SEED)) // `_flagSlot`'s second word
                // The log's data words (`uint8(role)`, action, confidence) go at the free memory
                // pointer without moving it: nothing is allocated, and nothing else writes there
                // in this loop, so the role word is written once and the others per item.
                let m := mload(0x40)
                mstore(m, and(role, 0xff))
                for {} lt(p, end) { p := add(p, 0x20) } {
                    let item := calldataload(p)
                    // `_tasks[taskId].state` and `_flagSlot(taskId, msg.sender)`: both hash the
                    // task id in scratch word 0x00 with a second word in 0x20.
                    mstore(0x00, shr(_ITEM_TASK_SHIFT, item))
                    mstore(0x20, _tasks.slot)
                    let stateSlot := keccak256(0x00, 0x40)
                    let s := sload(stateSlot)
                    mstore(0x20, agentWord)
                    let flagSlot := keccak256(0x00, 0x40)
                    let f := sload(flagSlot)
                    let action := and(shr(_ITEM_ACTION_SHIFT, item), 0xff)
                    let confidence := and(item, 0xffff)
                    // Each term is non-zero where one of `_tallyItem`'s checks fails, in its
                    // order: action > 2 (`Chorus.MAX_ACTION`), confidence > 10_000
                    // (`Chorus.MAX_CONFIDENCE`), the task not open, its deadline
                    // passed, a decision of the sender already there, no room for one more
                    // contributor when the sender is new to the task.
                    if or(
                        or(or(gt(action, 2), gt(confidence, 10000)),
                            or(xor(and(s, _STATUS_FIELD), _OPEN_FIELD),
                                gt(timestamp(), and(s, 0xffffffffffffffff)))),
                        or(and(f, _DECISION),
                            and(iszero(f), eq(and(s, _CONTRIBUTORS_FIELD), _CONTRIBUTORS_FIELD)))
                    ) { break }
                    let archBits := and(s, _ARCH_FIELD) // the arch field, in place
                    if iszero(eq(archBits, cachedArch)) {
                        // `_weights[arch]`: tasks are opened with arch <= 15, so the slot is
                        // inside the array; a larger arch (none exists) goes to `_tallyItem`.
                        if gt(archBits, _MAX_ARCH_FIELD) { break }
                        cachedArch := archBits
                        weight := sload(add(_weights.slot, shr(_ARCH_SHIFT, archBits)))
                        weight := shl(_TALLY_SHIFT, and(shr(shl(4, role), weight), 0xffff))
                    }
                    sstore(flagSlot, or(f, _DECISION))
                    // The checks passed, so as in `_tally` no field of `s` overflows: one more
                    // contributor if the sender is new, one more decision, and
                    // `weight * confidence` on the action's tally.
                    s := add(s, add(shl(_CONTRIBUTORS_SHIFT, iszero(f)), _ONE_DECISION_FIELD))
                    sstore(stateSlot, add(s, shl(mul(_TALLY_BITS, action), mul(weight, confidence))))
                    // `emit DecisionPublished(taskId, msg.sender, uint8(role), action, confidence)`:
                    // action and confidence are checked, so they are their own `uint8` and
                    // `uint16` encodings.
                    mstore(add(m, 0x20), action)
                    mstore(add(m, 0x40), confidence)
                    log3(m, 0x60, topic, shr(_ITEM_TASK_SHIFT, item), caller())
                }
            }
            if (p >= end) break;
            // The loop stopped at the item at `p`: `_tallyItem` reverts with its error.
            uint256 item;
            // slither-disable-next-line assembly
            assembly ("memory-safe") {
                item := calldataload(p)
            }
            _tallyItem(item, role);
            // p < end <= calldatasize.
            unchecked {
                p += 32;
            }
        }
    }

    /// @dev Records the sender's decision `item` (`taskId << 24 | action << 16 | confidence`) of
    /// a `publishDecisions` batch, checked and tallied as `publishDecision` would: the reference
    /// for `_publishItems`' fast path, which hands it every item it does not accept.
    function _tallyItem(uint256 item, uint256 role) internal {
        uint8 action = uint8(item >> _ITEM_ACTION_SHIFT);
        uint16 confidence = uint16(item);
        if (action > Chorus.MAX_ACTION) revert InvalidAction();
        if (confidence > Chorus.MAX_CONFIDENCE) revert InvalidConfidence();
        _tally(item >> _ITEM_TASK_SHIFT, msg.sender, role, action, confidence);
    }

    /// @dev Records the sender's checked embedding (model, encoding and length) of task `taskId`:
    /// the rest of `publishEmbedding`, for one item of `publishEmbeddings`.
    function _embedOne(uint256 taskId, bytes32 modelId, uint8 encoding, bytes calldata vector) internal {
        Task storage t = _tasks[taskId];
        uint256 s = t.state;
        _requirePublishable(taskId, s);
        uint256 slot = _flagSlot(taskId, msg.sender);
        uint256 f = _load(slot);
        if (f & _EMBEDDING != 0) revert DuplicateEmbedding(taskId, msg.sender);
        _store(slot, f | _EMBEDDING);
        if (f == 0) t.state = _addContributor(taskId, s);
        emit EmbeddingPublished(taskId, msg.sender, modelId, encoding, vector);
    }

    /// @dev Lays out, at the free memory pointer `m` (returned, not allocated), what
    /// `_reportItems` reads and writes per decision: the EIP-712 struct (`m` .. `m+0xc0`: type
    /// hash, `taskId`, action, confidence, model id, agent), the digest's preimage
    /// (`m+0xde` .. `m+0x120`: 0x1901, the domain separator, the struct's hash), ecrecover's input
    /// (`m+0x120` .. `m+0x1a0`: digest, v, r, s), the registry call (`m+0x1a0`: agentInfo's
    /// selector and agent; its four answer words at `m+0x1e0`), the log word (`m+0x260`), three
    /// constants: the registry (`m+0x280`), DecisionReported's topic (`m+0x2a0`) and `archWeights`
    /// (`m+0x2c0`), and the loop's end (`m+0x2e0`, written there). The caller passes `m` straight to `_reportItems`: nothing writes memory between.
    function _reportScratch(uint256 taskId, uint256 archWeights) internal view returns (uint256 m) {
        bytes32 domain = _domainSeparator();
        bytes32 typehash = _DECISION_TYPEHASH;
        bytes32 topic = _DECISION_REPORTED_TOPIC;
        bytes4 selector = AgentRegistry.agentInfo.selector;
        address target = address(registry);
        // slither-disable-next-line assembly
        assembly ("memory-safe") {
            m := mload(0x40)
            mstore(m, typehash)
            mstore(add(m, 0x20), taskId)
            mstore(add(m, 0xc0), 0x1901)
            mstore(add(m, 0xe0), domain)
            mstore(add(m, 0x1a0), selector)
            mstore(add(m, 0x280), target)
            mstore(add(m, 0x2a0), topic)
            mstore(add(m, 0x2c0), archWeights)
        }
    }

    /// @dev The decisions of a report on the task whose hot slot is `s`, checked and tallied in
    /// one assembly loop over the scratch area `m` (`_reportScratch`): it takes exactly the
    /// decisions `_tallySigned` accepts, in order, making the same state change and log, and stops
    /// at the first other one. Returns the hot slot, the number of decisions taken, the last
    /// signer taken, and whether the sender signed one of them. What it saves over `_tallySigned`, about 1,000 gas per decision: the
    /// calldata struct's bounds checks, the internal calls, and Solidity's ABI round trips of the
    /// registry call and the log.
    function _reportItems(uint256 m, uint256 s, SignedDecision[] calldata decisions, bool bare)
        internal
        returns (uint256, uint256 taken, address previous, bool signed)
    {
        // slither-disable-next-line assembly
        assembly ("memory-safe") {
            mstore(add(m, 0x2e0), add(decisions.offset, mul(decisions.length, 0x60))) // the end
            for { let p := decisions.offset } lt(p, mload(add(m, 0x2e0))) { p := add(p, 0x60) } {
                let head := calldataload(p)
                // Each term is non-zero where a check of `_checkSigned` fails, in its order: bits
                // 32..95 of the head set, action > 2 (`Chorus.MAX_ACTION`), confidence > 10_000
                // (`Chorus.MAX_CONFIDENCE`).
                if or(and(shr(32, head), 0xffffffffffffffff),
                      or(gt(and(shr(16, head), 0xff), 2), gt(and(head, 0xffff), 10000))) { break }
                // `registry.agentInfo(agent)`: (active, role, dim, modelId); a failed or short
                // call, or an inactive agent, goes to `_tallySigned`, which makes the call again.
                mstore(add(m, 0x1a4), shr(96, head))
                if iszero(staticcall(gas(), mload(add(m, 0x280)), add(m, 0x1a0), 0x24, add(m, 0x1e0), 0x80)) { break }
                if or(lt(returndatasize(), 0x80), iszero(mload(add(m, 0x1e0)))) { break }
                // The digest (`_decisionDigest`) under the agent's registered model id.
                mstore(add(m, 0x40), and(shr(16, head), 0xff))
                mstore(add(m, 0x60), and(head, 0xffff))
                mstore(add(m, 0x80), mload(add(m, 0x240)))
                mstore(add(m, 0xa0), shr(96, head))
                mstore(add(m, 0x100), keccak256(m, 0xc0))
                mstore(add(m, 0x120), keccak256(add(m, 0xde), 0x42))
                // `_recover`: v 27 or 28, s in the lower half of the order, a non-zero signer.
                mstore(add(m, 0x140), and(shr(24, head), 0xff))
                mstore(add(m, 0x160), calldataload(add(p, 0x20)))
                mstore(add(m, 0x180), calldataload(add(p, 0x40)))
                if or(iszero(or(eq(mload(add(m, 0x140)), 27), eq(mload(add(m, 0x140)), 28))),
                      gt(mload(add(m, 0x180)), 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0)) { break }
                mstore(0x00, 0)
                pop(staticcall(gas(), 1, add(m, 0x120), 0x80, 0x00, 0x20))
                // The signer is the agent (non-zero, since the registry knows it), above the last.
                if or(iszero(eq(mload(0x00), shr(96, head))), iszero(gt(shr(96, head), previous))) { break }
                if iszero(bare) {
                    // `_flagSigned`: no decision of the agent yet, and room for one more
                    // contributor if the agent is new to the task.
                    mstore(0x00, mload(add(m, 0x20)))
                    mstore(0x20, or(shr(96, head), shl(160, _FLAGS_SEED)))
                    let flagSlot := keccak256(0x00, 0x40)
                    let f := sload(flagSlot)
                    if or(and(f, _DECISION), and(iszero(f), eq(and(s, _CONTRIBUTORS_FIELD), _CONTRIBUTORS_FIELD))) {
                        break
                    }
                    sstore(flagSlot, or(f, _DECISION))
                    s := add(s, shl(_CONTRIBUTORS_SHIFT, iszero(f)))
                }
                previous := shr(96, head)
                signed := or(signed, eq(previous, caller()))
                // `_addSigned`: `weight * confidence` on the action's tally, one more decision
                // (no field overflows, as in `_tally`), the weight the role's 16 bits of the
                // architecture's weights.
                s := add(add(s, _ONE_DECISION_FIELD),
                         shl(add(_TALLY_SHIFT, mul(_TALLY_BITS, and(shr(16, head), 0xff))),
                             mul(and(shr(shl(4, mload(add(m, 0x200))), mload(add(m, 0x2c0))), 0xffff), and(head, 0xffff))))
                // `emit DecisionReported(taskId << 192 | agent << 32 | role << 24 | action << 16 |
                // confidence)`: the head's low 24 bits are action and confidence.
                mstore(add(m, 0x260), or(or(shl(192, mload(add(m, 0x20))), shl(32, shr(96, head))),
                                         or(shl(24, mload(add(m, 0x200))), and(head, 0xffffff))))
                log1(add(m, 0x260), 0x20, mload(add(m, 0x2a0)))
                taken := add(taken, 1)
            }
        }
        return (s, taken, previous, signed);
    }

    /// @dev Decisions `from` onward of a report, through `_tallySigned` one by one: the first
    /// reverts with its error, unless `_reportItems` turned down a valid one (then it is tallied
    /// and the rest follows the same way). Returns the hot slot.
    function _tallyRest(
        uint256 taskId,
        uint256 s,
        uint256 archWeights,
        SignedDecision[] calldata decisions,
        uint256 from,
        address previous,
        bool bare
    ) internal returns (uint256) {
        bytes32 domain = _domainSeparator();
        for (uint256 i = from; i < decisions.length; ++i) {
            (s, previous) = _tallySigned(taskId, s, archWeights, domain, decisions[i], i, previous, bare);
        }
        return s;
    }

    /// @dev Whether a report of `n` decisions on task `t` (hot slot `s`) is bare: it reaches the
    /// quorum of a task that escrows no reward and has no contributor yet, hence no flag set
    /// (every flag counts one contributor).
    function _bareReport(Task storage t, uint256 s, uint256 n) internal view returns (bool) {
        uint256 meta = t.meta;
        return s & _CONTRIBUTORS_FIELD == 0 && meta & _FUNDED == 0 && n >= uint16(meta >> _QUORUM_SHIFT);
    }

    /// @dev Checks decision `d`, number `i` of a report on task `taskId` (hot slot `s`, architecture
    /// weights `archWeights`), whose signer must be above `previous`, the signer before it; sets
    /// its flag unless the report is `bare`; returns `s` with it tallied, as `_tally` would for
    /// its signer, and the signer.
    function _tallySigned(
        uint256 taskId,
        uint256 s,
        uint256 archWeights,
        bytes32 domain,
        SignedDecision calldata d,
        uint256 i,
        address previous,
        bool bare
    ) internal returns (uint256, address agent) {
        uint256 role;
        (agent, role) = _checkSigned(i, domain, taskId, d);
        if (agent <= previous) {
            if (agent == previous) revert DuplicateSigner(agent);
            revert UnsortedSigners(i);
        }
        if (!bare) s = _flagSigned(taskId, s, agent);
        uint256 head = d.head;
        return (_addSigned(taskId, s, archWeights, agent, role, uint8(head >> 16), uint16(head)), agent);
    }

    /// @dev Sets the decision flag of `agent`, a report's signer on task `taskId`, and returns the
    /// hot slot `s` with it counted as a contributor if it is new.
    function _flagSigned(uint256 taskId, uint256 s, address agent) internal returns (uint256) {
        uint256 slot = _flagSlot(taskId, agent);
        uint256 f = _load(slot);
        if (f & _DECISION != 0) revert DuplicateDecision(taskId, agent);
        _store(slot, f | _DECISION);
        return f == 0 ? _addContributor(taskId, s) : s;
    }

    /// @dev Returns the hot slot `s` of task `taskId` with the checked decision of `agent` (of
    /// `role`) tallied under the architecture's weights `archWeights`, and logs it.
    function _addSigned(
        uint256 taskId,
        uint256 s,
        uint256 archWeights,
        address agent,
        uint256 role,
        uint8 action,
        uint16 confidence
    ) internal returns (uint256) {
        uint256 weight = uint16(archWeights >> (role << 4));
        // As in `_tally`: no field overflows.
        unchecked {
            s += (weight * confidence) << (_TALLY_SHIFT + _TALLY_BITS * action);
            s += _ONE_DECISION;
        }
        // taskId < 2**64 (see DecisionReported), role < 2**8, action <= 2, confidence <= 10_000.
        emit DecisionReported(
            (taskId << 192) | (uint256(uint160(agent)) << 32) | (role << 24) | (uint256(action) << 16) | confidence
        );
        return s;
    }

    /// @dev Checks signed decision `d`, number `index` of a report on task `taskId`: its head,
    /// action and confidence, its signer (active; its registered model id is the one signed) and
    /// the signature under `domain`; returns the signer and its role.
    function _checkSigned(uint256 index, bytes32 domain, uint256 taskId, SignedDecision calldata d)
        internal
        view
        returns (address agent, uint256 role)
    {
        uint256 head = d.head;
        if (uint64(head >> 32) != 0) revert MalformedDecision(index);
        agent = address(uint160(head >> 96));
        uint8 action = uint8(head >> 16);
        uint16 confidence = uint16(head);
        if (action > Chorus.MAX_ACTION) revert InvalidAction();
        if (confidence > Chorus.MAX_CONFIDENCE) revert InvalidConfidence();
        bool active;
        bytes32 modelId;
        (active, role,, modelId) = _agentInfo(agent);
        if (!active) revert UnknownAgent(agent);
        bytes32 digest = _decisionDigest(domain, taskId, action, confidence, modelId, agent);
        address signer = _recover(index, digest, uint8(head >> 24), d.r, d.s);
        if (signer != agent) revert SignerMismatch(index, agent, signer);
    }

    /// @dev Returns the hot slot `s` with one more contributor.
    function _addContributor(uint256 taskId, uint256 s) internal pure returns (uint256) {
        if ((s >> _CONTRIBUTORS_SHIFT) & _MAX_COUNT == _MAX_COUNT) revert TooManyContributors(taskId);
        // The field is below its maximum, so the increment stays inside it.
        unchecked {
            return s + _ONE_CONTRIBUTOR;
        }
    }

    /// @dev Writes one weight into its architecture's slot and logs it.
    function _setWeight(uint8 arch, uint8 role, uint16 weight) internal {
        uint256 shift = uint256(role) << 4;
        _weights[arch] = (_weights[arch] & ~(uint256(0xffff) << shift)) | (uint256(weight) << shift);
        emit WeightSet(arch, role, weight);
    }

    /// @dev `registry.agentRole(agent)` through scratch space: the hot path skips Solidity's ABI
    /// round trip (about 300 gas). The registry is immutable and trusted; a short answer (no code
    /// at the address) reverts with whatever it returned.
    function _agentRole(address agent) internal view returns (bool active, uint256 role) {
        address target = address(registry);
        bytes4 selector = AgentRegistry.agentRole.selector;
        // slither-disable-next-line assembly
        assembly ("memory-safe") {
            mstore(0x00, selector)
            mstore(0x04, agent)
            // Yul evaluates arguments right to left: call first, then look at the answer's size.
            let ok := staticcall(gas(), target, 0x00, 0x24, 0x00, 0x40)
            if iszero(and(ok, iszero(lt(returndatasize(), 0x40)))) {
                let m := mload(0x40)
                returndatacopy(m, 0x00, returndatasize())
                revert(m, returndatasize())
            }
            active := mload(0x00)
            role := mload(0x20)
        }
    }

    /// @dev `registry.agentInfo(agent)` through the free memory area, for the same reason; the
    /// four returned words are read before anything else uses that memory.
    function _agentInfo(address agent) internal view returns (bool active, uint256 role, uint16 dim, bytes32 modelId) {
        address target = address(registry);
        bytes4 selector = AgentRegistry.agentInfo.selector;
        // slither-disable-next-line assembly
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, selector)
            mstore(add(m, 0x04), agent)
            let ok := staticcall(gas(), target, m, 0x24, m, 0x80)
            if iszero(and(ok, iszero(lt(returndatasize(), 0x80)))) {
                returndatacopy(m, 0x00, returndatasize())
                revert(m, returndatasize())
            }
            active := mload(m)
            role := mload(add(m, 0x20))
            dim := mload(add(m, 0x40))
            modelId := mload(add(m, 0x60))
        }
    }

    /// @dev The EIP-712 domain separator of this contract on the current chain.
    function _domainSeparator() internal view returns (bytes32) {
        if (block.chainid == _cachedChainId) return _cachedDomainSeparator;
        return _buildDomainSeparator();
    }

    /// @dev `keccak256(abi.encode(_DOMAIN_TYPEHASH, name, version, chainid, this))`.
    function _buildDomainSeparator() internal view returns (bytes32) {
        return keccak256(abi.encode(_DOMAIN_TYPEHASH, _NAME_HASH, _VERSION_HASH, block.chainid, address(this)));
    }

    /// @dev The EIP-712 digest of a `Decision` under `domain`:
    /// `keccak256("\x19\x01" . domain . keccak256(abi.encode(_DECISION_TYPEHASH, taskId, action, confidence, modelId, agent)))`,
    /// hashed in the free memory area without allocating (a report hashes once per signer).
    function _decisionDigest(
        bytes32 domain,
        uint256 taskId,
        uint8 action,
        uint16 confidence,
        bytes32 modelId,
        address agent
    ) internal pure returns (bytes32 digest) {
        bytes32 typehash = _DECISION_TYPEHASH;
        // slither-disable-next-line assembly
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typehash)
            mstore(add(m, 0x20), taskId)
            mstore(add(m, 0x40), and(action, 0xff))
            mstore(add(m, 0x60), and(confidence, 0xffff))
            mstore(add(m, 0x80), modelId)
            mstore(add(m, 0xa0), and(agent, 0xffffffffffffffffffffffffffffffffffffffff))
            let structHash := keccak256(m, 0xc0)
            mstore(m, 0x1901)
            mstore(add(m, 0x20), domain)
            mstore(add(m, 0x40), structHash)
            digest := keccak256(add(m, 0x1e), 0x42)
        }
    }

    /// @dev The signer of `digest` under signature `index` of a report: `v` must be 27 or 28 and
    /// `s` in the lower half of the order, and the recovered address non-zero (`BadSignature`).
    function _recover(uint256 index, bytes32 digest, uint8 v, bytes32 r, bytes32 s)
        internal
        pure
        returns (address signer)
    {
        if ((v != 27 && v != 28) || uint256(s) > _HALF_ORDER) revert BadSignature(index);
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert BadSignature(index);
    }

    /// @dev Storage slot of the (task, agent) flags, `keccak256(taskId . seed << 160 | agent)`:
    /// one hash instead of a nested mapping's two. Solidity's mapping slots hash
    /// `key . slotIndex` with a small `slotIndex`; the seed in the high bits keeps these
    /// preimages apart from all of them.
    function _flagSlot(uint256 taskId, address agent) internal pure returns (uint256 slot) {
        // slither-disable-next-line assembly
        assembly ("memory-safe") {
            mstore(0x00, taskId)
            mstore(0x20, or(agent, shl(160, _FLAGS_SEED)))
            slot := keccak256(0x00, 0x40)
        }
    }

    /// @dev Reads a raw storage slot: the per (task, agent) flags live at `_flagSlot`, outside
    /// Solidity's storage layout.
    function _load(uint256 slot) internal view returns (uint256 value) {
        // slither-disable-next-line assembly
        assembly ("memory-safe") {
            value := sload(slot)
        }
    }

    /// @dev Writes a raw storage slot (the flags, as `_load` reads them).
    function _store(uint256 slot, uint256 value) internal {
        // slither-disable-next-line assembly
        assembly ("memory-safe") {
            sstore(slot, value)
        }
    }

    /// @dev Pays `amount` wei to the caller, reverting `TransferFailed` if the call fails. Every
    /// payment goes to `msg.sender` (the finalizer's remainder, a contributor's share, the
    /// submitter's reclaim), so the recipient is not a parameter that a later caller could get
    /// wrong. A plain `call` forwards all gas (contract wallets can receive) and its result is
    /// checked; state is settled before it.
    function _payCaller(uint256 amount) internal {
        // slither's arbitrary-send-eth takes any payment to `msg.sender` as arbitrary unless the
        // paying function itself indexes a mapping by it; the callers authorize the sender (its
        // contributor flag in claimReward, the submitter check in reclaim) or pay it under one
        // wei per contributor (the remainder in finalize).
        // slither-disable-next-line arbitrary-send-eth,low-level-calls
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }
}
// forge-lint: disable-end(unsafe-typecast, block-timestamp)
