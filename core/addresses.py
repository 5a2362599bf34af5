"""Addresses as the chain and network an asset is paid on will take them.

Owns what a valid destination is per asset: Ethereum `0x` + 40 hex digits, with a valid
EIP-55 checksum when it is mixed case, never the zero address; Bitcoin addresses of the
asset's configured network only (mainnet, testnet or regtest version bytes and bech32
prefixes, never another coin's), bech32 only where the asset allows SegWit; bank
accounts as IBANs (mod-97 checked). Also the bank deposit references users are bound
to. `address_problem` answers why an address is refused, or None.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # assets imports this module's grammars
    from core.assets import Asset

ETH_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
ETH_ZERO_ADDRESS = "0x" + "0" * 40
IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}")
# A bank deposit reference: what a payer writes in the end-to-end id or remittance text.
# At least 6 characters, so that no common word or short number matches by chance.
BANK_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-./]{5,34}")
# bitcoinlib's network name for a base58 address, and the bech32 prefix, per network
# (bitcoinlib's own "regtest" uses mainnet base58 prefixes; Bitcoin Core's regtest uses
# testnet's, which is what a regtest node accepts)
BITCOIN_NETWORKS = {
    "bitcoin": ("bitcoin", "bc"),
    "testnet": ("testnet", "tb"),
    "regtest": ("testnet", "bcrt"),
}


def iban_is_valid(iban: str) -> bool:
    if not IBAN.fullmatch(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


def ethereum_problem(address: str) -> str | None:
    from eth_utils import is_checksum_address

    if not ETH_ADDRESS.fullmatch(address):
        return "not an Ethereum address (0x and 40 hex digits)"
    if address.lower() == ETH_ZERO_ADDRESS:
        return "the zero address burns what it receives"
    body = address[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(address):
        return "mixed-case address with a wrong EIP-55 checksum"
    return None


def bitcoin_problem(address: str, network: str, segwit: bool) -> str | None:
    from bitcoinlib.keys import Address

    if not re.fullmatch(r"[A-Za-z0-9]{14,90}", address):
        return "not a Bitcoin address"
    base58_network, bech32_prefix = BITCOIN_NETWORKS[network]
    if address.isupper() and address.lower().startswith(bech32_prefix + "1"):
        address = address.lower()  # bech32 is case-insensitive (upper case for QR codes)
    try:
        parsed = Address.parse(address)
    except Exception:  # bitcoinlib raises several kinds for a bad address
        return "not a Bitcoin address (bad encoding or checksum)"
    if parsed.encoding == "bech32":
        if not address.lower().startswith(bech32_prefix + "1"):
            return f"not an address of the Bitcoin {network} network"
        if not segwit:
            return "SegWit (bech32) addresses are not accepted for this asset"
        return None
    if parsed.network.name != base58_network:
        return f"not an address of the Bitcoin {network} network ({parsed.network.name})"
    return None


def address_problem(asset: Asset, address: object) -> str | None:
    """Why `address` cannot receive a payout of `asset`, or None if it can."""
    if not isinstance(address, str) or not address:
        return "is required (a non-empty string)"
    if asset.chain == "ethereum":
        return ethereum_problem(address)
    if asset.chain == "bitcoin":
        return bitcoin_problem(address, asset.network, asset.segwit)
    if asset.chain == "bank":
        return None if iban_is_valid(address) else "not a valid IBAN"
    return f"no addresses on chain {asset.chain!r}"


def binding_problem(chain: str, address: object, network: str = "bitcoin") -> str | None:
    """Why `address` cannot be bound as a deposit address (or reference) on `chain`."""
    if not isinstance(address, str) or not address:
        return "is required (a non-empty string)"
    if chain == "ethereum":
        return ethereum_problem(address)
    if chain == "bitcoin":
        return bitcoin_problem(address, network, segwit=True)
    if chain == "bank":
        if not BANK_REFERENCE.fullmatch(address):
            return "a bank deposit reference is 6 to 35 letters, digits and _ - . /"
        return None
    return f"unknown chain {chain!r}"
