"""``python ros2_launch.py PACKAGE FILE [name:=value ...]``: what ``ros2 launch`` does with those
arguments (the ros2launch CLI has no wheel): find FILE in PACKAGE's share folder through the
ament index, include it with the arguments in a ``launch.LaunchService`` and exit with its
return code."""

from __future__ import annotations

import signal
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import AnyLaunchDescriptionSource

    from launch import LaunchDescription, LaunchService

    package, name, *arguments = argv
    matches = sorted(Path(get_package_share_directory(package)).rglob(name))
    if not matches:
        print(f"no launch file {name!r} in the share folder of {package!r}", file=sys.stderr)
        return 1
    pairs = [tuple(argument.split(":=", 1)) for argument in arguments]
    service = LaunchService(argv=arguments)
    service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        AnyLaunchDescriptionSource(str(matches[0])), launch_arguments=pairs)]))
    return service.run()


if __name__ == "__main__":
    # A test runner started in the background inherits SIGINT ignored, and Python then installs
    # no handler; launch sees SIGINT only through Python's handler. In a terminal it is there.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main(sys.argv[1:]))
