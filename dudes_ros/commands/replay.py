"""``dudes replay BAG``: publish a bag into the live ROS 2 graph at the recorded rate (the work:
``dudes_ros.bag.replay.replay``; the stamp and clock choices are explained there)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dudes_ros.bag.reader import BagError
from dudes_ros.bag.replay import ReplayOptions, Restamp, replay


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="rosbag2 directory (sqlite3 or MCAP), single "
                        ".mcap/.db3 file, or ROS 1 .bag file")
    parser.add_argument("--rate", type=float, default=1.0, help="speed factor (default 1.0)")
    parser.add_argument("--loop", action="store_true", help="repeat until Ctrl-C")
    parser.add_argument("--topics", nargs="+", default=(), metavar="TOPIC",
                        help="topics to publish (default: all with an installed message type)")
    parser.add_argument("--start-offset", type=float, default=0.0, metavar="SECONDS",
                        help="skip the first SECONDS of the bag")
    parser.add_argument("--clock", type=float, default=0.0, metavar="HZ", nargs="?", const=100.0,
                        help="publish /clock in bag time (at HZ while waiting, default 100) and "
                        "the recorded header stamps, for nodes with use_sim_time:=true")
    parser.add_argument("--keep-stamps", action="store_true",
                        help="publish the recorded header stamps (default: restamped to now, "
                        "published = recorded + D ns per pass, D printed)")
    parser.add_argument("--qos-depth", type=int, default=10, help="publisher queue depth")
    parser.add_argument("--best-effort", action="store_true",
                        help="best-effort publishers (default: reliable, which also reaches "
                        "best-effort subscribers)")
    parser.add_argument("--wait-for-subscribers", type=float, default=5.0, metavar="SECONDS",
                        help="before starting, wait up to SECONDS until every publisher has a "
                        "subscriber, so that discovery does not cost the first messages "
                        "(default 5; 0: start at once)")


def run(args: argparse.Namespace) -> int:
    try:
        options = ReplayOptions(rate=args.rate, loops=None if args.loop else 1,
                                topics=tuple(args.topics), start_offset=args.start_offset,
                                clock_hz=args.clock or 0.0,
                                restamp=not (args.keep_stamps or args.clock))
    except ValueError as exc:
        print(f"dudes replay: error: {exc}", file=sys.stderr)
        return 2

    def restamped(stamp_map: Restamp) -> None:
        print(f"header stamps restamped to now: {stamp_map.describe()} "
              "(--keep-stamps or --clock: as recorded)", flush=True)

    try:
        count = replay(args.bag, options, qos_depth=args.qos_depth,
                       best_effort=args.best_effort,
                       wait_for_subscribers=args.wait_for_subscribers, restamped=restamped)
    except BagError as exc:
        print(f"dudes replay: error: {exc}", file=sys.stderr)
        return 2
    print(f"published {count} messages")
    return 0
