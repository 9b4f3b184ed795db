// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Chorus
/// @notice Enumeration bounds and encoding rules shared by the Chorus contracts.
/// @dev All enumerations travel as uint8 on chain; see docs/protocol.md for their meaning.
/// @author Chorus
library Chorus {
    /*//////////////////////////////////////////////////////////////
                              ENUMERATIONS
    //////////////////////////////////////////////////////////////*/

    /// @dev Role: 0 market, 1 sentiment, 2 risk, 3 fusion, 4 coordinator.
    uint8 internal constant ROLE_MARKET = 0;
    uint8 internal constant ROLE_SENTIMENT = 1;
    uint8 internal constant ROLE_RISK = 2;
    uint8 internal constant ROLE_FUSION = 3;
    uint8 internal constant ROLE_COORDINATOR = 4;
    uint8 internal constant MAX_ROLE = ROLE_COORDINATOR;

    /// @dev Modality: 0 none, 1 series, 2 text, 3 flows, 4 image, 5 multimodal.
    uint8 internal constant MAX_MODALITY = 5;

    /// @dev Dtype / encoding: 0 f32, 1 f16, 2 i8, 3 binary.
    uint8 internal constant MAX_ENCODING = 3;

    /// @dev Action: 0 sell, 1 hold, 2 buy.
    uint8 internal constant MAX_ACTION = 2;

    /// @dev The action a tie (or an all-zero tally) resolves to.
    uint8 internal constant HOLD = 1;

    /// @dev Confidence is in basis points.
    uint16 internal constant MAX_CONFIDENCE = 10_000;

    /// @dev Architecture ids 0..8 are named, 9..15 are reserved for experiments.
    uint8 internal constant ARCH_UNI_BEST = 0;
    uint8 internal constant ARCH_M_RULES = 1;
    uint8 internal constant ARCH_M_FIXED = 2;
    uint8 internal constant ARCH_M_LEARNED = 3;
    uint8 internal constant ARCH_M_REGRET = 4;
    uint8 internal constant ARCH_E_D = 5;
    uint8 internal constant ARCH_U = 6;
    uint8 internal constant ARCH_U_REP = 7;
    uint8 internal constant ARCH_M_LEARNED_P = 8;
    uint8 internal constant MAX_ARCH = 15;

    /*//////////////////////////////////////////////////////////////
                                ENCODING
    //////////////////////////////////////////////////////////////*/

    /// @dev Byte length of a `dim`-dimensional vector under `encoding` (assumed valid):
    /// f32 `4d`, f16 `2d`, i8 `d`, binary `ceil(d/8)`.
    function vectorBytes(uint256 dim, uint256 encoding) internal pure returns (uint256) {
        if (encoding == 0) return dim << 2;
        if (encoding == 1) return dim << 1;
        if (encoding == 2) return dim;
        // `dim` is at most 2**16 - 1, so `dim + 7` cannot overflow.
        unchecked {
            return (dim + 7) >> 3;
        }
    }
}
