"""Run the student over a bag's image topics, write an output bag (``process_bag``; the command
line is ``dudes process-bag IN OUT``, ``dudes_ros.commands.process_bag``).

Every chosen image topic (raw or compressed; the camera is the topic's namespace; by default
every image topic except those named like this package's outputs, ``<ns>/segmentation``,
``<ns>/uncertainty``, ``<ns>/confidence`` and their ``/color``, which a bag recorded from the node
or by ``dudes demo`` also holds) goes through
the same ``PerceptionCore`` the node uses, so outputs match the node frame for frame (frames
are processed one at a time in bag order, one ``predict`` call each, so every camera's alarm
debounces over its own frames exactly as in the node). OUT is a
rosbag2 directory (sqlite3 or MCAP; default: the input's format, MCAP for ROS 1 input) holding
the chosen output topics (``--outputs``; by default segmentation, uncertainty, confidence, ood,
ood_alarm and the anomaly regions ood/mask, ood/regions and, given a ground plane and the bag's
camera_info, ood/points; the regions as the node finds them, ``AnomalyLocator``) under each
camera namespace with the input header stamps and bag times, at the
input's size or scaled (``--output-scale``, as the node's ``output_scale``), optionally the
inputs (the images, the ``sensor_msgs/CameraInfo`` topics beside them and ``/tf_static``),
plus two report files that rosbag2 readers ignore:

- ``OUT/summary.json``: what the model was trained on, frames per topic, rejected frames and
  why, the bytes written per frame (per output, measured from the serialized messages, and the
  bag on disk), latency and inference percentiles, throughput, the share of time spent outside
  inference, and the OOD alarm intervals in bag time (ns and seconds since the bag start);
- ``OUT/ood_timeline.png``: each camera's OOD score over bag time with the threshold and the
  alarm intervals.

OUT appears all at once: it is built in ``OUT.partial-<pid>`` and renamed on success; a failure
or Ctrl-C removes the partial folder, and an existing OUT is only replaced with --overwrite.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore
from tqdm import tqdm

from dudes_ros.anomaly_locator import AnomalyLocator, camera_geometry
from dudes_ros.anomaly_regions import RegionConfig
from dudes_ros.bag.reader import (
    BagError,
    BagMessage,
    BagReader,
    ImageTopic,
    check_ros2_layout,
    to_ros2_cdr,
)
from dudes_ros.bag.staging import check_destination, staged_output
from dudes_ros.bag.summary import RunRecorder, synthetic_model_warning
from dudes_ros.config import ConfigError
from dudes_ros.ground import FlatGround
from dudes_ros.inference.predictor import Predictor
from dudes_ros.messages.frame_gate import Frame, FrameGate
from dudes_ros.messages.outputs import (
    DEFAULT_ON_DEMAND,
    IMAGE_TOPICS,
    ON_DEMAND,
    OUTPUT_TOPICS,
    OutputBuilder,
    output_topic,
)
from dudes_ros.messages.types import COMPRESSED_IMAGE, IMAGE, OUTPUT_TYPESTORE, ROSBAG2_VERSION
from dudes_ros.perception import OodConfig, PerceptionCore

LOG = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
TIMELINE_FILE = "ood_timeline.png"
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
DEFAULT_OUTPUTS = tuple(name for name in OUTPUT_TOPICS
                        if name not in ON_DEMAND or name in DEFAULT_ON_DEMAND)
"""Outputs written unless ``--outputs`` says otherwise: every one but the colour images."""
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
TF_STATIC = "/tf_static"
_FOREVER = QosTime(2147483647, 4294967295)  # rosbag2's "infinite" duration
LATCHED = (Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
               _FOREVER, _FOREVER, QosLiveliness.AUTOMATIC, _FOREVER, False),)
"""Offered QoS of a latched ROS 1 topic (``/tf_static``) copied into a rosbag2 bag: transient
local, so a late subscriber of ``ros2 bag play`` still gets the static transforms."""


@dataclass(frozen=True)
class ProcessOptions:
    """Choices of a ``process_bag`` run (defaults = the command line's)."""

    topics: tuple[str, ...] = ()  # image topics to process; empty: every camera image topic
    storage: str | None = None  # "sqlite3" | "mcap"; None: as the input, MCAP for ROS 1
    include_inputs: bool = False  # also copy the processed images, their camera_info, /tf_static
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS  # OUTPUT_TOPICS names to write per camera
    output_scale: float = 1.0  # image outputs' size relative to the input (node: output_scale)
    overwrite: bool = False  # replace an existing OUT
    progress: bool = True  # tqdm progress bar on stderr
    regions: RegionConfig = RegionConfig()  # as the node's regions.* parameters
    segmentation_class: int = -1  # anomalous pixels into segmentation (node: the same name)
    ground: FlatGround | None = None  # flat road for ood/points (node: ground.*); None: none

    def __post_init__(self) -> None:
        unknown = [name for name in self.outputs if name not in OUTPUT_TOPICS]
        if unknown or not self.outputs:
            raise ConfigError(f"outputs {list(self.outputs)}: expected one or more of "
                              f"{list(OUTPUT_TOPICS)}")
        if not 0.0 < self.output_scale <= 1.0:
            raise ConfigError(f"output scale {self.output_scale}: expected a number in (0, 1]")
        if not -1 <= self.segmentation_class <= 255:
            raise ConfigError(f"segmentation class {self.segmentation_class}: expected -1 (off) "
                              "or a class id in 0..255")


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


def companion_topics(bag: BagReader, chosen: list[ImageTopic]) -> dict[str, str]:
    """``{topic: msgtype}`` copied beside the images with --include-inputs: the
    ``sensor_msgs/CameraInfo`` topics in a chosen camera's namespace (``/cam/camera_info``
    beside ``/cam/image_raw``; top-level ``/camera_info`` beside a top-level image) and
    ``/tf_static``."""
    namespaces = {t.namespace for t in chosen}
    found = {}
    for name, (msgtype, _) in bag.topics().items():
        namespace = name.rsplit("/", 1)[0]
        if (msgtype == CAMERA_INFO and namespace in namespaces) or name == TF_STATIC:
            found[name] = msgtype
    return found


def _check_layout(bag: BagReader, chosen: list[ImageTopic],
                  options: ProcessOptions) -> tuple[dict[str, str], dict[str, str]]:
    """``({output topic: msgtype}, {copied input topic: msgtype})`` of OUT, refusing two
    inputs of one camera or a name clash."""
    by_namespace: dict[str, str] = {}
    for topic in chosen:
        if topic.namespace in by_namespace:
            raise BagError(f"{bag.path}: topics {by_namespace[topic.namespace]!r} and "
                           f"{topic.topic!r} belong to the same camera namespace "
                           f"{topic.namespace or '/'!r}; choose one of them with --topics")
        by_namespace[topic.namespace] = topic.topic
    outputs = {output_topic(topic.namespace, name): OUTPUT_TOPICS[name]
               for topic in chosen for name in OUTPUT_TOPICS if name in options.outputs}
    copied: dict[str, str] = {}
    if options.include_inputs:
        copied = {t.topic: t.msgtype for t in chosen} | companion_topics(bag, chosen)
        clash = sorted(set(copied) & set(outputs))
        if clash:
            raise BagError(f"{bag.path}: input topic(s) {clash} have the name of an output "
                           "topic; process without --include-inputs")
    return outputs, copied


def _offered_qos(bag: BagReader, topic: str) -> tuple[Qos, ...]:
    """The QoS a copied topic was recorded with (rosbag2), or ``LATCHED`` for a latched ROS 1
    topic, so ``ros2 bag play`` offers it the same way."""
    for connection in bag.reader.connections:
        if connection.topic != topic:
            continue
        ext = connection.ext
        if hasattr(ext, "offered_qos_profiles"):
            return tuple(ext.offered_qos_profiles)
        if getattr(ext, "latching", 0):
            return LATCHED
    return ()


def bag_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder`` (a rosbag2 directory as written)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def process_bag(source: str | Path, destination: str | Path, predictor: Predictor,
                ood: OodConfig, options: ProcessOptions = ProcessOptions(),
                trained_on: dict | None = None) -> dict:
    """Process ``source`` into the rosbag2 directory ``destination``; returns the summary.
    ``trained_on`` (the model manifest's, ``runtime.manifest.trained_on``) goes into the
    summary, with a warning when the model never saw a real camera image.

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
    builder = OutputBuilder(typestore, frozenset(options.outputs) & ON_DEMAND,
                            segmentation_class=options.segmentation_class)
    with BagReader(source) as bag:
        chosen, skipped = select_input_topics(bag, options.topics)
        if skipped:
            LOG.info("%s: skipping the output topics of dudes_ros %s", source, skipped)
        outputs, copied = _check_layout(bag, chosen, options)
        for topic, msgtype in copied.items():
            check_ros2_layout(bag, topic, msgtype, typestore)
        storage = options.storage or ("mcap" if bag.is_ros1 else bag.format)
        core = PerceptionCore(predictor, ood, [t.camera for t in chosen],
                              output_scale=options.output_scale)
        recorder = RunRecorder({t.topic: t.camera for t in chosen}, ood, bag.start_time)
        with staged_output(destination, options.overwrite) as built:
            with Writer(built, version=ROSBAG2_VERSION,
                        storage_plugin=STORAGES[storage]) as writer:
                connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore)
                               for topic, msgtype in outputs.items()}
                connections |= {topic: writer.add_connection(
                    topic, msgtype, typestore=typestore,
                    offered_qos_profiles=_offered_qos(bag, topic))
                    for topic, msgtype in copied.items()}
                start = time.perf_counter()
                problems = _run(bag, chosen, copied, core, builder, writer, connections,
                                recorder, options)
                wall_s = time.perf_counter() - start
            summary = recorder.summary(wall_s, bag_bytes(built))
            summary.update(input=str(source), input_format=bag.format,
                           output=str(destination), output_format=storage,
                           outputs=[name for name in OUTPUT_TOPICS if name in options.outputs],
                           output_scale=options.output_scale, copied_inputs=sorted(copied),
                           points_problems=problems,
                           model=predictor.provenance(), timeline_png=TIMELINE_FILE)
            if trained_on is not None:
                summary["trained_on"] = trained_on
                warning = synthetic_model_warning(trained_on)
                summary["warnings"] = [warning] if warning else []
            recorder.write_timeline(built / TIMELINE_FILE)
            (built / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _copy(bag: BagReader, message: BagMessage, writer: Writer, connections: dict,
          recorder: RunRecorder, builder: OutputBuilder) -> None:
    data = to_ros2_cdr(bag, message, builder.typestore)
    writer.write(connections[message.topic], message.timestamp, data)
    recorder.copied(message.topic, len(data))


def _run(bag: BagReader, chosen: list[ImageTopic], copied: dict[str, str],
         core: PerceptionCore, builder: OutputBuilder, writer: Writer, connections: dict,
         recorder: RunRecorder, options: ProcessOptions) -> dict[str, str]:
    """The frame loop: decode, gate (``FrameGate``, as the node's, without the staleness
    check: recorded stamps are old by nature), infer, locate the anomalies when an output needs
    them, serialize and write every chosen image message (and copy the ``copied`` input topics
    as they come, in bag order). Returns ``{camera: why it got no ood/points}``, each camera's
    first such reason (e.g. its camera_info is missing or of another size)."""
    by_topic = {t.topic: t for t in chosen}
    names = [name for name in OUTPUT_TOPICS if name in options.outputs]
    ground = options.ground if "ood/points" in names else None
    # With points to place, the latest camera_info per camera namespace, read even when not
    # copied: ood/points projects through it as the node does through its subscription.
    infos = {} if ground is None else {
        topic: topic.rsplit("/", 1)[0] for topic, msgtype in
        companion_topics(bag, chosen).items() if msgtype == CAMERA_INFO}
    latest_info: dict[str, object] = {}
    problems: dict[str, str] = {}
    locator = AnomalyLocator(options.regions)
    gates = {kind: FrameGate(kind, core.predictor.size_problem)
             for kind in (IMAGE, COMPRESSED_IMAGE)}
    serialize = builder.typestore.serialize_cdr
    total = sum(t.count for t in chosen)
    with tqdm(total=total, unit="frame", desc=bag.path.name, disable=not options.progress,
              dynamic_ncols=True) as bar:
        for message in bag.messages([*by_topic, *{*copied, *infos}]):
            if message.topic in infos:
                latest_info[infos[message.topic]] = bag.deserialize(message)
            if message.topic not in by_topic:
                if message.topic in copied:
                    _copy(bag, message, writer, connections, recorder, builder)
                continue
            start = time.perf_counter()
            topic = by_topic[message.topic]
            if options.include_inputs:
                _copy(bag, message, writer, connections, recorder, builder)
            frame = gates[COMPRESSED_IMAGE if topic.compressed else IMAGE].admit(
                bag.deserialize(message))
            if not isinstance(frame, Frame):
                recorder.reject(topic.topic, frame.reason, frame.text)
                LOG.debug("%s at %d ns rejected: %s", topic.topic, message.timestamp, frame.text)
                bar.update()
                continue
            result = core.process({topic.camera: frame.rgb})[topic.camera]
            header = builder.header(frame.header)
            located = None
            if builder.needs_regions:
                geometry, problem = camera_geometry(  # named as the node names it
                    topic.camera or "camera", latest_info.get(topic.namespace),
                    frame.rgb.shape[:2], ground)
                if problem is not None and topic.camera not in problems:
                    problems[topic.camera] = problem
                    LOG.warning("%s: no ood/points: %s", topic.topic, problem)
                located = locator.locate(topic.camera, result.uncertainty,
                                         result.ood.pixel_threshold, geometry)
            for name in names:
                built_message = builder.message(name, header, topic.camera, result, located)
                if built_message is None:  # ood/points without geometry
                    continue
                data = serialize(built_message, OUTPUT_TOPICS[name])
                writer.write(connections[output_topic(topic.namespace, name)],
                             message.timestamp, data)
                recorder.written(name, len(data))
            recorder.frame(topic.topic, message.timestamp, result,
                           (time.perf_counter() - start) * 1e3)
            bar.update()
    return problems
