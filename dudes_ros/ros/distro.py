"""What differs between the ROS 2 distributions this package runs on, in one place.

Each fact was read from that distribution's own artifacts: ``rmw/types.h`` of its rmw release
(installed with the wheels under ``<prefix>/include/rmw/rmw/``; Humble's from the ``humble``
branch of ros2/rmw), what its rclpy's ``take_message`` returns, the names its Fast DDS gives
its files in ``/dev/shm``, and the variable that Fast DDS reads for an XML profile. Kilted and
Jazzy are run in CI from their package-index wheels; Humble (Python 3.10, no wheels here) is
known on paper only: its message-info layout is covered by a unit test on a hand-built buffer.

Nothing here imports rclpy: the environment must be set before rclpy loads Fast DDS.
"""

from __future__ import annotations

import functools
import os
from collections.abc import MutableMapping
from dataclasses import dataclass

# The XML profile variables: Fast DDS 3 reads the first, Fast DDS 2 only the second. Kilted's
# rmw_fastrtps also loads a file named by the second, a second time, logging on every start
# that the name is deprecated.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
DEFAULT = "kilted"  # what scripts/setup.sh installs without ROS_DISTRO


@dataclass(frozen=True)
class Distro:
    """One distribution's facts that this package depends on."""

    name: str
    python: str  # the Python its packages are built for
    rclpy_major: int
    fastdds_major: int  # Fast DDS generation that its rmw_fastrtps_cpp links
    gid_storage_size: int  # RMW_GID_STORAGE_SIZE: bytes of rmw_gid_t.data
    # what rclpy's take_message puts in its message-info dict besides the two timestamps
    rclpy_info_has_sequence_numbers: bool
    rclpy_info_has_publisher_gid: bool
    launch_versions: str  # the launch / launch_ros releases of the distribution
    tested: str  # how this repository checks it

    @property
    def profile_variable(self) -> str:
        """The variable its Fast DDS reads for an XML profile file."""
        return PROFILE_VARIABLES[0] if self.fastdds_major >= 3 else PROFILE_VARIABLES[1]

    @property
    def reads_profile_from(self) -> tuple[str, ...]:
        """Every variable whose profile file its middleware loads (Kilted's rmw_fastrtps
        loads the old name's too, with a deprecation warning)."""
        return PROFILE_VARIABLES if self.fastdds_major >= 3 else (PROFILE_VARIABLES[1],)

    @property
    def profile_variables(self) -> tuple[str, ...]:
        """The names under which the package gives its profile: both on Fast DDS 2, where
        Fast DDS 3's name costs nothing and a Fast DDS 3 child process would read it; only
        Fast DDS 3's own on Fast DDS 3, where the old name would load the file twice and warn
        at every start."""
        return PROFILE_VARIABLES if self.fastdds_major < 3 else (PROFILE_VARIABLES[0],)

    @property
    def shm_prefix(self) -> str:
        """Start of the names of its Fast DDS shared-memory files in /dev/shm: segments
        ``<prefix><guid>`` with a lock file ``<prefix><guid>_el`` per participant, and the
        port files ``<prefix>port<N>`` that every participant on the machine shares."""
        return "fastdds_" if self.fastdds_major >= 3 else "fastrtps_"


DISTROS = {
    "humble": Distro("humble", "3.10", 3, 2, 24, False, False, "launch 1.0 / launch_ros 0.19",
                     "on paper: message-info layout unit test"),
    "jazzy": Distro("jazzy", "3.12 (wheels: 3.11)", 7, 2, 16, True, False,
                    "launch 3.4 / launch_ros 0.26", "CI: every ROS test that needs no torch"),
    "kilted": Distro("kilted", "3.12 (wheels: 3.11)", 9, 3, 16, True, True,
                     "launch 3.7+ / launch_ros 0.28", "CI: the whole suite"),
}
_BY_RCLPY_MAJOR = {d.rclpy_major: d for d in DISTROS.values()}


@functools.cache
def _wheel_distro() -> str | None:
    """``NAME`` of an installed ``ros-NAME-rclpy`` wheel (the package-index route)."""
    from importlib.metadata import distributions

    for dist in distributions():
        name = dist.metadata["Name"] or ""
        if name.startswith("ros-") and name.endswith("-rclpy") and name.count("-") == 2:
            return name.split("-")[1]
    return None


@functools.cache
def _rclpy_major() -> int | None:
    from importlib.metadata import PackageNotFoundError, version

    for name in ("ros-rclpy", "rclpy"):
        try:
            return int(version(name).split(".")[0])
        except (PackageNotFoundError, ValueError):
            continue
    return None


def current_name() -> str | None:
    """The distribution of this environment: ``ROS_DISTRO`` (set by a sourced install), else
    the installed ``ros-NAME-rclpy`` wheel; None when neither tells."""
    return os.environ.get("ROS_DISTRO") or _wheel_distro()


def current() -> Distro:
    """The facts of this environment's distribution. A distribution not listed here (rolling,
    a newer release) is matched by its rclpy's major version, else taken to be as the newest
    listed one."""
    name = current_name()
    if name in DISTROS:
        return DISTROS[name]
    major = _rclpy_major()
    if major in _BY_RCLPY_MAJOR:
        return _BY_RCLPY_MAJOR[major]
    return max(DISTROS.values(), key=lambda d: d.rclpy_major)


def use_profile(profile: str, environ: MutableMapping[str, str] | None = None,
                distro: Distro | None = None) -> None:
    """Make ``profile`` the Fast DDS XML profile of this process and its children unless the
    user has set one (``profile_environment``). Call before rclpy loads Fast DDS."""
    env = os.environ if environ is None else environ
    env.update(profile_environment(profile, env, distro))


def profile_environment(profile: str, environ: MutableMapping[str, str],
                        distro: Distro | None = None) -> dict[str, str]:
    """The profile variables to add to ``environ`` (``{name: file}``) for ``distro`` (this
    environment's by default):

    * none set: ``profile`` under ``distro.profile_variables``;
    * the user's file under a name the distribution reads: nothing;
    * the user's file only under the other generation's name (FASTDDS_... on Jazzy): the same
      file under the name it reads, so their profile applies as they meant.
    """
    d = distro or current()
    users = [v for v in PROFILE_VARIABLES if environ.get(v)]
    if not users:
        return dict.fromkeys(d.profile_variables, str(profile))
    if any(v in d.reads_profile_from for v in users):
        return {}
    return {d.profile_variable: environ[users[0]]}


def profile_facts(environ: MutableMapping[str, str] | None = None) -> dict[str, str | None]:
    """``{variable: value or None}`` for both profile variables (``dudes doctor``)."""
    env = os.environ if environ is None else environ
    return {v: env.get(v) or None for v in PROFILE_VARIABLES}
