"""The error tree's helpers: revert formatting and URL redaction."""

from node.protocol.errors import ContractRevert, safe_url


def test_safe_url_keeps_only_scheme_host_port():
    assert safe_url("https://eth.example.org/v3/SECRETKEY") == "https://eth.example.org"
    assert safe_url("https://user:pw@rpc.example.org:8443/key?token=abc") == "https://rpc.example.org:8443"
    assert safe_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert safe_url("not a url") == "<url>"


def test_contract_revert_message_names_error_and_args():
    exc = ContractRevert("WrongLength", {"expected": 1536, "got": 12}, tx_hash="0xab")
    assert str(exc) == "WrongLength(expected=1536, got=12) in tx 0xab"
    assert exc.error_name == "WrongLength" and exc.error_args == {"expected": 1536, "got": 12}
