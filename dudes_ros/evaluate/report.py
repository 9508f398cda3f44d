"""``dudes evaluate``: metrics JSON plus a Markdown report with PNG plots.

Writes into ``--report DIR``: ``metrics.json``, ``report.md``, ``reliability.png``,
``removal_curve.png``, ``errors_roc_pr.png``, ``anomaly_roc_pr.png`` (when there are anomaly
pixels to score) and ``examples.png``. Every file is written atomically.

Anomaly (OOD) scores need pixels marked as anomalies, which Cityscapes has none of: either
``<stem>_gtFine_anomalyMask.png`` beside the labels of ``--data`` (the synthetic scenes have
them), or a public anomaly benchmark given with ``--anomaly-data DIR`` (images plus per-image
OOD masks, 1 = anomaly, 0 = in-distribution, 255 = void; ``dudes_ros.data.anomaly_benchmark``),
whose scores then fill the comparison's anomaly columns.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from dudes_ros.argtypes import image_size, positive_int
from dudes_ros.errors import UsageError
from dudes_ros.files import atomic_write_bytes
from dudes_ros.inference.factory import BACKENDS
from dudes_ros.labels import CLASS_NAMES, IGNORE_INDEX, colorize
from dudes_ros.plots import pyplot

LOG = logging.getLogger(__name__)


def _save(fig: Figure, path: Path) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path.name


def plot_reliability(results: dict, path: Path) -> str:
    models = {name: ms for name, ms in results["models"].items() if ms["reliability"]}
    fig, axes = pyplot().subplots(1, len(models), figsize=(4 * len(models), 4), squeeze=False)
    for ax, (name, ms) in zip(axes[0], models.items(), strict=True):
        rel = ms["reliability"]
        edges = np.asarray(rel["edges"])
        acc = np.array([np.nan if v is None else v for v in rel["accuracy"]])
        ax.bar(edges[:-1], np.nan_to_num(acc), width=np.diff(edges), align="edge",
               edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "r--", label="perfect calibration")
        ece = ms["ece"]
        ax.set_title(f"{name}: ECE {ece:.4f}" if ece is not None else name)
        ax.set_xlabel("confidence (max probability)")
        ax.set_ylabel("accuracy")
        ax.legend(loc="upper left")
    return _save(fig, path)


def plot_removal(results: dict, path: Path) -> str:
    fig, ax = pyplot().subplots(figsize=(6, 4))
    for name, ms in results["methods"].items():
        curve = ms["errors"]["removal_curve"]
        ax.plot([100 * p["removed"] for p in curve],
                [np.nan if p["miou"] is None else 100 * p["miou"] for p in curve],
                marker="o", label=name)
    ax.set_xlabel("most uncertain pixels removed (%)")
    ax.set_ylabel("mIoU of the remaining pixels (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_roc_pr(results: dict, key: str, title: str, path: Path) -> str:
    fig, (roc_ax, pr_ax) = pyplot().subplots(1, 2, figsize=(10, 4))
    for name, ms in results["methods"].items():
        curves = ms[key]
        roc_ax.plot(curves["roc"]["fpr"], curves["roc"]["tpr"], label=name)
        pr_ax.plot(curves["pr"]["recall"], curves["pr"]["precision"], label=name)
    roc_ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title}: ROC")
    pr_ax.set(xlabel="recall", ylabel="precision", title=f"{title}: precision-recall")
    for ax in (roc_ax, pr_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


ERROR_LEGEND = (("error: wrong", "white"), ("error: right", "black"),
                ("error: void, not scored", "0.5"))
"""The error panel's grey levels: 1 wrong, 0 right, 0.5 void."""


def plot_examples(examples: list[dict], path: Path) -> str:
    """One row per example: image, ground truth, prediction, error map (legend below the
    figure), u_S and u_T on one colour scale per row (colour bar beside u_T)."""
    columns = ["image", "ground truth", "prediction", "error", "u_S", "u_T"]
    fig, axes = pyplot().subplots(len(examples), len(columns),
                             figsize=(2.6 * len(columns) + 0.6, 1.6 * len(examples) + 0.8),
                             squeeze=False)
    for row, ex in zip(axes, examples, strict=True):
        error = ((ex["pred"] != ex["gt"]) & (ex["gt"] != IGNORE_INDEX)).astype(np.float32)
        error[ex["gt"] == IGNORE_INDEX] = 0.5  # grey: void, not scored
        panels = [ex["image"], colorize(ex["gt"]), colorize(ex["pred"]), error, ex["u_s"],
                  ex.get("u_t")]
        # u_S and u_T share one colour scale per row, so that their panels compare
        u_max = max([1e-6] + [float(u.max()) for u in panels[4:] if u is not None])
        shown = None
        for ax, title, panel in zip(row, columns, panels, strict=True):
            ax.axis("off")
            is_u = title in ("u_S", "u_T")
            ax.set_title(f"{title} (0-{u_max:.2f})" if is_u else title, fontsize=8)
            if panel is None:
                continue
            if is_u:
                shown = ax.imshow(panel, cmap="inferno", vmin=0, vmax=u_max)
            elif title == "error":
                ax.imshow(panel, cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(panel)
            if title == "u_S" and ex.get("anomaly") is not None and ex["anomaly"].any():
                ax.contour(ex["anomaly"], levels=[0.5], colors="cyan", linewidths=0.6)
        bar = fig.colorbar(shown, ax=list(row[4:]), fraction=0.04, pad=0.02)
        bar.set_label("uncertainty", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    handles = [Patch(facecolor=colour, edgecolor="k", label=label)
               for label, colour in ERROR_LEGEND]
    if any(ex.get("anomaly") is not None and ex["anomaly"].any() for ex in examples):
        handles.append(Line2D([], [], color="cyan", lw=1, label="anomaly outline (u_S)"))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=len(handles), fontsize=7, frameon=False)
    return _save(fig, path)


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
    plots = {}
    if any(ms["reliability"] for ms in results["models"].values()):
        plots["reliability diagram"] = plot_reliability(results, out / "reliability.png")
    plots["uncertain pixels removed"] = plot_removal(results, out / "removal_curve.png")
    plots["misclassification ROC/PR"] = plot_roc_pr(results, "error_curves", "errors",
                                                    out / "errors_roc_pr.png")
    anomaly_source = results.get("anomaly_benchmark") or results
    if any(ms["ood"]["pixel"]["positives"] for ms in anomaly_source["methods"].values()):
        plots["anomaly ROC/PR"] = plot_roc_pr(anomaly_source, "ood_curves", "anomalies",
                                              out / "anomaly_roc_pr.png")
    if examples:
        plots["examples"] = plot_examples(examples, out / "examples.png")
    atomic_write_bytes(out / "metrics.json", (json.dumps(results, indent=1) + "\n").encode())
    report = out / "report.md"
    atomic_write_bytes(report, _markdown(results, plots).encode())
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=os.environ.get("CITYSCAPES_DATASET"),
                        help="Cityscapes-layout root (default: $CITYSCAPES_DATASET)")
    parser.add_argument("--split", default="val", help="split folder (default: val)")
    parser.add_argument("--anomaly-data", type=Path, default=None, metavar="DIR",
                        help="anomaly benchmark for the anomaly columns: DIR/images/ plus "
                             "per-image OOD masks DIR/labels/<name>.png (1 = anomaly, 0 = "
                             "in-distribution, 255 = void), as Fishyscapes Lost & Found or "
                             "Road Anomaly. Without it they come from the data's "
                             "*_gtFine_anomalyMask.png files (Cityscapes has none: n/a)")
    parser.add_argument("--model", type=Path, default=None,
                        help="deployed student ONNX (manifest beside it). Without --student it "
                             "is the student scored, through --backend as on the vehicle "
                             "(default: the bundled engines/dudes_student.onnx); its manifest's "
                             "OOD thresholds are the student's operating point")
    parser.add_argument("--student", type=Path, default=None,
                        help="score this student checkpoint (.pt, torch) instead of the "
                             "deployed model; adds its ECE and reliability diagram")
    parser.add_argument("--teacher", nargs="+", default=None, metavar="CHECKPOINT",
                        help="teacher member checkpoints (paths or globs, at least 2): adds "
                             "the teacher rows and the u_S vs u_T agreement")
    parser.add_argument("--member", type=Path, default=None,
                        help="the single-member baseline checkpoint (default: first teacher "
                        "member)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="backend that runs the deployed model (default: auto)")
    parser.add_argument("--pixel-threshold", type=float, default=None,
                        help="student pixel threshold (overrides the manifest)")
    parser.add_argument("--frame-threshold", type=float, default=None,
                        help="student frame OOD threshold (overrides the manifest)")
    parser.add_argument("--input-size", type=image_size, metavar="HxW", default=None,
                        help="network input size of the checkpoints (default: the student's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="evaluate the first N frames")
    parser.add_argument("--examples", type=int, default=4, help="example panels (default 4)")
    parser.add_argument("--report", required=True, help="output folder")


def _thresholds(args: argparse.Namespace, model: Path | None) -> dict:
    """The student's operating point: ``pixel``/``frame`` thresholds (None where unknown) and
    where each came from."""
    from dudes_ros.runtime.manifest import load_manifest

    ood = (load_manifest(model).get("ood") or {}) if model is not None else {}
    point = {}
    for key, given, flag in (("pixel", args.pixel_threshold, "--pixel-threshold"),
                             ("frame", args.frame_threshold, "--frame-threshold")):
        if given is not None:
            if not 0.0 <= given <= 1.0:
                raise UsageError(f"{flag} must lie in [0, 1], got {given}")
            point[key], point[f"{key}_source"] = given, f"given with {flag}"
        elif ood.get(f"{key}_threshold") is not None:
            point[key] = ood[f"{key}_threshold"]
            point[f"{key}_source"] = f"from the manifest of {model}"
        else:
            point[key], point[f"{key}_source"] = None, None
    return point


def _load_checkpoint(path: Path, role: str, flag: str, device):
    """The network of ``path``, refused (naming flag and file) unless it has ``role``."""
    from dudes_ros.model.checkpoint import CheckpointError, load_model

    net, ckpt = load_model(path, map_location=device)
    if ckpt["role"] != role:
        source = {"student": "dudes train-student", "member": "dudes train-teacher"}[role]
        raise CheckpointError(f"{flag} {path} is a {ckpt['role']!r} checkpoint; expected a "
                              f"{role!r} checkpoint from {source}")
    return net


def run(args: argparse.Namespace) -> int:
    import torch

    from dudes_ros.data.anomaly_benchmark import AnomalyBenchmark
    from dudes_ros.data.cityscapes import CityscapesDataset
    from dudes_ros.evaluate.runner import (
        DeployedStudent,
        Evaluator,
        evaluate_anomaly_dataset,
        evaluate_dataset,
        evaluation_device_of,
    )
    from dudes_ros.inference.factory import create_predictor
    from dudes_ros.model.ensemble import load_ensemble
    from dudes_ros.resources import bundled_model
    from dudes_ros.runtime.manifest import load_manifest

    if not args.data:
        raise UsageError("no data; pass --data ROOT or set CITYSCAPES_DATASET")
    deployed = (args.model or bundled_model()) if args.student is None else None
    point = _thresholds(args, args.model or deployed)
    device = evaluation_device_of(args.device)
    dataset = CityscapesDataset(args.data, args.split)
    anomaly_data = AnomalyBenchmark(args.anomaly_data) if args.anomaly_data else None
    with contextlib.ExitStack() as stack:
        if deployed is not None:
            if not deployed.is_file():
                raise UsageError(f"model {deployed} does not exist; expected a deployed "
                                 "student .onnx (dudes export) or pass --student CHECKPOINT")
            manifest = load_manifest(deployed)
            predictor = stack.enter_context(
                create_predictor(deployed, backend=args.backend, device=args.device))
            student = DeployedStudent(predictor, manifest["input"]["network_input_size"])
            described = (f"deployed model {deployed} "
                         f"({predictor.provenance().get('backend')} backend)")
        else:
            student = _load_checkpoint(args.student, "student", "--student", device)
            described = f"checkpoint {args.student}"
        teacher = (load_ensemble(args.teacher, map_location=device) if args.teacher else None)
        member = None
        if args.member:
            member = _load_checkpoint(args.member, "member", "--member", device)
        elif teacher is not None:
            member = teacher.members[0]
        size = args.input_size or tuple(student.input_size if deployed is not None
                                        else student.config.input_size)
        with torch.no_grad():
            evaluator = Evaluator(student, teacher, member, input_size=size, device=device,
                                  pixel_threshold=point["pixel"], frame_threshold=point["frame"],
                                  examples=args.examples)
            evaluate_dataset(evaluator, dataset, args.limit)
            if anomaly_data is not None:
                evaluate_anomaly_dataset(evaluator, anomaly_data, args.limit)
            results = evaluator.results()
    results["data"] = {"root": str(args.data), "split": args.split, "device": str(device),
                       "anomaly_data": str(args.anomaly_data) if args.anomaly_data else None,
                       "student": described, "teacher": args.teacher,
                       "member": (str(args.member) if args.member
                                  else "teacher member 0" if teacher else None)}
    results["operating_point"] = point
    report = write_report(results, evaluator.examples, args.report)
    print(comparison_markdown(results["comparison"]))
    print(anomaly_note(results))
    print(f"report: {report}")
    return 0
