-- A payout's network fee may be in another asset than the payout (an ERC20 payout's gas
-- is paid in ETH): the fee's asset is kept beside it (issue 23). NULL: the payout's asset.

ALTER TABLE payouts ADD COLUMN network_fee_asset text;
