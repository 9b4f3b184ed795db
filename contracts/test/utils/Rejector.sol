// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// Test inputs are bounded before they are narrowed.
// forge-lint: disable-start(unsafe-typecast)

/// @title Rejector
/// @notice An account that refuses ETH, to drive the `TransferFailed` paths: it forwards calls
/// (so it can act as an agent or a submitter) and reverts on every plain transfer.
contract Rejector {
    error Rejected();

    /// @dev Calls `target` with `value` wei and `data`, bubbling up any revert.
    function exec(address target, uint256 value, bytes calldata data) external payable returns (bytes memory ret) {
        bool ok;
        (ok, ret) = target.call{value: value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
    }

    receive() external payable {
        revert Rejected();
    }
}
// forge-lint: disable-end(unsafe-typecast)
