"""``dudes process-bag IN OUT``: run the student over a bag's image topics, write an output bag.

Every chosen image topic (raw or compressed; the camera is the topic's namespace; by default
every image topic except those named like this package's outputs, ``<ns>/segmentation``,
``<ns>/uncertainty``, ``<ns>/confidence`` and their ``/color``, which a bag recorded from the node
or by ``dudes demo`` also holds) goes through
the same ``PerceptionCore`` the node uses, so outputs match the node frame for frame (frames
are processed one at a time in bag order, one ``predict`` call each, so every camera's alarm
debounces over its own frames exactly as in the node). OUT is a
rosbag2 directory (sqlite3 or MCAP; default: the input's format, MCAP for ROS 1 input) holding
the node's output topics under each camera namespace with the input header stamps and bag
times, optionally the input images, plus two report files that rosbag2 readers ignore:

- ``OUT/summary.json``: frames per topic, rejected frames and why, latency and inference
  percentiles, throughput, the share of time spent outside inference, and the OOD alarm
  intervals in bag time (ns and seconds since the bag start);
- ``OUT/ood_timeline.png``: each camera's OOD score over bag time with the threshold and the
  alarm intervals.

OUT appears all at once: it is built in ``OUT.partial-<pid>`` and renamed on success; a failure
or Ctrl-C removes the partial folder, and an existing OUT is only replaced with --overwrite.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore
from tqdm import tqdm

from dudes_ros.bag.reader import BagError, BagReader, ImageTopic, check_ros2_layout, to_ros2_cdr
from dudes_ros.bag.staging import check_destination, staged_output
from dudes_ros.bag.summary import RunRecorder, format_summary
from dudes_ros.config import ConfigError
from dudes_ros.inference.factory import BACKENDS
from dudes_ros.inference.predictor import Predictor
from dudes_ros.messages.conversions import ImageRejected, compressed_to_rgb, image_to_rgb
from dudes_ros.messages.outputs import DEFAULT_IMAGES, IMAGE_TOPICS, OutputBuilder
from dudes_ros.messages.types import OUTPUT_TYPESTORE, ROSBAG2_VERSION
from dudes_ros.ood import DEFAULT_CLEAR_AFTER, DEFAULT_RAISE_AFTER
from dudes_ros.perception import OodConfig, PerceptionCore

LOG = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
TIMELINE_FILE = "ood_timeline.png"
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


@dataclass(frozen=True)
class ProcessOptions:
    """Choices of a ``process_bag`` run (defaults = the command line's)."""

    topics: tuple[str, ...] = ()  # image topics to process; empty: every camera image topic
    storage: str | None = None  # "sqlite3" | "mcap"; None: as the input, MCAP for ROS 1
    include_inputs: bool = False  # also copy the processed input images into OUT
    color: bool = False  # also write <ns>/segmentation/color (rgb8 palette)
    overwrite: bool = False  # replace an existing OUT
    progress: bool = True  # tqdm progress bar on stderr


def is_output_topic(topic: ImageTopic) -> bool:
    """Whether an image topic is named like one of this package's outputs
    (``<ns>/segmentation``, ``<ns>/uncertainty/color``, ...; ``IMAGE_TOPICS``)."""
    return any(topic.topic.endswith(f"/{suffix}") for suffix in IMAGE_TOPICS)


def select_input_topics(bag: BagReader,
                        topics: tuple[str, ...] = ()) -> tuple[list[ImageTopic], list[str]]:
    """``(chosen, skipped)``: the requested image topics, or by default every image topic but
    this package's outputs (``skipped``, by name). Raises ``BagError`` when none is left."""
    if topics:
        return bag.select_image_topics(topics), []
    every = bag.select_image_topics()
    chosen = [t for t in every if not is_output_topic(t)]
    skipped = [t.topic for t in every if is_output_topic(t)]
    if not chosen:
        raise BagError(f"{bag.path}: every image topic is an output of dudes_ros ({skipped}); "
                       "name the ones to process with --topics")
    return chosen, skipped


def _check_layout(bag: BagReader, chosen: list[ImageTopic], builder: OutputBuilder,
                  include_inputs: bool) -> dict[str, str]:
    """``{topic: msgtype}`` of OUT, refusing two inputs of one camera or a name clash."""
    by_namespace: dict[str, str] = {}
    for topic in chosen:
        if topic.namespace in by_namespace:
            raise BagError(f"{bag.path}: topics {by_namespace[topic.namespace]!r} and "
                           f"{topic.topic!r} belong to the same camera namespace "
                           f"{topic.namespace or '/'!r}; choose one of them with --topics")
        by_namespace[topic.namespace] = topic.topic
    layout: dict[str, str] = {}
    for topic in chosen:
        layout.update(builder.topics(topic.namespace))
    if include_inputs:
        for topic in chosen:
            if topic.topic in layout:
                raise BagError(f"{bag.path}: input topic {topic.topic!r} has the name of an "
                               "output topic; process it without --include-inputs")
            layout[topic.topic] = topic.msgtype
    return layout


def process_bag(source: str | Path, destination: str | Path, predictor: Predictor,
                ood: OodConfig, options: ProcessOptions = ProcessOptions()) -> dict:
    """Process ``source`` into the rosbag2 directory ``destination``; returns the summary.

    Raises ``BagError`` for unreadable bags or bad topic choices (naming file and topic),
    ``FileExistsError`` when ``destination`` exists without ``options.overwrite``; whatever
    the predictor raises propagates after the partial output is removed.
    """
    source, destination = Path(source), Path(destination)
    if options.storage is not None and options.storage not in STORAGES:
        raise ValueError(f"output storage {options.storage!r} is unknown; expected one of "
                         f"{sorted(STORAGES)}")
    check_destination(destination, options.overwrite)
    if destination.resolve() == source.resolve():
        raise ValueError(f"output {destination} is the input bag; choose another path")
    typestore = get_typestore(OUTPUT_TYPESTORE)
    builder = OutputBuilder(typestore, DEFAULT_IMAGES | (
        {"segmentation/color"} if options.color else set()))
    with BagReader(source) as bag:
        chosen, skipped = select_input_topics(bag, options.topics)
        if skipped:
            LOG.info("%s: skipping the output topics of dudes_ros %s", source, skipped)
        layout = _check_layout(bag, chosen, builder, options.include_inputs)
        for topic in chosen if options.include_inputs else ():
            check_ros2_layout(bag, topic.topic, topic.msgtype, typestore)
        storage = options.storage or ("mcap" if bag.is_ros1 else bag.format)
        core = PerceptionCore(predictor, ood, [t.camera for t in chosen])
        recorder = RunRecorder({t.topic: t.camera for t in chosen}, ood, bag.start_time)
        with staged_output(destination, options.overwrite) as built:
            with Writer(built, version=ROSBAG2_VERSION,
                        storage_plugin=STORAGES[storage]) as writer:
                connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore)
                               for topic, msgtype in layout.items()}
                start = time.perf_counter()
                _run(bag, chosen, core, builder, writer, connections, recorder, options)
                wall_s = time.perf_counter() - start
            summary = recorder.summary(wall_s)
            summary.update(input=str(source), input_format=bag.format,
                           output=str(destination), output_format=storage,
                           model=predictor.provenance(), timeline_png=TIMELINE_FILE)
            recorder.write_timeline(built / TIMELINE_FILE)
            (built / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _run(bag: BagReader, chosen: list[ImageTopic], core: PerceptionCore,
         builder: OutputBuilder, writer: Writer, connections: dict, recorder: RunRecorder,
         options: ProcessOptions) -> None:
    """The frame loop: decode, infer, serialize and write every chosen image message."""
    by_topic = {t.topic: t for t in chosen}
    serialize = builder.typestore.serialize_cdr
    total = sum(t.count for t in chosen)
    with tqdm(total=total, unit="frame", desc=bag.path.name, disable=not options.progress,
              dynamic_ncols=True) as bar:
        for message in bag.messages(list(by_topic)):
            start = time.perf_counter()
            topic = by_topic[message.topic]
            if options.include_inputs:
                writer.write(connections[topic.topic], message.timestamp,
                             to_ros2_cdr(bag, message, builder.typestore))
            msg = bag.deserialize(message)
            try:
                rgb = compressed_to_rgb(msg) if topic.compressed else image_to_rgb(msg)
            except ImageRejected as exc:
                recorder.reject(topic.topic, exc.reason, str(exc))
                LOG.debug("%s at %d ns rejected: %s", topic.topic, message.timestamp, exc)
                bar.update()
                continue
            result = core.process({topic.camera: rgb})[topic.camera]
            for out_topic, msgtype, out in builder.build(topic.namespace, msg.header,
                                                         topic.camera, result):
                writer.write(connections[out_topic], message.timestamp, serialize(out, msgtype))
            recorder.frame(topic.topic, message.timestamp, result,
                           (time.perf_counter() - start) * 1e3)
            bar.update()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="rosbag2 directory (sqlite3 or MCAP), single "
                        ".mcap/.db3 file, or ROS 1 .bag file")
    parser.add_argument("output", type=Path, help="output rosbag2 directory (must not exist "
                        "unless --overwrite)")
    parser.add_argument("--model", type=Path, default=None,
                        help="student .onnx (with its .json manifest beside it) or .pt "
                        "checkpoint (default: the bundled engines/dudes_student.onnx)")
    parser.add_argument("--backend", default="auto",
                        choices=BACKENDS)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--topics", nargs="+", default=(), metavar="TOPIC",
                        help="image topics to process (default: every Image/CompressedImage "
                        "topic except this package's outputs, <ns>/segmentation, "
                        "<ns>/uncertainty, <ns>/confidence and their /color); the camera "
                        "namespace is the topic without its last name")
    parser.add_argument("--format", dest="storage", choices=sorted(STORAGES), default=None,
                        help="output storage (default: as the input; MCAP for ROS 1 input)")
    parser.add_argument("--include-inputs", action="store_true",
                        help="also copy the input images into the output bag")
    parser.add_argument("--color", action="store_true",
                        help="also write <ns>/segmentation/color (rgb8 palette)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    ood = parser.add_argument_group("OOD alarm (defaults: the model manifest's calibration)")
    ood.add_argument("--pixel-threshold", type=float, default=None)
    ood.add_argument("--frame-threshold", type=float, default=None)
    ood.add_argument("--raise-after", type=int, default=None,
                     help="frames over threshold before the alarm rises (default "
                          f"{DEFAULT_RAISE_AFTER})")
    ood.add_argument("--clear-after", type=int, default=None,
                     help="frames under threshold before it clears (default "
                          f"{DEFAULT_CLEAR_AFTER})")


def ood_from_args(args: argparse.Namespace, model: Path) -> OodConfig:
    """OOD settings: the ONNX ``model``'s manifest calibration, overridden by the flags."""
    from dudes_ros.runtime.manifest import ood_calibration

    overrides = {name: getattr(args, name) for name in
                 ("pixel_threshold", "frame_threshold", "raise_after", "clear_after")}
    return OodConfig.from_calibration(ood_calibration(model), **overrides)


def _choose_before_loading(args: argparse.Namespace) -> tuple[str, ...]:
    """The topics to process, chosen and announced before the model loads."""
    with BagReader(args.input) as bag:
        chosen, skipped = select_input_topics(bag, tuple(args.topics))
    if skipped:
        print(f"skipping {len(skipped)} output topic(s) of dudes_ros: {', '.join(skipped)} "
              "(name them with --topics to process them)")
    print(f"processing {', '.join(t.topic for t in chosen)}")
    return tuple(t.topic for t in chosen)


def run(args: argparse.Namespace) -> int:
    from dudes_ros.inference.factory import create_predictor
    from dudes_ros.resources import bundled_model
    from dudes_ros.runtime.manifest import ManifestError

    model = args.model or bundled_model()  # as the node and the demo do
    try:
        check_destination(args.output, args.overwrite)
        if not model.is_file():
            raise FileNotFoundError(f"model {model} does not exist" + (
                "" if args.model else " (the bundled student; pass --model STUDENT.onnx)"))
        options = ProcessOptions(topics=_choose_before_loading(args), storage=args.storage,
                                 include_inputs=args.include_inputs, color=args.color,
                                 overwrite=args.overwrite, progress=not args.no_progress)
        ood = ood_from_args(args, model)
        with create_predictor(model, backend=args.backend, device=args.device) as predictor:
            summary = process_bag(args.input, args.output, predictor, ood, options)
    except (BagError, ConfigError, ManifestError, FileExistsError, FileNotFoundError,
            NotADirectoryError, PermissionError) as exc:
        print(f"dudes process-bag: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, read-only filesystem, I/O error while writing
        print(f"dudes process-bag: error: {exc} while processing {args.input} into "
              f"{args.output}; nothing was written to {args.output}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    print(f"wrote {args.output} ({summary['output_format']}) with {SUMMARY_FILE} and "
          f"{TIMELINE_FILE}")
    return 0
