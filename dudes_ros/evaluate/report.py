"""The ``dudes evaluate`` report: ``metrics.json``, ``report.md`` and its PNG plots.

``write_report`` writes into one folder: ``metrics.json``, ``report.md``, ``reliability.png``,
``removal_curve.png``, ``errors_roc_pr.png``, ``anomaly_roc_pr.png`` (when there are anomaly
pixels to score) and ``examples.png`` (plots: ``report_plots``). Every file is written
atomically. The command line is ``dudes_ros.commands.evaluate``.

Anomaly (OOD) scores need pixels marked as anomalies, which Cityscapes has none of: either
``<stem>_gtFine_anomalyMask.png`` beside the labels of ``--data`` (the synthetic scenes have
them), or a public anomaly benchmark given with ``--anomaly-data DIR`` (images plus per-image
OOD masks, 1 = anomaly, 0 = in-distribution, 255 = void; ``dudes_ros.data.anomaly_benchmark``),
whose scores then fill the comparison's anomaly columns.
"""

from __future__ import annotations

import json
from pathlib import Path

from dudes_ros.evaluate.report_plots import write_plots
from dudes_ros.files import atomic_write_bytes
from dudes_ros.labels import CLASS_NAMES


def _fmt(v: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "n/a" if v is None else f"{scale * v:.{digits}f}"


def comparison_markdown(rows: list[dict]) -> str:
    """The comparison table as Markdown (percentages for mIoU, ranking scores as 0-1)."""
    head = ("| method | passes | latency ms | mIoU % | ECE | error AUROC | error AUPR | "
            "PAvPU (t) | anomaly AUROC | anomaly AP | FPR@95 | frame AUROC |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['forward_passes']} | {_fmt(r['latency_ms'], digits=1)} | "
            f"{_fmt(r['miou'], 100, 1)} | {_fmt(r['ece'], digits=4)} | "
            f"{_fmt(r['error_auroc'])} | {_fmt(r['error_aupr'])} | "
            f"{_fmt(r['pavpu'])} ({_fmt(r['pixel_threshold'], digits=4)}) | "
            f"{_fmt(r['anomaly_auroc'])} | {_fmt(r['anomaly_ap'])} | "
            f"{_fmt(r['anomaly_fpr95'])} | {_fmt(r['frame_auroc'])} |")
    return "\n".join(lines)


ANOMALY_DATA_HINT = ("pass --anomaly-data DIR: a folder of images plus per-image OOD masks "
                     "(DIR/images/<name>.png|.jpg, DIR/labels/<name>.png; 1 = anomaly, "
                     "0 = in-distribution, 255 = void), as Fishyscapes Lost & Found and Road "
                     "Anomaly are distributed")


def anomaly_note(results: dict) -> str:
    """One line saying where the anomaly columns come from, or why they are n/a."""
    benchmark = results.get("anomaly_benchmark")
    if benchmark:
        root = results.get("data", {}).get("anomaly_data", "the anomaly data")
        return (f"Anomaly columns: {benchmark['frames']} frames of {root} (pixels of its OOD "
                "masks against its in-distribution pixels; frame AUROC needs frames without "
                "anomalies too).")
    positives = any(ms["ood"]["pixel"]["positives"] for ms in results["methods"].values())
    if positives:
        return "Anomaly columns: the anomaly masks (*_gtFine_anomalyMask.png) of the data."
    return ("Anomaly AUROC, AP, FPR@95 and frame AUROC are n/a: the data has no anomaly pixels "
            "(no *_gtFine_anomalyMask.png beside its labels; Cityscapes has none). To score "
            "anomalies, " + ANOMALY_DATA_HINT + ".")


def _pavpu_note(results: dict) -> str:
    """What the PAvPU column's thresholds are, stating the student's only when it has one."""
    point = results.get("operating_point") or {}
    if point.get("pixel") is None:
        return ("The student has no operating threshold here (none given, none in the model's "
                "manifest: run `dudes calibrate` on the deployed model first), so every "
                "method's PAvPU is at its own PAvPU-optimal threshold (in brackets).")
    others = ("; the other methods' at their own PAvPU-optimal threshold (in brackets)"
              if len(results["methods"]) > 1 else "")
    return (f"The student's PAvPU is at its operating pixel threshold {point['pixel']:.4g} "
            f"({point['pixel_source']}){others}.")


def _markdown(results: dict, plots: dict[str, str]) -> str:
    data = results.get("data", {})
    lines = ["# DUDES evaluation report", "",
             f"Data: `{data.get('root', '?')}` split `{data.get('split', '?')}`, "
             f"{results['frames']} frames; network input {results['input_size']}; "
             f"device {data.get('device', '?')}. Student: {data.get('student', '?')}.", "",
             "## Comparison", "", comparison_markdown(results["comparison"]), "",
             "Ranking scores (AUROC, AP, FPR@95) come from 10,000-bin histograms; the largest "
             "possible AUROC deviation from unbinned values is stored per method as "
             "`auroc_bin_error` in metrics.json. " + _pavpu_note(results), "",
             anomaly_note(results), ""]
    agreement = results.get("student_vs_teacher")
    if agreement:
        lines += ["## Student vs teacher uncertainty", "",
                  f"Pixel-wise Pearson r {_fmt(agreement['pearson_r'], digits=4)}, "
                  f"RMSE {_fmt(agreement['rmse'], digits=4)} over {agreement['pixels']} pixels;"
                  f" mean |class gap| {_fmt(agreement['mean_abs_class_gap'], digits=4)}.", "",
                  "| class | mean u_S | mean u_T | gap |", "|---|---|---|---|"]
        for name, v in agreement["per_class"].items():
            lines.append(f"| {name} | {_fmt(v['student'], digits=4)} | "
                         f"{_fmt(v['teacher'], digits=4)} | {_fmt(v['gap'], digits=4)} |")
        lines.append("")
    lines += ["## Per-class IoU (%)", "", "| class | " + " | ".join(results["models"]) + " |",
              "|---|" + "---|" * len(results["models"])]
    for cls in CLASS_NAMES:
        cells = [_fmt(ms["segmentation"]["iou"][cls], 100, 1)
                 for ms in results["models"].values()]
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    lines.append("")
    student_ood = results["methods"].get("student_u", {}).get("ood", {}).get("frame", {})
    if student_ood.get("frame_threshold") is not None:
        lines += ["## Operating point (student)", "",
                  f"Pixel threshold {student_ood['pixel_threshold']:.4g}, frame threshold "
                  f"{student_ood['frame_threshold']:.4g}: false-alarm rate on in-domain frames "
                  f"{_fmt(student_ood.get('false_alarm_rate'), digits=4)}, detection rate on "
                  f"anomalous frames {_fmt(student_ood.get('detection_rate'), digits=4)}.", ""]
    lines += ["## Plots", ""] + [f"![{title}]({name})" for title, name in plots.items()]
    return "\n".join(lines) + "\n"


def write_report(results: dict, examples: list[dict], report_dir: str | Path) -> Path:
    """Write metrics.json, the plots and report.md into ``report_dir``; returns report.md."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(results, examples, out)
    atomic_write_bytes(out / "metrics.json", (json.dumps(results, indent=1) + "\n").encode())
    report = out / "report.md"
    atomic_write_bytes(report, _markdown(results, plots).encode())
    return report
