-- Who made an operator's change: an API key's id and label, or the local owner (never a key).

ALTER TABLE audit_log ADD COLUMN actor text;
