"""The papers' numbers, to print beside ours (from ../shared/PAPER.md; section and source tag given).

Tags: [NB] stored notebook output of the original code, [SIM] Monte-Carlo with the original generators,
[CODE] read from the original configuration, [DER] arithmetic on [NB]. These are the anchors we compare
against; nothing here is a result of this project.
"""

from __future__ import annotations

# §C.3 [CODE]: total vocabulary size per (input, output) encoding pair
VOCAB_SIZE = {("FP15", "P1000"): 30_329, ("FP15", "FP15"): 29_128, ("P1000", "P1000"): 1_328,
              ("B1999", "B1999"): 2_329, ("P10", "P10"): 338}

# §C.4 [CODE]: sequence lengths without the two boundary words, (object, encoding) -> tokens
SEQUENCE_LENGTH = {
    ("5x5 input", "P10"): 127, ("5x5 input", "P1000"): 77, ("5x5 input", "B1999"): 52, ("5x5 input", "FP15"): 27,
    ("5 eigenvalues", "P10"): 27, ("5 eigenvalues", "P1000"): 17, ("5 eigenvalues", "B1999"): 12,
    ("5 eigenvalues", "FP15"): 7,
    ("5x5 eigen-decomposition", "P10"): 152, ("5x5 eigen-decomposition", "P1000"): 92,
    ("5x5 eigen-decomposition", "B1999"): 62, ("5x5 eigen-decomposition", "FP15"): 32,
    ("6x6 input", "P10"): 182, ("6x6 input", "P1000"): 110, ("6x6 input", "B1999"): 74, ("6x6 input", "FP15"): 38,
    ("6x6 eigen-decomposition", "P10"): 212, ("6x6 eigen-decomposition", "P1000"): 128,
    ("6x6 eigen-decomposition", "B1999"): 86, ("6x6 eigen-decomposition", "FP15"): 44,
}

# §A.6 [SIM]: 20,000 5x5 matrices per spectrum, A = 10
SPECTRA_TABLE = {  # E[l^2], P(max|l| > 30.9), P(min gap < 0.5), P(all l > 0), max |entry| seen
    "semicircle": (166.5, 0.001, 0.010, 0.000, 10.0),
    "uniform": (166.7, 0.000, 0.203, 0.031, 21.6),
    "gaussian": (166.2, 0.080, 0.199, 0.032, 45.5),
    "laplace": (166.9, 0.156, 0.241, 0.033, 71.7),
    "positive": (166.9, 0.001, 0.222, 1.000, 26.1),
    "positive2": (165.0, 0.158, 0.420, 1.000, 67.3),
    "marcenko": (546.2, 0.897, 0.052, 1.000, 44.9),
}
SPECTRA_COLUMNS = ("E[l^2]", "P(max|l|>30.9)", "P(min gap<0.5)", "P(all l>0)", "max|entry|")
SEMICIRCLE_MAXABS_P999 = 30.9  # 99.9th percentile of max|l| under the 5x5 semicircle ensemble

# §A.5 [SIM]: cond(A) of 5x5 iid U[-10, 10] matrices (20,000 samples)
COND_A_QUANTILES = {50: 12.7, 90: 68.6, 98: 336.0, 99: 629.0, 99.9: 7564.0}
COND_A_TAIL = {10: 0.60, 20: 0.33, 50: 0.137, 100: 0.068, 1000: 0.006}  # P(cond(A) > t)

# Encoding ceiling: the exact answer rounded to P1000, verified against the FP15-rounded input
# (§A.3, §A.4, §A.5 [SIM]); task, n -> {tolerance: pass rate}
CEILING_P1000 = {
    ("inversion", 5): {0.005: 0.265, 0.01: 0.655, 0.02: 0.863, 0.05: 0.925},
    ("eigenvectors", 5): {0.005: 0.9996, 0.01: 1.0, 0.02: 1.0, 0.05: 1.0},
    ("eigenvectors", 6): {0.005: 0.998, 0.01: 1.0, 0.02: 1.0, 0.05: 1.0},
}
# §A.5 [SIM]: at 5%, cond(A) of the ceiling's passes (mean, 98th pct, max) and failures (mean, 2nd pct, min)
CEILING_INVERSION_COND = {"pass": (18.6, 81.3, 311.0), "fail": (685.0, 65.5, 48.9)}

# §A.3 [NB]: E1, the 5x5 eigen-decomposition model at ~92 % (50,000 Wigner test matrices). Per tolerance, %
# of ALL predictions with error below it: accuracy, eigenvalues, eigenvector norms, orthogonality (adjacent proxy)
E1_TABLE = {
    0.005: (0.012, 96.132, 94.644, 51.666), 0.01: (9.194, 99.944, 98.864, 83.922),
    0.02: (76.25, 99.994, 99.61, 90.75), 0.05: (91.96, 99.994, 99.88, 93.616),
    0.075: (93.366, 99.996, 99.946, 94.554), 0.10: (94.07, 99.996, 99.964, 95.15),
    0.15: (94.896, 99.996, 99.98, 95.878), 0.20: (95.454, 99.996, 99.986, 96.42),
    0.25: (95.84, 99.996, 99.992, 96.84),
}
E1_TEST_SIZE = 50_000
# §A.3 [NB]: cond(V_hat) at the 5 % split: successes mean / 98th pct / max, failures 2nd pct / min
E1_COND_V = {"success mean": 1.010235, "success 98th pct": 1.031159, "success max": 1.109708,
             "failure 2nd pct": 1.042245, "failure min": 1.020248}
E1_COND_V_THRESHOLD = 1.035  # §G4: "fail iff cond(V_hat) > 1.035" has <= ~2 % error on each class [DER]

# §G [DER]: the failure-conditional shares the stored marginals imply, in % of the 4,020 failures at 5 %.
# These are lower bounds (G1, G2) or an upper bound (G3) from marginals, not joint counts.
G_SHARES = {
    "G1": 99.93,  # >= 4,017/4,020 failures with eigenvalues within 2 %
    "G1b": 99.30,  # >= 3,992/4,020 within 1 %
    "G2": 98.51,  # >= 3,960/4,020 with every norm within 5 % of 1
    "G2b": 95.15,  # >= within 2 %
    "G3": 79.4,  # <= 3,192/4,020 not orthogonal (adjacent abs-cosine >= 0.05)
    "G8": 0.012,  # eigenvalue or norm error >= 25 %: 2 and 4 of 50,000 predictions, so at most 6 (0.012 %)
}

# The claims README shows (the ids of figures/*_claims.csv): the compact headline table, in this order, and the
# claims behind each result's two-line verdict (section key -> ids; README has a verdict block per key).
HEADLINE_CLAIMS: tuple[str, ...] = (
    "G1", "G2", "G3",  # result 1: failures are roughly right
    "G4 fnr", "G5 ratio", "predict eigenvectors all",  # result 2: failures are predictable
    "G6a semicircle", "G6b laplace", "G7 50%",  # result 3: the training distribution matters
    "A1", "A5",  # addition: 2-layer exact, 1-layer fails on cascades
    "B3", "B4", "B6",  # addition circuits
    "C5",  # subtraction and mixed models: the ins1 head start
)
RESULT_CLAIMS: dict[str, tuple[str, ...]] = {
    "result1": ("G1", "G1b", "G2", "G2b", "G3", "G8", "eigenvalues near-miss", "inversion near-miss"),
    "result2": ("G4 fpr", "G4 fnr", "G4 max", "G5 ratio", "G5 tail", "predict eigenvectors problem",
                "predict eigenvectors solution", "predict eigenvectors all"),
    "result3": ("G6a semicircle", "G6a positive", "G6b laplace", "G6b positive", "G7 50%", "G7 80%",
                "in-distribution semicircle", "in-distribution laplace"),
    "arithmetic": ("A1", "A2", "A3", "A4", "A5", "A6"),
    "circuits": ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9"),
    "subtraction": ("C1", "C2", "C3", "C4", "C5", "C6", "C6b", "C7", "C8", "C9"),
}
