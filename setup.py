"""ament_python / setuptools build of dudes_ros (``colcon build`` or ``pip install .``)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dudes_ros"

RUNTIME = [
    "numpy>=1.24",
    "pyyaml>=6",
    "opencv-python-headless>=4.8,<5",
    "filelock>=3.12",
    "tqdm>=4.60",
    "matplotlib>=3.7",
    "psutil>=5.9",
    "onnxruntime>=1.17",
    "rosbags>=0.10",
    "scikit-image>=0.22",  # public-domain photos for synthetic anomalies (demo, data)
]
EXTRAS = {
    "torch": ["torch>=2.1", "torchvision>=0.16", "segmentation-models-pytorch>=0.5",
              "onnx>=1.16", "onnxscript>=0.1", "onnx2torch>=1.5"],
    # The car's TensorRT path: tensorrt itself comes with JetPack or NVIDIA's wheels.
    "tensorrt": ["cuda-python>=12.6"],
    "eval": ["scikit-learn>=1.3", "torchmetrics>=1.0",
             "cityscapesscripts>=2.2"],
    # launch (tests/test_launch.py) needs osrf-pycommon; colcon builds the package there
    # rosbags-image cross-checks the package's own Image decoder (tests/test_conversions.py)
    "test": ["rosbags-image>=0.10", "pytest>=8", "pytest-timeout>=2", "hypothesis>=6",
             "ruff>=0.5", "mcap>=1.1", "mcap-ros2-support>=0.5", "osrf-pycommon>=2",
             "colcon-common-extensions>=0.3"],
}
EXTRAS["all"] = sorted({dep for deps in EXTRAS.values() for dep in deps})

setup(
    name=PACKAGE,
    version="0.1.0",
    description="DUDES segmentation with distilled uncertainty and an OOD alarm for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/config/recipes", glob("config/recipes/*.yaml")),
        (f"share/{PACKAGE}/engines", glob("engines/*.onnx") + glob("engines/*.json")
         + glob("engines/*.md")),
    ],
    install_requires=RUNTIME,
    extras_require=EXTRAS,
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "dudes = dudes_ros.cli:main",
            "dudes_node = dudes_ros.ros.node:main",
        ],
    },
)
