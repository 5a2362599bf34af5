"""Stand-ins for what a deployment gets from outside: a bank's balance API, a token contract.

Used by the demo, the tests and the benchmarks only; nothing in production imports them
(an import contract checks it).
"""
