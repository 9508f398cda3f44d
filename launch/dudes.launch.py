"""Launch dudes_node (one camera or several, batched together) as a lifecycle node.

Examples:
  ros2 launch dudes_ros dudes.launch.py image_topic:=/camera/image_raw
  ros2 launch dudes_ros dudes.launch.py cameras:=front,left \
      image_topics:=/front/image_raw,/left/image_raw backend:=tensorrt
  ros2 launch dudes_ros dudes.launch.py autostart:=false   # a lifecycle manager drives it

Arguments left empty keep the parameter file's value, so an edited copy of
config/dudes_node.yaml given as params_file:= is not overridden by launch defaults. The values
given are checked before the node starts: a bad one fails the launch, naming it. The node
gets the package's large-image Fast DDS profile unless the user has set their own.

Nothing happens at import: launch and launch_ros are imported inside
``generate_launch_description`` so the file can be parsed where they are absent.
"""

from pathlib import Path

ARGUMENTS = {
    "cameras": ("", "comma-separated camera names; empty = one camera with un-prefixed topics"),
    "image_topic": ("image", "input topic of the single camera (when cameras is empty)"),
    "image_topics": ("", "comma-separated input topics, one per entry of cameras, same order"),
    "transport": ("", "'raw' (sensor_msgs/Image) or 'compressed' (<topic>/compressed); "
                      "empty = params_file's value ('raw' in the package's file)"),
    "model": ("", "student .onnx (manifest beside it) or .pt; empty = params_file's value "
                  "(the bundled model in the package's file)"),
    "backend": ("", "auto, tensorrt, onnxruntime or torch; empty = params_file's value "
                    "('auto' in the package's file)"),
    "params_file": ("", "parameter YAML; empty = the package's config/dudes_node.yaml"),
    "namespace": ("", "namespace of the node and all its topics"),
    "use_sim_time": ("", "true to use /clock (replaying bags); empty = params_file's value "
                         "(false when it has none)"),
    "autostart": ("", "true: the node configures and activates itself; false: it waits for a "
                      "lifecycle manager; empty = params_file's value (true in the package's "
                      "file)"),
}
# Arguments passed to the node as parameters of the same name when they are not empty.
PARAMETER_ARGUMENTS = ("model", "backend", "transport", "use_sim_time", "autostart")
FLAGS = {"true": True, "false": False}


def _split(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def _overrides(arg):
    """``{parameter: value}`` for the non-empty parameter arguments (and ``cameras``), each
    checked by the node's own validators; raises ValueError naming the argument and value."""
    from dudes_ros.ros.params import validate

    overrides = {}
    for name in PARAMETER_ARGUMENTS:
        text = arg(name)
        if not text:
            continue
        value = text
        if name in ("use_sim_time", "autostart"):
            if text.lower() not in FLAGS:
                raise ValueError(f"launch argument {name}: invalid value {text!r}; "
                                 "expected true or false")
            value = FLAGS[text.lower()]
        overrides[name] = value
    cameras = _split(arg("cameras"))
    if cameras:
        overrides["cameras"] = cameras
    for name, value in overrides.items():
        problem = None if name == "use_sim_time" else validate(name, value)
        if problem:
            raise ValueError(problem)
    return overrides


def _node(context):
    from launch_ros.actions import LifecycleNode
    from launch_ros.substitutions import FindPackageShare

    def arg(name):
        return context.perform_substitution(_configuration(name))

    overrides = _overrides(arg)
    cameras = overrides.get("cameras", [])
    topics = _split(arg("image_topics")) if cameras else [arg("image_topic")]
    if cameras and len(topics) != len(cameras):
        raise ValueError(f"launch argument image_topics: {arg('image_topics')!r} lists "
                         f"{len(topics)} topic(s) for the {len(cameras)} camera(s) {cameras}; "
                         "give one topic per camera, in the same order")
    # Both transports are remapped: the transport may come from the parameter file. camera_info
    # sits beside the image as image_transport has it (/camera/image_raw: /camera/camera_info).
    remappings = []
    for camera, image_topic in zip(cameras or [""], topics, strict=True):
        name = f"{camera}/image" if camera else "image"
        remappings += [(name, image_topic), (f"{name}/compressed", f"{image_topic}/compressed")]
        head, slash, _ = image_topic.rpartition("/")
        remappings.append((f"{camera}/camera_info" if camera else "camera_info",
                           f"{head}{slash}camera_info"))
    share = context.perform_substitution(FindPackageShare("dudes_ros"))
    params_file = arg("params_file") or str(Path(share, "config", "dudes_node.yaml"))
    return [LifecycleNode(
        package="dudes_ros", executable="dudes_node", name="dudes_node",
        namespace=arg("namespace"), parameters=[params_file, overrides],
        remappings=remappings, output="screen",
        additional_env=_transport_environment(context, share))]


def _transport_environment(context, share):
    """The node's Fast DDS profile variables: the package's large-image profile under the
    names the distribution's Fast DDS reads (Kilted's 3.x FASTDDS_DEFAULT_PROFILES_FILE,
    Jazzy's 2.x FASTRTPS_DEFAULT_PROFILES_FILE; dudes_ros.ros.distro), unless the user set a
    profile (in the shell or this launch's environment): then theirs."""
    from dudes_ros.ros.distro import profile_environment

    profile = Path(share, "config", "fastdds_large_images.xml")
    return profile_environment(str(profile), context.environment)


def _configuration(name):
    from launch.substitutions import LaunchConfiguration

    return LaunchConfiguration(name)


def generate_launch_description():
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from launch import LaunchDescription

    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_node)])
