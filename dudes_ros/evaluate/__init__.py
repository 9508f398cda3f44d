"""Evaluation: streaming metrics (``metrics``, one module per metric), the model runner
(``runner``), OOD threshold calibration (``calibrate``) and the report (``report``: Markdown and
metrics.json, ``report_format``: metric results as JSON, ``report_plots``: the PNGs). The
``dudes evaluate`` and ``dudes calibrate`` command lines are in ``dudes_ros.commands``.
"""
