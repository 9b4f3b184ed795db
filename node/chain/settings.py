"""Process settings: one pydantic-settings object per process, read from `CHORUS_*` variables.

`ChainSettings` holds what every process that talks to the chain needs (RPC, chain id, the
signing key's source, fee and timeout policy). The node process extends it with its own fields::

    class NodeSettings(ChainSettings):
        http_port: int = 8000
        \"\"\"Port of the node's HTTP API.\"\"\"

    settings = get_settings(NodeSettings)

Build settings with `get_settings()` and pass them down (a FastAPI dependency, a CLI option);
never read them from a global, so tests can override any field.

Secrets (keystore passwords) are `SecretStr` and never appear in `repr`, logs or errors.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from node.protocol.errors import ConfigError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

DEV_CHAIN_ID = 31337
"""Anvil's (and Hardhat's) chain id: the only chain on which the well-known dev keys may sign."""

GETH_MIN_BUMP_PERCENT = 10
"""geth's txpool.pricebump default: a replacement must raise both fee caps by at least this much."""

DEV_MNEMONIC = "test test test test test test test test test test test junk"
"""Anvil's default mnemonic. Its keys are public knowledge: dev chains only."""


def find_project_root(start: Path | None = None) -> Path:
    """The directory holding Chorus' pyproject.toml, searched upwards from `start`.

    Falls back to the checkout this package was imported from (an editable install), then to the
    current directory when neither has a pyproject.toml.
    """
    candidates = [Path(start or Path.cwd()).resolve(), Path(__file__).resolve().parent]
    for origin in candidates:
        for directory in (origin, *origin.parents):
            if (directory / "pyproject.toml").is_file() and (directory / "node").is_dir():
                return directory
    return Path.cwd().resolve()


def state_dir(root: Path | None = None) -> Path:
    """`<root>/.chorus`: pid files, logs and devnet.json live here (git-ignored)."""
    return (root or find_project_root()) / ".chorus"


def dev_account(index: int) -> LocalAccount:
    """The `index`-th account of Anvil's default mnemonic (path m/44'/60'/0'/0/index)."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


DEV_KEYS_CHECKED = 20
"""A keystore holding one of the first this many dev keys (Anvil's 10, Hardhat's 20) is a dev key."""


@functools.lru_cache(maxsize=1)
def _dev_addresses(n: int) -> tuple[str, ...]:
    return tuple(dev_account(i).address.lower() for i in range(n))


def dev_key_index_of(address: str, n: int = DEV_KEYS_CHECKED) -> int | None:
    """The index of `address` among the public dev mnemonic's first `n` keys, or None."""
    try:
        return _dev_addresses(n).index(address.lower())
    except ValueError:
        return None


class ChainSettings(BaseSettings):
    """Chain access for one process: where the RPC is, which chain it must be, which key signs."""

    model_config = SettingsConfigDict(
        env_prefix="CHORUS_",
        extra="ignore",
        validate_default=True,
        hide_input_in_errors=True,
        use_attribute_docstrings=True,
    )

    rpc_url: str = "http://127.0.0.1:8545"
    """JSON-RPC endpoint (HTTP) of the chain."""

    chain_id: int | None = None
    """Expected chain id; when set, connecting to an RPC that reports another id is refused."""

    dev_key_index: int | None = Field(default=None, ge=0)
    """Sign with the `i`-th key of Anvil's public dev mnemonic. Refused on any chain but 31337."""

    keystore_path: Path | None = None
    """Sign with the key in this encrypted JSON keystore (geth / eth-account format)."""

    keystore_password: SecretStr | None = None
    """Password of `keystore_path` (prefer `keystore_password_file`)."""

    keystore_password_file: Path | None = None
    """File whose content (trailing newline stripped) is the password of `keystore_path`."""

    rpc_timeout_s: float = Field(default=10.0, gt=0)
    """Seconds one JSON-RPC request may take before it counts as unavailable."""

    rpc_retries: int = Field(default=3, ge=0)
    """Retries (with exponential backoff) of reads and raw-transaction sends on connection errors."""

    receipt_timeout_s: float = Field(default=60.0, gt=0)
    """Seconds to wait for a transaction to be mined before giving up."""

    priority_fee_wei: int | None = Field(default=None, ge=0)
    """EIP-1559 tip; None asks the node (`eth_maxPriorityFeePerGas`)."""

    base_fee_multiplier: int = Field(default=2, ge=1)
    """maxFeePerGas = base_fee_multiplier * baseFee + tip: room for that many full blocks of growth."""

    gas_margin: float = Field(default=1.2, ge=1.0)
    """Gas limit = estimate * gas_margin."""

    fee_bump_percent: int = GETH_MIN_BUMP_PERCENT
    """A transaction replaced with higher fees (stuck in the pool, or `Web3Client.replace`) raises
    both maxFeePerGas and maxPriorityFeePerGas by strictly more than this many percent. At least
    10: geth's pool refuses a replacement that raises either cap by less."""

    artifacts_dir: Path | None = None
    """forge's output folder; default `<project root>/contracts/out`."""

    @field_validator("fee_bump_percent")
    @classmethod
    def _check_fee_bump(cls, value: int) -> int:
        if value < GETH_MIN_BUMP_PERCENT:
            raise ValueError(f"a replacement must raise both fee caps by at least {GETH_MIN_BUMP_PERCENT}% "
                             f"(geth's txpool.pricebump), got {value}%")
        return value

    @model_validator(mode="after")
    def _check_key_source(self) -> ChainSettings:
        if self.dev_key_index is not None and self.keystore_path is not None:
            raise ConfigError("choose one key source: CHORUS_DEV_KEY_INDEX or CHORUS_KEYSTORE_PATH, not both")
        if self.keystore_password is not None and self.keystore_password_file is not None:
            raise ConfigError("set CHORUS_KEYSTORE_PASSWORD or CHORUS_KEYSTORE_PASSWORD_FILE, not both")
        if self.dev_key_index is not None and self.chain_id is not None:
            require_dev_chain(self.chain_id)
        return self

    @property
    def has_key(self) -> bool:
        """Whether a signing key is configured (read-only processes need none)."""
        return self.dev_key_index is not None or self.keystore_path is not None

    def load_account(self, chain_id: int | None = None) -> LocalAccount:
        """Load the signing key. `chain_id` is the id the RPC reported, checked against the policy.

        Raises ConfigError when no key is configured, the keystore cannot be decrypted, or a dev
        key is asked for on a chain other than 31337.
        """
        effective = chain_id if chain_id is not None else self.chain_id
        if self.dev_key_index is not None:
            if effective is None:
                raise ConfigError("a dev key needs a known chain id (set CHORUS_CHAIN_ID=31337 or connect first)")
            require_dev_chain(effective)
            return dev_account(self.dev_key_index)
        if self.keystore_path is not None:
            account = self._decrypt_keystore()
            if effective is not None and effective != DEV_CHAIN_ID:
                index = dev_key_index_of(account.address)
                if index is not None:  # a public key in an encrypted file is still public
                    raise ConfigError(f"keystore {self.keystore_path} holds dev key {index} of the public mnemonic: "
                                      f"refused on chain id {effective}; dev keys sign only on chain id {DEV_CHAIN_ID}")
            return account
        raise ConfigError("no signing key configured: set CHORUS_DEV_KEY_INDEX or CHORUS_KEYSTORE_PATH")

    def _keystore_password(self) -> str:
        if self.keystore_password is not None:
            return self.keystore_password.get_secret_value()
        if self.keystore_password_file is not None:
            try:
                return self.keystore_password_file.read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"cannot read keystore password file {self.keystore_password_file}: "
                                  f"{exc.strerror}") from None
        raise ConfigError("keystore needs CHORUS_KEYSTORE_PASSWORD or CHORUS_KEYSTORE_PASSWORD_FILE")

    def _decrypt_keystore(self) -> LocalAccount:
        from eth_account import Account

        assert self.keystore_path is not None
        try:
            keyfile: dict[str, Any] = json.loads(self.keystore_path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read keystore {self.keystore_path}: {exc}") from None
        try:
            key = Account.decrypt(keyfile, self._keystore_password())
        except ValueError:
            # The message of eth-account's error is safe, but the traceback would carry locals.
            raise ConfigError(f"cannot decrypt keystore {self.keystore_path}: wrong password or corrupt file") from None
        return Account.from_key(key)


def require_dev_chain(chain_id: int) -> None:
    """Raise ConfigError unless `chain_id` is the dev chain: the dev keys are public."""
    if chain_id != DEV_CHAIN_ID:
        raise ConfigError(f"refusing a dev key (public mnemonic) on chain id {chain_id}; "
                          f"dev keys sign only on chain id {DEV_CHAIN_ID}")


S = TypeVar("S", bound=ChainSettings)


def get_settings(cls: type[S] = ChainSettings, **overrides: Any) -> S:  # type: ignore[assignment]
    """Build the settings from `CHORUS_*` environment variables, with `overrides` on top.

    Raises ConfigError (never pydantic's ValidationError, whose message could echo input values).
    """
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None
