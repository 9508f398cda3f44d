"""Evaluation: streaming metrics (``metrics``), the model runner (``runner``), OOD threshold
calibration (``calibrate``, ``dudes calibrate``) and the report (``report``, ``dudes evaluate``).
"""
