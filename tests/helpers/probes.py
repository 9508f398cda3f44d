"""A backend probe with fixed answers, for ``choose_backend`` on any machine."""


class FixedProbe:
    """What ``factory.Probe`` would find: GPUs, installed packages, ONNX Runtime providers."""

    def __init__(self, gpus=1, tensorrt=False, cuda_python=False, providers=("CPU",),
                 torch_cuda=False, onnx2torch=False, counted_by="cuda-python",
                 driver_present=None) -> None:
        self.gpus = (gpus, counted_by)
        self.driver_present = bool(gpus) if driver_present is None else driver_present
        self.tensorrt, self.cuda_python = tensorrt, cuda_python
        self.ort_providers = tuple(f"{p}ExecutionProvider" for p in providers)
        self.torch_cuda, self.onnx2torch = torch_cuda, onnx2torch
