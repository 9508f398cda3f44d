"""ament_python / setuptools build of dudes_ros (``colcon build`` or ``pip install .``)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dudes_ros"

# Each runtime requirement with the rosdep key that installs it on a ROS machine; package.xml
# lists exactly these keys as exec_depend (tests/test_packaging.py holds the two together).
RUNTIME_ROSDEP_KEYS = {
    "numpy>=1.24": "python3-numpy",
    "pyyaml>=6": "python3-yaml",
    "opencv-python-headless>=4.8,<5": "python3-opencv",
    "pillow>=9": "python3-pil",  # compressed-image header check (messages.conversions)
    "filelock>=3.12": "python3-filelock",
    "tqdm>=4.60": "python3-tqdm",
    "matplotlib>=3.7": "python3-matplotlib",
    "onnxruntime>=1.17": "python3-onnxruntime-pip",
    "rosbags>=0.10": "python3-rosbags-pip",
    # public-domain photos for synthetic anomalies (demo, data)
    "scikit-image>=0.22": "python3-skimage",
}
RUNTIME = list(RUNTIME_ROSDEP_KEYS)
EXTRAS = {
    "torch": ["torch>=2.1", "torchvision>=0.16", "segmentation-models-pytorch>=0.5",
              "onnx>=1.16", "onnxscript>=0.1", "onnx2torch>=1.5"],
    # The car's TensorRT path: TensorRT itself comes with JetPack or NVIDIA's wheels. cuda-python
    # follows the CUDA major of the driver and TensorRT: cuda-bindings 13 needs driver 580 or
    # newer and fails every call on an older one; 12.6.1 is the first with cuda.bindings. onnx
    # makes the fp16/int8 variants (runtime/precision.py).
    "tensorrt-cu12": ["cuda-python>=12.6.1,<13", "onnx>=1.16"],
    "tensorrt-cu13": ["cuda-python>=13,<14", "onnx>=1.16"],
    "eval": ["scikit-learn>=1.3", "torchmetrics>=1.0",
             "cityscapesscripts>=2.2"],
    # launch (tests/test_launch.py) needs osrf-pycommon; colcon builds the package there
    # rosbags-image cross-checks the package's own Image decoder (tests/test_conversions.py)
    # psutil measures the node process (tests/test_faults.py, test_launch.py, soak benchmark);
    # rosdep and vermin check the ROS distributions and Python 3.10 (Humble) on paper
    "test": ["rosbags-image>=0.10", "pytest>=8", "pytest-timeout>=2", "hypothesis>=6",
             "ruff>=0.5", "mcap>=1.1", "mcap-ros2-support>=0.5", "osrf-pycommon>=2",
             "colcon-common-extensions>=0.3", "psutil>=5.9", "rosdep>=0.27", "vermin>=1.9"],
}
EXTRAS["all"] = sorted({dep for name, deps in EXTRAS.items() for dep in deps
                        if name != "tensorrt-cu12"})  # one CUDA major: cu13's

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
