"""Audit trees, batch exports and the auditor's offline verifier (pure Python).

No database, no chain connection: the chain's facts come in as plain values
(``verify.ChainBatch``) read by whoever calls the verifier.
"""
