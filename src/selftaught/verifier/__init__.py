"""V-STaR's verifier (Hosseini et al. 2024) for a STaR run: pairs of the generator's own right and wrong
solutions (`pairs`), DPO training with TRL (`train`), the response-only score (`score`), and best-of-k
evaluation with the unbiased Verifier@k estimator (`estimate`, `bestofk`).

Heavy imports (TRL, datasets) happen inside the functions that need them.
"""
