"""What the ledger teaches, as pure functions: calibrated acceptance and the pre-call router.

- `calibration`: per rung, thresholds on acceptance signals chosen so that, with probability at
  least 1 - delta over the calibration data, at most a share alpha of the answers the rung
  accepts are wrong (Learn-then-Test with binomial tail p-values and fixed-sequence testing
  ordered on a separate split: Angelopoulos et al. 2021; Laufer-Goldshtein et al. 2023).
- `router`: a TF-IDF + logistic-regression scorer rebuilt from plain JSON (never pickle), that
  predicts before the call whether the cheap rung will be right.
- `artefact`: the versioned file that holds both, named by the routing file with its sha256.

No numpy, no scikit-learn here: a worker scores with the standard library only. Fitting (which
needs scikit-learn) lives in batchrouter/learning/.
"""
