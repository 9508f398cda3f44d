"""Launch dudes_node (one camera or several, batched together) as a lifecycle node.

Examples:
  ros2 launch dudes_ros dudes.launch.py image_topic:=/camera/image_raw
  ros2 launch dudes_ros dudes.launch.py cameras:=front,left \
      image_topics:=/front/image_raw,/left/image_raw backend:=tensorrt

Nothing happens at import: launch and launch_ros are imported inside
``generate_launch_description`` so the file can be parsed where they are absent.
"""

ARGUMENTS = {
    "cameras": ("", "comma-separated camera names; empty = one camera with un-prefixed topics"),
    "image_topic": ("image", "input topic of the single camera (when cameras is empty)"),
    "image_topics": ("", "comma-separated input topics, one per entry of cameras, same order"),
    "transport": ("raw", "'raw' (sensor_msgs/Image) or 'compressed' (<topic>/compressed)"),
    "model": ("", "student .onnx (manifest beside it) or .pt; empty = the bundled model"),
    "backend": ("auto", "auto, tensorrt, onnxruntime or torch"),
    "params_file": ("", "parameter YAML; empty = the package's config/dudes_node.yaml"),
    "namespace": ("", "namespace of the node and all its topics"),
    "use_sim_time": ("false", "use /clock (set true when replaying bags)"),
}


def _split(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def _node(context):
    from launch_ros.actions import LifecycleNode
    from launch_ros.substitutions import FindPackageShare

    def arg(name):
        return context.perform_substitution(_configuration(name))

    cameras = _split(arg("cameras"))
    topics = _split(arg("image_topics")) if cameras else [arg("image_topic")]
    if cameras and len(topics) != len(cameras):
        raise ValueError(f"image_topics lists {len(topics)} topic(s) for {len(cameras)} "
                         f"camera(s) {cameras}; give one topic per camera, in the same order")
    suffix = "/compressed" if arg("transport") == "compressed" else ""
    remappings = [((f"{camera}/image" if camera else "image") + suffix, image_topic + suffix)
                  for camera, image_topic in zip(cameras or [""], topics, strict=True)]
    params_file = arg("params_file") or context.perform_substitution(
        _join(FindPackageShare("dudes_ros"), "config", "dudes_node.yaml"))
    overrides = {
        "model": arg("model"),
        "backend": arg("backend"),
        "transport": arg("transport"),
        "use_sim_time": arg("use_sim_time").lower() in ("true", "1", "yes"),
    }
    if cameras:
        overrides["cameras"] = cameras
    return [LifecycleNode(
        package="dudes_ros", executable="dudes_node", name="dudes_node",
        namespace=arg("namespace"), parameters=[params_file, overrides],
        remappings=remappings, output="screen")]


def _configuration(name):
    from launch.substitutions import LaunchConfiguration

    return LaunchConfiguration(name)


def _join(*parts):
    from launch.substitutions import PathJoinSubstitution

    return PathJoinSubstitution(list(parts))


def generate_launch_description():
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from launch import LaunchDescription

    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_node)])
