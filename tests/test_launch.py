"""launch/dudes.launch.py under the real ROS 2 launch system.

The package is built once per session with colcon into a temporary install prefix and found
through the ament index, as after ``source install/setup.bash``. Each test runs
``ros2 launch dudes_ros dudes.launch.py ARGS`` (tests/helpers/ros2_launch.py: what the CLI does,
through ``launch.LaunchService``) in its own process group and talks to the node over ROS.
``launch`` / ``launch_ros`` come from a ROS install where importable, else from the unmodified
upstream copies of the distribution's own releases in ``<repo>/../shared/vendor/``
(``ros2_launch_jazzy`` on Jazzy, ``ros2_launch`` on Kilted).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dudes_ros.ros.distro import PROFILE_VARIABLES, current
from tests.conftest import REPO, SHM, SHM_PREFIX

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy")

from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
from rclpy.clock import Clock, ClockType  # noqa: E402
from rclpy.parameter import Parameter, parameter_value_to_python  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.time import Time  # noqa: E402
from rosgraph_msgs.msg import Clock as ClockMsg  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from tests.test_node import (  # noqa: E402
    Client,
    H,
    W,
    as_array,
    check_outputs,
    drive_frame,
    image_msg,
)

# each distribution's launch / launch_ros releases (the folders' READMEs name the versions)
VENDOR = REPO.parent / "shared" / "vendor" / {"jazzy": "ros2_launch_jazzy"}.get(
    current().name, "ros2_launch")
RUNNER = REPO / "tests" / "helpers" / "ros2_launch.py"
COLCON = "import sys; from colcon_core.command import main; sys.exit(main())"
COLOUR_OUTPUTS = ("segmentation/color", "uncertainty/color")
NUM_CLASSES = 19
SIM_START = 1000  # seconds of /clock in the use_sim_time test; wall clock is ~1.8e9


# --- the installed package and the launch process -------------------------------------------

def _launch_python_path() -> list[str]:
    """Where ``launch`` / ``launch_ros`` come from: nothing to add where a ROS install provides
    them, else the vendored upstream packages (and their composition_interfaces stub)."""
    if importlib.util.find_spec("launch_ros") is not None:
        return []
    if not (VENDOR / "launch_ros").is_dir():
        pytest.skip(f"launch_ros is not importable and {VENDOR} does not exist")
    if importlib.util.find_spec("osrf_pycommon") is None:
        pytest.skip("osrf-pycommon (the test extra) is not installed; launch needs it")
    return [str(VENDOR), str(VENDOR / "stubs")]


def _sourced(prefix: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` after sourcing the package's colcon hooks (``share/<pkg>/hook/*.dsv``), which is
    what ``source install/setup.bash`` does for it."""
    env = dict(env)
    for hook in sorted((prefix / "share" / "dudes_ros" / "hook").glob("*.dsv")):
        kind, variable, relative = hook.read_text().strip().split(";")
        assert kind == "prepend-non-duplicate", hook
        path = str(prefix / relative) if relative else str(prefix)
        rest = [p for p in env.get(variable, "").split(os.pathsep) if p and p != path]
        env[variable] = os.pathsep.join([path, *rest])
    return env


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(install prefix of dudes_ros, environment that finds it and the launch system)."""
    launch_path = _launch_python_path()
    pytest.importorskip("colcon_core", reason="colcon-common-extensions (test extra) builds "
                        "the package the ROS way")
    base = tmp_path_factory.mktemp("colcon")
    result = subprocess.run(
        [sys.executable, "-c", COLCON, "--log-base", str(base / "log"), "build",
         "--paths", str(REPO), "--build-base", str(base / "build"),
         "--install-base", str(base / "install")],
        cwd=base, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = base / "install" / "dudes_ros"
    env = _sourced(prefix, os.environ)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], *launch_path])
    env["PYTHONUNBUFFERED"] = "1"
    return prefix, env


def node_processes(prefix: Path) -> list[int]:
    """Live processes running this install's dudes_node."""
    import psutil

    executable = str(prefix / "lib" / "dudes_ros" / "dudes_node")
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if executable in (process.info["cmdline"] or []) and (
                process.info["status"] != psutil.STATUS_ZOMBIE):
            found.append(process.pid)
    return found


class Launch:
    """One ``ros2 launch dudes_ros dudes.launch.py ARGS`` process (the leader of its own
    process group, as in a terminal) with its output in a file."""

    def __init__(self, env: dict[str, str | None], folder: Path,
                 arguments: tuple[str, ...]) -> None:
        env = {k: v for k, v in env.items() if v is not None}
        folder.mkdir()
        self.log = folder / "launch.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(RUNNER), "dudes_ros", "dudes.launch.py", *arguments],
            env=dict(env, ROS_LOG_DIR=str(folder / "ros_log")), cwd=folder,
            stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text()

    def ctrl_c(self) -> None:
        """What Ctrl-C in the terminal does: SIGINT to the whole foreground process group.
        (launch does not pass a SIGINT it takes for the terminal's on to its processes.)"""
        os.killpg(self.process.pid, signal.SIGINT)

    def close(self) -> None:
        if self.process.poll() is None:
            self.ctrl_c()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever is left of the group, launch included
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self._log_file.close()


@pytest.fixture
def launch(installed, ros_context, tmp_path):
    """``launch(*ARGS, env={...})`` starts ``ros2 launch dudes_ros dudes.launch.py ARGS`` (in
    the test environment updated with ``env``; a None value unsets); every launch is stopped
    and its process group killed at the end of the test."""
    started: list[Launch] = []

    def start(*arguments: str, env: dict[str, str | None] | None = None) -> Launch:
        started.append(Launch({**installed[1], **(env or {})},
                              tmp_path / f"launch{len(started)}", arguments))
        return started[-1]

    yield start
    for launched in started:
        launched.close()


@pytest.fixture(scope="module")
def offline(installed):
    """The installed bundled model on ONNX Runtime in this process: the expected outputs."""
    from dudes_ros.inference.factory import create_predictor

    model = installed[0] / "share" / "dudes_ros" / "engines" / "dudes_student.onnx"
    with create_predictor(model, backend="onnxruntime", device="cpu") as predictor:
        yield lambda rgb: tuple(a[0] for a in predictor.predict(rgb[None]))


# --- the test side of the ROS graph ----------------------------------------------------------

class LaunchClient(Client):
    """``Client`` whose frames go to the input topics the launch file remaps to."""

    def __init__(self, inputs: dict[str, str], namespace: str = "") -> None:
        super().__init__(list(inputs), namespace=namespace)
        self.namespace = namespace
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for camera, input_topic in inputs.items():
            self.node.destroy_publisher(self.pubs[camera])
            self.pubs[camera] = self.node.create_publisher(Image, input_topic, qos)

    def call(self, service_type, service: str, request, timeout: float = 10.0):
        name = f"{'/' + self.namespace if self.namespace else ''}/dudes_node/{service}"
        client = self.node.create_client(service_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"no service {name}"
            future = client.call_async(request)
            assert self.spin_until(future.done, timeout), f"{name} did not answer"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def state(self) -> str:
        return self.call(GetState, "get_state", GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(ChangeState, "change_state", request).success

    def parameters(self, *names: str) -> dict:
        values = self.call(GetParameters, "get_parameters",
                           GetParameters.Request(names=list(names))).values
        return {n: parameter_value_to_python(v) for n, v in zip(names, values, strict=True)}

    def answers(self, camera: str, offline, seed: int) -> dict:
        """A frame in on ``camera``'s input; every output answers it with its header, and the
        images are the offline model's. Returns the header-carrying outputs by name."""
        rgb = drive_frame(seed, anomaly=True)
        msg = image_msg(rgb, f"{camera or 'camera'}-{seed}")
        alarms = len(self.alarms[camera])
        self.send(camera, msg)
        frame_id, stamp = msg.header.frame_id, (msg.header.stamp.sec, msg.header.stamp.nanosec)
        assert self.spin_until(lambda: len(self.alarms[camera]) > alarms and all(
            (camera, name, frame_id) in self.received for name in COLOUR_OUTPUTS), 5)
        got = check_outputs(self, camera, frame_id, *offline(rgb), stamp=stamp)
        labels, u = as_array(got["segmentation"]), as_array(got["uncertainty"])
        assert labels.shape == u.shape == (H, W)
        assert labels.max() < NUM_CLASSES and 0.0 <= u.min() and u.max() <= 1.0
        for name in COLOUR_OUTPUTS:
            header = self.received[(camera, name, frame_id)].header
            assert (header.stamp.sec, header.stamp.nanosec) == stamp, name
        return got


@pytest.fixture
def clients():
    """``clients(inputs, namespace)`` makes a LaunchClient, destroyed after the test."""
    made: list[LaunchClient] = []

    def make(inputs: dict[str, str], namespace: str = "") -> LaunchClient:
        made.append(LaunchClient(inputs, namespace))
        return made[-1]

    yield make
    for client in made:
        client.close()


def own_segments(process) -> set[Path]:
    """The Fast DDS shared-memory segments ``process`` owns: Fast DDS keeps each one's ``_el``
    file open (and locked, see tests/conftest.py) while its owner lives. The port files
    (``fastdds_port*``, ``fastrtps_port*`` on Fast DDS 2) are not its own: every participant
    on the machine that listens on that port shares them, and Fast DDS leaves them in place
    by design for the next one (``fastdds shm clean`` removes those no one holds)."""
    return {Path(f.path) for f in process.open_files()
            if Path(f.path).parent == SHM and Path(f.path).name.startswith(SHM_PREFIX)
            and f.path.endswith("_el") and not Path(f.path).name.startswith(f"{SHM_PREFIX}port")}


# --- tests -----------------------------------------------------------------------------------

def test_one_camera_becomes_active_and_answers_every_output(launch, clients, offline):
    launched = launch("image_topic:=/camera/image_raw", "backend:=onnxruntime")
    client = clients({"": "/camera/image_raw"})
    client.wait_ready(launched.process, launched.log)
    assert client.state() == "active"
    assert client.parameters("backend", "autostart") == {
        "backend": "onnxruntime", "autostart": True}
    client.answers("", offline, seed=1)
    client.answers("", offline, seed=2)


def test_two_cameras_both_answer(launch, clients, offline):
    launched = launch("cameras:=front,left", "image_topics:=/front/image_raw,/left/image_raw",
                      "backend:=onnxruntime")
    client = clients({"front": "/front/image_raw", "left": "/left/image_raw"})
    client.wait_ready(launched.process, launched.log)
    assert client.state() == "active"
    assert client.parameters("cameras", "backend") == {
        "cameras": ["front", "left"], "backend": "onnxruntime"}
    for camera in ("front", "left"):  # camera_info beside each image, as image_transport has it
        assert client.spin_until(lambda c=camera: [
            s.node_name for s in client.node.get_subscriptions_info_by_topic(
                f"/{c}/camera_info")] == ["dudes_node"], 10), camera
    client.answers("front", offline, seed=3)
    client.answers("left", offline, seed=4)
    assert {k[2] for k in client.received if k[0] == "front"} == {"front-3"}
    assert {k[2] for k in client.received if k[0] == "left"} == {"left-4"}


def test_params_file_namespace_backend_and_sim_time(launch, clients, offline, installed,
                                                     tmp_path):
    import yaml

    share = installed[0] / "share" / "dudes_ros"
    model = tmp_path / "model" / "student.onnx"  # a copy: proves the file's model is used
    model.parent.mkdir()
    shutil.copy(share / "engines" / "dudes_student.onnx", model)
    shutil.copy(share / "engines" / "dudes_student.json", model.with_suffix(".json"))
    settings = yaml.safe_load((share / "config" / "dudes_node.yaml").read_text())
    file_values = {"model": str(model), "backend": "torch", "ood.pixel_threshold": 0.5,
                   "ood.frame_threshold": 0.25, "diagnostics_period": 0.2}
    settings["/**"]["ros__parameters"].update(file_values)
    params_file = tmp_path / "override.yaml"
    params_file.write_text(yaml.safe_dump(settings))

    launched = launch(f"params_file:={params_file}", "namespace:=robot1",
                      "image_topic:=camera/image_raw", "backend:=onnxruntime",
                      "use_sim_time:=true")
    client = clients({"": "/robot1/camera/image_raw"}, namespace="robot1")
    # The client stamps frames with /clock time too: SIM_START s, which the node would drop as
    # ~55 years stale (max_input_age 0.5 s) if it ran on the wall clock.
    client.node.set_parameters([Parameter("use_sim_time", value=True)])
    clock = client.node.create_publisher(ClockMsg, "/clock", 10)
    ticks = iter(range(10**6))
    client.node.create_timer(0.05, lambda: clock.publish(ClockMsg(clock=Time(
        seconds=SIM_START, nanoseconds=50_000_000 * next(ticks)).to_msg())),
        clock=Clock(clock_type=ClockType.STEADY_TIME))
    client.wait_ready(launched.process, launched.log)
    assert client.state() == "active"
    assert client.parameters(*file_values, "use_sim_time") == {
        **file_values, "backend": "onnxruntime", "use_sim_time": True}
    ood = client.answers("", offline, seed=5)["ood"]
    assert SIM_START <= ood.header.stamp.sec < SIM_START + 60
    values = {kv.key: kv.value for kv in ood.status[0].values}
    assert float(values["threshold"]) == pytest.approx(0.25)


def test_autostart_false_waits_for_a_lifecycle_manager(launch, clients, offline):
    launched = launch("image_topic:=/camera/image_raw", "backend:=onnxruntime",
                      "autostart:=false")
    client = clients({"": "/camera/image_raw"})
    assert client.state() == "unconfigured"
    assert client.parameters("autostart", "backend") == {
        "autostart": False, "backend": "onnxruntime"}
    assert client.transition(Transition.TRANSITION_CONFIGURE)
    assert client.state() == "inactive"
    assert client.pubs[""].get_subscription_count() == 0  # subscribes on activate only
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    assert client.state() == "active"
    client.wait_ready(launched.process, launched.log)
    client.answers("", offline, seed=6)
    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert client.state() == "inactive"
    assert client.spin_until(lambda: client.pubs[""].get_subscription_count() == 0, 5)


@pytest.mark.parametrize(("arguments", "words"), [
    (("backend:=warp",), ["parameter backend", "'warp'", "'onnxruntime'"]),
    (("cameras:=front,left", "image_topics:=/front/image_raw"),
     ["image_topics", "'/front/image_raw'", "2 camera(s)"]),
    (("use_sim_time:=maybe",), ["use_sim_time", "'maybe'", "true or false"]),
], ids=["unknown_backend", "topics_for_cameras", "use_sim_time"])
def test_bad_argument_fails_the_launch_naming_it(launch, installed, arguments, words):
    launched = launch("image_topic:=/camera/image_raw", *arguments)
    assert launched.process.wait(timeout=60) == 1, launched.output()
    output = launched.output()
    assert all(w in output for w in words), output
    assert "process started" not in output, output
    assert node_processes(installed[0]) == []


def test_ctrl_c_stops_the_node_cleanly(launch, clients, offline, installed):
    import psutil

    # No profile of the user's: the launch file gives the node the package's large-image
    # profile under the names its distribution's Fast DDS reads (distro.profile_environment).
    launched = launch("image_topic:=/camera/image_raw", "backend:=onnxruntime",
                      env=dict.fromkeys(PROFILE_VARIABLES))
    client = clients({"": "/camera/image_raw"})
    client.wait_ready(launched.process, launched.log)
    assert client.state() == "active"
    assert client.parameters("backend") == {"backend": "onnxruntime"}
    client.answers("", offline, seed=7)
    children = psutil.Process(launched.process.pid).children(recursive=True)
    assert [c.pid for c in children] == node_processes(installed[0]), children
    profile = installed[0] / "share" / "dudes_ros" / "config" / "fastdds_large_images.xml"
    environ = children[0].environ()
    assert {v: environ.get(v) for v in PROFILE_VARIABLES} == {
        v: str(profile) if v in current().profile_variables else None
        for v in PROFILE_VARIABLES}
    segments = own_segments(children[0])
    assert segments, "the node has no shared-memory segment: nothing to check"
    start = time.monotonic()
    launched.ctrl_c()
    code = launched.process.wait(timeout=30)
    took = time.monotonic() - start
    output = launched.output()
    assert code == 0, output
    # launch escalates to SIGTERM 5 s after a SIGINT the node has not obeyed
    assert took < 5.0 and "escalating" not in output, (took, output)
    assert "process has finished cleanly" in output, output
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert node_processes(installed[0]) == []
    left = [p for p in segments if p.exists() or p.with_name(p.name.removesuffix("_el")).exists()]
    print(f"the node's own segments: {sorted(p.name for p in segments)}; left: {left}")
    assert left == [], left
