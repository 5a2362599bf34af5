"""What the demo's scenario runs on: its assets, its bank accounts, the bank files it sends.

The asset catalogue (ETH, an ERC20 deployed by the demo, BTC on regtest, two bank-backed
currencies, the Ethereum deposit-address pool and where its sweeps go) and the camt.053
statement the bank sends at end of day.
"""

from __future__ import annotations

from decimal import Decimal

AED_ACCOUNT = "AE070331234567890123456"
USD_ACCOUNT = "GB33BUKB20201555555555"
LEVELS = '["20:0", "50:1", "200:2", "500:3", "1000:4", "2000:5", "3000:6", "5000:8", "*:12"]'


BTC_ASSET = """
[assets.BTC]
unit = "BTC"
chain = "bitcoin"
network = "regtest"
segwit = false
decimals = 8
fee_fixed = "0.0001"
min_withdrawal = "0.0005"
rounding_tolerance = "0.00000001"
confirmation_levels_usd = ["100:0", "500:1", "1000:2", "*:3"]
"""


# the hot wallet starts with 1,000 ETH (`tokengine.chain_nodes`): bob's 0.1 ETH fits below
# 1,001, carol's 2 would take it above and go to the cold wallet; alice's 0.005 stays
HOT_MAX_BALANCE = "1001"
MIN_COLLECTION = "0.01"


def demo_assets(token_address: str, eth_pool_xpub: str, cold_wallet: str) -> str:
    return (
        BTC_ASSET
        + f"""
[pools.ethereum]
xpub = "{eth_pool_xpub}"
size = 20
low_water = 5
binding_seconds = 86400

[wallets.ethereum]
cold = "{cold_wallet}"

[wallets.ethereum.ETH]
max_balance = "{HOT_MAX_BALANCE}"
min_collection_amount = "{MIN_COLLECTION}"

[assets.ETH]
unit = "ETH"
chain = "ethereum"
decimals = 18
fee_fixed = "0.0005"
failure_fee = "0.0001"
min_withdrawal = "0.001"
rounding_tolerance = "0.000000000000000001"
confirmation_levels_usd = {LEVELS}

[assets.TOK]
unit = "USD"
chain = "ethereum"
token_standard = "erc20"
contract = "{token_address}"
decimals = 6
fee_fixed = "1"
failure_fee = "0.5"
min_withdrawal = "5"
rounding_tolerance = "0.000001"
confirmation_levels_usd = {LEVELS}

[assets.xUSD]
unit = "USD"
chain = "bank"
bank_account = "{USD_ACCOUNT}"
currency = "USD"
decimals = 2
fee_fixed = "0.50"
min_withdrawal = "10.00"
rounding_tolerance = "0.01"

[assets.xAED]
unit = "AED"
chain = "bank"
bank_account = "{AED_ACCOUNT}"
currency = "AED"
decimals = 2
fee_fixed = "1.00"
min_withdrawal = "10.00"
rounding_tolerance = "0.01"
"""
    )


def camt053(
    message_id: str,
    account: str,
    day: str,
    opening: Decimal,
    closing: Decimal,
    entries: list[tuple[str, str | None, str, str]],
) -> bytes:
    """A camt.053.001.08 statement (what a bank sends at end of day)."""
    booked = "".join(
        f"""<Ntry><Amt Ccy="AED">{amount}</Amt><CdtDbtInd>{cd}</CdtDbtInd>
<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>
<AcctSvcrRef>{ref}</AcctSvcrRef><BkTxCd><Prtry><Cd>DEMO</Cd></Prtry></BkTxCd>
<NtryDtls><TxDtls><Refs><EndToEndId>{e2e or "NOTPROVIDED"}</EndToEndId></Refs></TxDtls>
</NtryDtls></Ntry>"""
        for ref, e2e, cd, amount in entries
    )

    def balance(code: str, value: Decimal) -> str:
        cd = "CRDT" if value >= 0 else "DBIT"
        return (
            f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="AED">'
            f"{abs(value):.2f}</Amt><CdtDbtInd>{cd}</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>"
        )

    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>{message_id}</MsgId><CreDtTm>{day}T23:59:00</CreDtTm></GrpHdr>
<Stmt><Id>{message_id}-1</Id><CreDtTm>{day}T23:59:00</CreDtTm>
<Acct><Id><IBAN>{account}</IBAN></Id><Ccy>AED</Ccy></Acct>
{balance("OPBD", opening)}{balance("CLBD", closing)}{booked}
</Stmt></BkToCstmrStmt></Document>""".encode()
