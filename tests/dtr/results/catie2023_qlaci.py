"""Published qlaci output on the simulated ADHD SMART data of the CATIE2023 workshop.

Provenance
----------
- Source: github.com/mferlic/CATIE2023 @ 456561bf7a766eb6bbdffd1138a2cf75ca1fba49
  (2023-03-07), file ``demo/Q-learning.html`` (Quarto render of ``demo/Q-learning.qmd``),
  section "Qlaci Package", printed ``q1`` (``$stg1coeff``, ``$stg2coeff``, ``$ci1``).
  Licence of that repository: MIT.
- Data: the same commit's ``data-raw/adhd-simulated-2023.csv``, kept in
  ``shared/reference-data/adhd_CATIE2023/adhd_CATIE2023_commit456561b.csv`` (the repository's
  HEAD data were regenerated later and do NOT reproduce these numbers).
- Call that produced them (R, qlaci): missing values set to 0; ``odd``, ``severity``,
  ``race`` grand-mean centred (``.c``), ``priormed`` uncentred;
  ``H10 = (1, odd.c, severity.c, race.c, priormed)``, ``H11 = (A1 = 1, A1:priormed)``,
  ``Y1 = 0``, ``H20 = (1, odd.c, severity.c, race.c, priormed, A1, adherence)``,
  ``H21 = (A2 = 1, A1:A2 = A1, A2:adherence)``, ``S = 1 - R`` (non-responders re-randomized),
  contrasts ``c1`` below, ``nb = 1000`` bootstrap draws (adaptive confidence intervals,
  Laber et al. 2014). Numbers are as printed (3 decimals; intervals 2-3 decimals).
"""

STAGE1 = {  # term -> estimate; qlaci names the interaction "A1:priormed"
    "Intercept": 3.545, "odd_c": -0.528, "severity_c": -0.951, "race_c": 0.100,
    "priormed": -0.105, "A1": 0.700, "A1:priormed": -1.026,
}

STAGE2 = {
    "Intercept": 2.427, "odd_c": -0.588, "severity_c": -0.957, "race_c": 0.223,
    "priormed": -0.470, "A1": 0.348, "adherence": 0.470, "A2": -1.000, "A2:A1": -0.134,
    "A2:adherence": 1.658,
}

# rows of c1 (over Intercept, odd.c, severity.c, race.c, priormed, A1, A1:priormed)
CONTRASTS = {
    "Mean Y under bmod, prior med": ([1, 0, 0, 0, 1, 1, 1], 3.114, 2.28, 3.796),
    "Mean Y under med, prior med": ([1, 0, 0, 0, 1, -1, -1], 3.766, 3.07, 4.485),
    "Mean diff (bmod-med) for prior med": ([0, 0, 0, 0, 0, 2, 2], -0.652, -1.55, 0.321),
    "Mean Y under bmod, no prior med": ([1, 0, 0, 0, 0, 1, 0], 4.246, 3.72, 4.649),
    "Mean Y under med, no prior med": ([1, 0, 0, 0, 0, -1, 0], 2.845, 2.38, 3.227),
    "Mean diff (bmod-med) for no prior med": ([0, 0, 0, 0, 0, 2, 0], 1.400, 0.71, 1.986),
}
