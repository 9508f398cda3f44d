"""The demo: the real node on a synthetic drive (or your bag or images); PNGs + summary
(``run_demo``; the command line is ``dudes demo``, ``dudes_ros.commands.demo``).


1. start the dudes node (real rclpy, backend auto -> ONNX Runtime on a CPU machine) in its own
   process, thresholds from the model's manifest unless overridden;
2. meanwhile render a synthetic drive in which a real-photo anomaly enters the road and later
   leaves (or open ``--bag``/``--images``);
3. publish the drive as a camera from this process, paced so the node processes every frame,
   and record inputs and outputs to an MCAP bag;
4. write OUTPUT/ (contact_sheet.png, ood_timeline.png, summary.json, bag/, node.log) and print
   the summary. OUTPUT appears all at once (built in a sibling folder, renamed on success).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dudes_ros.bag.staging import staged_output
from dudes_ros.demo.sources import Drive
from dudes_ros.ood import DEFAULT_CLEAR_AFTER, DEFAULT_RAISE_AFTER

KIND = "dudes demo"
NAMESPACE = "/dudes_demo"
SUMMARY_FILE = "summary.json"
CONTACT_SHEET = "contact_sheet.png"
TIMELINE = "ood_timeline.png"
BAG_DIR = "bag"
NODE_LOG = "node.log"




@dataclass(frozen=True)
class DemoOptions:
    """Choices of a ``run_demo`` (defaults = the command line's)."""

    output: Path = Path("demo_output")  # folder written (replaced when a previous demo's)
    overwrite: bool = False  # replace ``output`` even when it is not a previous demo output
    rate: float = 10.0  # camera rate in Hz; frames wait for the node
    pixel_threshold: float | None = None  # None: the manifest's calibration
    frame_threshold: float | None = None  # None: the manifest's calibration
    raise_after: int = DEFAULT_RAISE_AFTER  # frames over threshold before the alarm
    clear_after: int = DEFAULT_CLEAR_AFTER  # frames under threshold before it clears
    startup_timeout: float = 120.0  # seconds for the node to come up
    frame_timeout: float = 30.0  # seconds for one frame's outputs
    progress: bool = True  # tqdm progress bar


def resolve_model(model: Path | None) -> Path | None:
    """``model`` or the bundled student; None when the bundled one is not there."""
    if model is not None:
        return model
    from dudes_ros.resources import bundled_model

    bundled = bundled_model()
    return bundled if bundled.is_file() and bundled.with_suffix(".json").is_file() else None


def ood_parameters(model: Path, pixel: float | None, frame: float | None, raise_after: int,
                   clear_after: int) -> tuple[dict[str, float | int], dict]:
    """The node's ``ood.*`` parameters (explicit values win over the manifest's calibration)
    and the manifest (``{}`` for a checkpoint). Raises ``ConfigError`` naming a threshold
    that neither gives."""
    from dudes_ros.perception import OodConfig
    from dudes_ros.runtime.manifest import load_manifest, ood_calibration

    ood = OodConfig.from_calibration(ood_calibration(model), pixel_threshold=pixel,
                                     frame_threshold=frame, raise_after=raise_after,
                                     clear_after=clear_after)
    values: dict[str, float | int] = {f"ood.{name}": getattr(ood, name) for name in (
        "pixel_threshold", "frame_threshold", "raise_after", "clear_after")}
    manifest = load_manifest(model) if model.suffix == ".onnx" else {}
    return values, manifest


def node_parameters(model: Path, ood: dict[str, float | int]) -> dict[str, object]:
    """Parameters of the demo's node: reliable input (every frame delivered), no age limit
    (every frame processed, however slow the machine), backend and device auto."""
    return {"model": str(model.resolve()), "backend": "auto", "device": "auto",
            "qos.reliability": "reliable", "qos.depth": 1, "max_input_age": 0.0, **ood}


def check_demo_output(output: Path, overwrite: bool) -> None:
    """Refuse an existing ``output`` that is not a previous demo output, unless ``overwrite``."""
    if not output.exists() or overwrite:
        return
    try:
        previous = json.loads((output / SUMMARY_FILE).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous != KIND:
        raise FileExistsError(f"{output} exists and is not a previous demo output; choose "
                              "another --output or pass --overwrite to replace it")


def _ros_environment() -> None:
    """Large-image transport profile (under the names this distribution's Fast DDS reads) and
    same-host discovery unless the user set their own."""
    from dudes_ros.resources import config_path
    from dudes_ros.ros.distro import use_profile

    profile = config_path("fastdds_large_images.xml")
    if profile.is_file():
        use_profile(str(profile))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def run_demo(model: Path, make_drive: Callable[[], Drive],
             options: DemoOptions = DemoOptions()) -> dict:
    """The whole demo (see the module doc) of ``model`` on the drive ``make_drive()`` returns
    (rendered while the node starts); returns the summary written to summary.json."""
    from dudes_ros.demo.camera import play
    from dudes_ros.demo.node_process import NodeProcess, node_command
    from dudes_ros.demo.report import contact_sheet_png, summarize, timeline_png

    ood, manifest = ood_parameters(model, options.pixel_threshold, options.frame_threshold,
                                   options.raise_after, options.clear_after)
    check_demo_output(options.output, options.overwrite)
    _ros_environment()
    parameters = node_parameters(model, ood)
    start = time.monotonic()
    with staged_output(options.output, overwrite=True) as built:
        built.mkdir()
        with NodeProcess(node_command(NAMESPACE, parameters), built / NODE_LOG) as node:
            drive = make_drive()  # renders while the node starts
            render_s = time.monotonic() - start
            print(f"dudes demo: playing {drive.name}: {drive.count} frames at up to "
                  f"{options.rate:g} Hz", flush=True)
            played = play(drive, node, built / BAG_DIR, namespace=NAMESPACE, rate=options.rate,
                          startup_timeout=options.startup_timeout,
                          frame_timeout=options.frame_timeout, progress=options.progress)
            node_exit = node.stop()
        summary = summarize(played.records, drive.in_view, options.raise_after)
        summary.update(
            kind=KIND, model=str(model), model_name=manifest.get("model_name", model.stem),
            backend=played.diagnostics.get("backend"), node_parameters=parameters,
            node_exit_code=node_exit, node_diagnostics=played.diagnostics,
            unmatched_outputs=played.unmatched, drive={"name": drive.name, **drive.details},
            bag={"path": BAG_DIR, "storage": "mcap", "namespace": NAMESPACE},
            timings_s={"render_while_node_starts": round(render_s, 2),
                       "node_connected": round(played.connect_s, 2),
                       "stream": round(played.stream_s, 2)},
            files={"contact_sheet": CONTACT_SHEET, "timeline": TIMELINE, "bag": BAG_DIR,
                   "node_log": NODE_LOG})
        title = (f"{summary['model_name']} on {drive.name}: frame OOD score, pixel threshold "
                 f"{ood['ood.pixel_threshold']:.3g}")
        timeline_png(built / TIMELINE, summary, title)
        summary["contact_sheet_frames"] = contact_sheet_png(built / CONTACT_SHEET,
                                                            built / BAG_DIR, NAMESPACE, summary)
        summary["timings_s"]["total"] = round(time.monotonic() - start, 2)
        (built / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
