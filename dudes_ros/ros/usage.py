"""``dudes_node --help``: what the node reads and writes, its parameters and examples, printed
without starting ROS. Built from the parameter table and the output topics, so it cannot
disagree with them."""

from __future__ import annotations

import math
import sys
import textwrap

from dudes_ros.messages.outputs import OUTPUT_TOPICS
from dudes_ros.messages.types import COMPRESSED_IMAGE, DIAGNOSTIC_ARRAY, IMAGE
from dudes_ros.resources import config_path
from dudes_ros.ros.distro import current
from dudes_ros.ros.params import PARAMETERS, input_topic

HELP_FLAGS = ("-h", "--help")
WIDTH = 79  # a terminal's default
EXAMPLES = (
    ("raw images", "dudes_node --ros-args -r image:=/camera/image_raw"),
    ("JPEG/PNG (image_transport's compressed topic /camera/image_raw/compressed)",
     "dudes_node --ros-args -r image:=/camera/image_raw -p transport:=compressed"),
    ("two cameras, one batch",
     "dudes_node --ros-args -p cameras:=[front,left] -r front/image:=/front/image_raw "
     "-r left/image:=/left/image_raw"),
    ("your own model on the GPU",
     "dudes_node --ros-args -p model:=/path/to/student.onnx -p backend:=tensorrt"),
    ("parameters from a file, topics under /car",
     "dudes_node --ros-args --params-file dudes_node.yaml -r __ns:=/car"),
)


def _own(argv: list[str]) -> list[str]:
    """The node's own arguments: those before ``--ros-args``."""
    return argv[:argv.index("--ros-args")] if "--ros-args" in argv else argv


def wants_help(argv: list[str]) -> bool:
    """Whether the node's own arguments ask for help."""
    return any(arg in HELP_FLAGS for arg in _own(argv))


def stray_arguments(argv: list[str]) -> list[str]:
    """The node's own arguments that mean nothing to it (it has none but help)."""
    return [arg for arg in _own(argv) if arg not in HELP_FLAGS]


def answer_without_ros(argv: list[str]) -> int | None:
    """For ``dudes_node``'s own arguments (those before ``--ros-args``): print the usage and
    return 0 on ``-h``/``--help``, refuse anything else with 2 (ROS would ignore it: a ``-p``
    there sets nothing), or None to start the node."""
    if wants_help(argv):
        print(usage(), end="")
        return 0
    stray = stray_arguments(argv)
    if stray:
        print(f"dudes_node: error: unrecognised argument(s) {stray}; ROS arguments go after "
              "--ros-args, e.g. dudes_node --ros-args -r image:=/camera/image_raw (dudes_node "
              "--help)", file=sys.stderr)
        return 2
    return None


def usage() -> str:
    """The help text."""
    def wrap(text: str, indent: str) -> str:
        return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent)

    raw, _ = input_topic("image", "raw")
    compressed, _ = input_topic("image", "compressed")
    profile = config_path("fastdds_large_images.xml")
    lines = [
        "usage: dudes_node [-h] [--ros-args [-r FROM:=TO ...] [-p NAME:=VALUE ...] "
        "[--params-file FILE]]",
        "",
        wrap("The DUDES lifecycle node: semantic segmentation, a per-pixel uncertainty map and "
             "an out-of-distribution alarm for camera images, from one network. With autostart "
             "(default) it configures and activates itself; the log then names the topic and "
             "type it reads, and /diagnostics warns when nothing arrives there.", ""),
        "",
        wrap("input (names relative to the node's namespace; with cameras:=[front,left] each "
             "gets its prefix, front/image, ...):", ""),
        f"  {raw:<18} {IMAGE:<32} transport:=raw (default)",
        f"  {compressed:<18} {COMPRESSED_IMAGE:<32} transport:=compressed",
        wrap("Remap the base topic image to the camera's topic; transport picks the type and "
             "appends /compressed, as image_transport does (the launch file's image_topic "
             "works the same way).", "  "),
        "",
        "outputs (stamped with the input header):",
        *[f"  {name:<18} {msgtype}" for name, msgtype in OUTPUT_TOPICS.items()],
        f"  {'/diagnostics':<18} {DIAGNOSTIC_ARRAY} (node health: input, model, latency)",
        "",
        "parameters (-p NAME:=VALUE):",
    ]
    for spec in PARAMETERS:
        lines.append(f"  {spec.name} ({spec.type_name}, default {_spell(spec.default)})")
        lines.append(wrap(spec.description, "      "))
    lines += ["", "examples:"]
    for what, command in EXAMPLES:
        lines += [f"  # {what}", f"  {command}"]
    # Only the names this distribution's Fast DDS reads: Kilted's rmw warns at every start
    # when the Fast DDS 2 name is set as well.
    distro = current()
    lines += ["", f"large images over Fast DDS (on {distro.name}; Fast DDS 3 reads FASTDDS_..., "
              "Fast DDS 2 on Jazzy and Humble FASTRTPS_...):"]
    lines += [f"  export {name}={profile}" for name in distro.profile_variables]
    return "\n".join(lines) + "\n"


def _spell(value: object) -> str:
    """A default as it is written on the command line (``-p NAME:=VALUE``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    return '""' if value == "" else str(value)
