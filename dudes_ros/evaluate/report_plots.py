"""The PNG plots of the ``dudes evaluate`` report, drawn from the results dict (metrics.json).

Every plot is written atomically and named by its file name, which the Markdown links to.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from dudes_ros.files import atomic_write_bytes
from dudes_ros.labels import IGNORE_INDEX, colorize
from dudes_ros.plots import pyplot


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


def write_plots(results: dict, examples: list[dict], out: Path) -> dict[str, str]:
    """The report's plots written into ``out``: ``{title: file name}``, in report order
    (reliability only for models with probabilities, anomaly ROC/PR only with anomaly
    pixels, examples only when given)."""
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
    return plots
