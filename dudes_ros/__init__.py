"""dudes_ros: DUDES semantic segmentation with distilled uncertainty and an OOD alarm for ROS 2.

Layers, highest first; a module imports only from its own layer or lower ones
(tests/test_architecture.py holds this table)::

    apps      cli, doctor, demo/             commands and the demo; glue only
    ros       ros/                           rclpy only: node, params, intake, rcl publisher
    offline   bag/, evaluate/, train/,       bags; metrics and report; training; ONNX export
              export/
    messages  messages/                      typestore, message names, Image conversions,
                                             output builder (ROS-free; used by ros/ and bag/)
    core      perception, inference/         PerceptionCore (frames -> results, OOD); backends
    runtime   runtime/                       manifest, deploy graph, CUDA memory, engines
    base      labels, config, uncertainty, ood, model/, data/, resources, errors, argtypes,
              plots, files
"""

__version__ = "0.1.0"
