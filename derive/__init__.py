"""pgverify.derive: the policy-gradient derivation as SymPy data (no numerics, no verify)."""
