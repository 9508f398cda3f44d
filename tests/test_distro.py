"""What differs between ROS 2 distributions (dudes_ros/ros/distro.py): the Fast DDS profile
variables, the detection of the distribution, and the ``rmw_message_info_t`` layout that the
rcl ctypes layer reads: per distribution on hand-built buffers (Humble on paper only), against
the installed ``rmw/types.h``, and against rclpy's own take of the same message."""

from __future__ import annotations

import ctypes
import re
import struct
import sys
import time
from importlib.metadata import PackageNotFoundError, files
from pathlib import Path

import pytest

from dudes_ros.ros import distro
from dudes_ros.ros.distro import DISTROS, PROFILE_VARIABLES, profile_environment, use_profile
from dudes_ros.ros.rcl_serialized import SEQUENCE_NUMBER_UNSUPPORTED, message_info_type

FASTDDS, FASTRTPS = PROFILE_VARIABLES
OURS = "/share/dudes_ros/config/fastdds_large_images.xml"


# --- Fast DDS profile variables ---------------------------------------------------------------

@pytest.mark.parametrize(("name", "environ", "expected"), [
    ("jazzy", {}, {FASTDDS: OURS, FASTRTPS: OURS}),
    ("humble", {}, {FASTDDS: OURS, FASTRTPS: OURS}),
    # Kilted's rmw would load the old name's file a second time and warn at every start
    ("kilted", {}, {FASTDDS: OURS}),
    # the user's own file, under the name Fast DDS 2 reads too
    ("jazzy", {FASTDDS: "/mine.xml"}, {FASTRTPS: "/mine.xml"}),
    ("jazzy", {FASTRTPS: "/mine.xml"}, {}),
    ("kilted", {FASTDDS: "/mine.xml"}, {}),
    ("kilted", {FASTRTPS: "/mine.xml"}, {}),  # read by Kilted's rmw (with its warning)
    ("jazzy", {FASTDDS: "/a.xml", FASTRTPS: "/b.xml"}, {}),
    ("jazzy", {FASTDDS: ""}, {FASTDDS: OURS, FASTRTPS: OURS}),  # empty is unset, as for Fast DDS
])
def test_profile_is_given_where_the_distribution_reads_it_unless_the_user_set_one(
        name, environ, expected):
    assert profile_environment(OURS, environ, DISTROS[name]) == expected
    after = dict(environ)
    use_profile(OURS, after, DISTROS[name])
    assert after == {**environ, **expected}


def test_each_distribution_reads_its_fast_dds_generations_variable_and_files():
    assert {d.name: (d.profile_variable, d.reads_profile_from, d.shm_prefix)
            for d in DISTROS.values()} == {
        "humble": (FASTRTPS, (FASTRTPS,), "fastrtps_"),
        "jazzy": (FASTRTPS, (FASTRTPS,), "fastrtps_"),
        "kilted": (FASTDDS, (FASTDDS, FASTRTPS), "fastdds_")}


# --- which distribution ---------------------------------------------------------------------

def _installed_rclpy_wheel() -> str | None:
    for name in DISTROS:
        try:
            files(f"ros-{name}-rclpy")
        except PackageNotFoundError:
            continue
        return name
    return None


def test_distribution_comes_from_ros_distro_then_the_wheels(monkeypatch):
    monkeypatch.setenv("ROS_DISTRO", "humble")
    assert distro.current() is DISTROS["humble"]
    monkeypatch.delenv("ROS_DISTRO")
    wheel = _installed_rclpy_wheel()
    assert distro.current_name() == wheel
    if wheel is not None:
        assert distro.current() is DISTROS[wheel]


def test_an_unlisted_distribution_is_matched_by_its_rclpy(monkeypatch):
    monkeypatch.setenv("ROS_DISTRO", "rolling")
    monkeypatch.setattr(distro, "_rclpy_major", lambda: 7)
    assert distro.current() is DISTROS["jazzy"]
    monkeypatch.setattr(distro, "_rclpy_major", lambda: 42)
    assert distro.current() is DISTROS["kilted"]  # the newest listed


# --- rmw_message_info_t ---------------------------------------------------------------------

# Offsets on x86_64 and aarch64 (LP64) from each release's rmw/types.h: two int64 timestamps,
# two uint64 sequence numbers, rmw_gid_t {const char *, uint8_t[GID]}, bool; 8-byte aligned.
LAYOUTS = {  # gid size: (offset of gid data, offset of from_intra_process, sizeof)
    24: (40, 64, 72),  # Humble (rmw 6.1)
    16: (40, 56, 64),  # Iron onwards: Jazzy (rmw 7.3), Kilted (rmw 7.8)
}


@pytest.mark.parametrize("name", sorted(DISTROS))
def test_message_info_is_read_from_each_distributions_layout(name):
    gid_size = DISTROS[name].gid_storage_size
    gid_offset, intra_offset, size = LAYOUTS[gid_size]
    info_type = message_info_type(gid_size)
    assert (info_type.gid_data.offset, info_type.from_intra_process.offset,
            ctypes.sizeof(info_type)) == (gid_offset, intra_offset, size)
    # a block as that distribution's rmw fills it, built by hand
    gid = bytes(range(1, gid_size + 1))
    block = bytearray(size)
    struct.pack_into("<qqQQQ", block, 0, 1_700_000_000_123, 1_700_000_000_456, 41,
                     SEQUENCE_NUMBER_UNSUPPORTED, 0xDEADBEEF)
    block[gid_offset:gid_offset + gid_size] = gid
    block[intra_offset] = 1
    info = info_type.from_buffer_copy(block)
    assert info.as_dict() == {
        "source_timestamp": 1_700_000_000_123, "received_timestamp": 1_700_000_000_456,
        "publication_sequence_number": 41, "reception_sequence_number": None,
        "publisher_gid": {"data": gid}}
    assert info.from_intra_process


def _installed_header() -> Path | None:
    """``rmw/types.h`` of the installed rmw: the ros-rmw wheel ships it under
    ``<venv>/include``; a ROS install under ``<prefix>/include``."""
    try:
        found = [f for f in files("ros-rmw") or [] if str(f).endswith("rmw/rmw/types.h")]
    except PackageNotFoundError:
        found = []
    if found:
        return Path(found[0].locate()).resolve()
    candidate = Path(sys.prefix) / "include" / "rmw" / "rmw" / "types.h"
    return candidate if candidate.is_file() else None


C_TYPES = {"rmw_time_point_value_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64,
           "const char *": ctypes.c_void_p, "uint8_t": ctypes.c_uint8, "bool": ctypes.c_bool}


def _struct_fields(text: str, tag: str) -> list[tuple[str, str, str | None]]:
    """``[(type, name, array size or None)]`` of ``typedef struct ... tag { ... }``."""
    body = re.search(r"typedef struct (?:RMW_PUBLIC_TYPE )?" + tag + r"\s*\{(.*?)\}", text,
                     re.S)
    assert body, f"no struct {tag} in the header"
    fields = []
    for declaration in filter(None, (d.strip() for d in body.group(1).split(";"))):
        match = re.fullmatch(r"(.+?)\s*\b(\w+)(?:\[(\w+)\])?", " ".join(declaration.split()))
        assert match, declaration
        fields.append(match.groups())
    return fields


def test_message_info_layout_matches_the_installed_rmw_header():
    header = _installed_header()
    if header is None:
        pytest.skip("no rmw/types.h installed (the ros-rmw wheel or a ROS install has one)")
    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", header.read_text(), flags=re.S)
    gid_size = int(re.search(r"#define RMW_GID_STORAGE_SIZE (\d+)u?", text).group(1))
    assert gid_size == distro.current().gid_storage_size, header

    def c_type(type_name: str, size: str | None) -> type:
        if type_name == "rmw_gid_t":
            return type("Gid", (ctypes.Structure,), {"_fields_": [
                (n, c_type(t, s)) for t, n, s in _struct_fields(text, "rmw_gid_s")]})
        base = C_TYPES[type_name]
        return base * (gid_size if size == "RMW_GID_STORAGE_SIZE" else int(size)) if size \
            else base

    fields = _struct_fields(text, "rmw_message_info_s")
    from_header = type("FromHeader", (ctypes.Structure,), {"_fields_": [
        (n, c_type(t, s)) for t, n, s in fields]})
    ours = message_info_type(gid_size)
    assert [n for _, n, _ in fields] == ["source_timestamp", "received_timestamp",
                                         "publication_sequence_number",
                                         "reception_sequence_number", "publisher_gid",
                                         "from_intra_process"]
    gid_data = from_header.publisher_gid.offset + from_header.publisher_gid.size - gid_size
    assert [(getattr(from_header, n).offset) for n in (
        "source_timestamp", "received_timestamp", "publication_sequence_number",
        "reception_sequence_number", "from_intra_process")] + [gid_data] == [
        getattr(ours, n).offset for n in (
            "source_timestamp", "received_timestamp", "publication_sequence_number",
            "reception_sequence_number", "from_intra_process", "gid_data")]
    assert ctypes.sizeof(from_header) == ctypes.sizeof(ours)


@pytest.mark.ros
def test_rcl_and_rclpy_read_the_same_message_info(ros_context):
    """The ctypes layer against the real library: one message, taken by rcl into our struct
    and by rclpy, gives the same stamp, sequence numbers and (where rclpy gives it) GID."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Header

    from dudes_ros.ros.intake import WorkerOwned
    from dudes_ros.ros.rcl_serialized import SerializedTaker, rcl

    lib = rcl()
    if lib is None:
        pytest.skip("librcl cannot be loaded here")
    node = rclpy.create_node("distro_info_test")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    group = WorkerOwned()
    by_rclpy = node.create_subscription(Header, "info", lambda m: None, qos,
                                        callback_group=group)
    by_rcl = node.create_subscription(Header, "info", lambda m: None, qos, raw=True,
                                      callback_group=group)
    publisher = node.create_publisher(Header, "info", qos)
    taker = SerializedTaker(by_rcl, lib)
    try:
        deadline = time.monotonic() + 10
        while publisher.get_subscription_count() < 2:
            assert time.monotonic() < deadline, "subscriptions not matched"
            time.sleep(0.01)
        for i in range(3):
            publisher.publish(Header(frame_id=str(i)))
        infos = {"rcl": [], "rclpy": []}
        deadline = time.monotonic() + 5
        while min(map(len, infos.values())) < 3 and time.monotonic() < deadline:
            with by_rclpy.handle:
                taken = by_rclpy.handle.take_message(by_rclpy.msg_type, False)
            if taken is not None:
                infos["rclpy"].append(taken[1])
            taken = taker.take()
            if taken is not None:
                infos["rcl"].append(taken[1])
        has_gid = distro.current().rclpy_info_has_publisher_gid
        assert all(("publisher_gid" in i) == has_gid for i in infos["rclpy"]), infos["rclpy"]
        keys = ["source_timestamp", "publication_sequence_number", "reception_sequence_number"]
        assert [[i[k] for k in keys] for i in infos["rcl"]] == [
            [i[k] for k in keys] for i in infos["rclpy"]]
        assert [i["publication_sequence_number"] for i in infos["rcl"]] == [1, 2, 3]
        if has_gid:
            assert [i["publisher_gid"]["data"] for i in infos["rcl"]] == [
                i["publisher_gid"]["data"] for i in infos["rclpy"]]
        assert len({i["publisher_gid"]["data"] for i in infos["rcl"]}) == 1
        assert all(any(i["publisher_gid"]["data"]) for i in infos["rcl"])
    finally:
        taker.close()
        node.destroy_node()
