"""``dudes demo``: a synthetic drive (or the user's bag or images) through the real node.

Modules: ``sources`` (what is played: frames plus, for the synthetic drive, when the anomaly
is in view), ``node_process`` (the node in its own process), ``camera`` (the rclpy side:
publish, collect and record to MCAP), ``report`` (summary numbers and PNGs, ROS-free) and
``session`` (``run_demo``, which wires them together; its command line is
``dudes_ros.commands.demo``).
"""
