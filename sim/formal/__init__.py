"""Bounded proofs (SymbiYosys) of the stream contract for the blocks in ``hw.common``.

``python -m sim.formal`` runs them all (``make formal``); see :mod:`sim.formal.proofs` for what
each proof asserts and :mod:`sim.formal.runner` for how the YoWASP tools are driven.
"""

from .proofs import PROOFS, Proof, get_proof, proof_names
from .runner import ProofResult, run_proof, write_summary

__all__ = ["PROOFS", "Proof", "ProofResult", "get_proof", "proof_names", "run_proof",
           "write_summary"]
