"""The maturity × activity matrix: the rules (``rules``), the recompute (``recompute``), the matrix report and its picture.

Public face: ``rules.Thresholds``, ``recompute.recompute_all`` / ``recompute_job``, ``matrix_report``, ``matrix_picture``.
"""
