"""What TensorRT's ONNX parser refuses in a graph's tensor types, checked on the CPU.

onnx-tensorrt (docs/operators.md): "UINT8 is only supported as network input or output tensor
types", and ModelImporter refuses "UINT8 types for intermediate tensors"; a tensor of a type
TensorRT has no ``DataType`` for (double, 16/32/64-bit unsigned, int16, strings, complex) stops
the parse too. Export and the precision variants run this check, so a graph that every engine
build would refuse never reaches a car.
"""

from __future__ import annotations

from pathlib import Path

# ONNX TensorProto element types with a TensorRT DataType (UINT8 only at the graph's edges).
TENSORRT_TYPES = {
    1: "FLOAT", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "FLOAT16",
    16: "BFLOAT16", 17: "FLOAT8E4M3FN", 22: "INT4",
}
UINT8 = 2


def tensor_types(model) -> dict[str, int]:
    """Every tensor of ``model`` (onnx.ModelProto) -> its element type, after shape inference."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*graph.input, *graph.output, *graph.value_info]}
    types.update({t.name: t.data_type for t in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                types[node.output[0]] = value.data_type
    return types


def tensorrt_type_problems(model_or_path) -> list[str]:
    """What TensorRT's parser would refuse in the tensor types of a model (a path or
    ``onnx.ModelProto``); empty when it parses."""
    import onnx

    model = model_or_path
    if isinstance(model_or_path, (str, Path)):
        model = onnx.load(str(model_or_path), load_external_data=False)
    graph = model.graph
    edges = {v.name for v in [*graph.input, *graph.output]}
    problems = []
    for name, elem_type in sorted(tensor_types(model).items()):
        type_name = onnx.TensorProto.DataType.Name(elem_type)
        if elem_type not in TENSORRT_TYPES:
            problems.append(f"tensor {name!r} is {type_name}, which TensorRT has no type for")
        elif elem_type == UINT8 and name not in edges:
            problems.append(f"intermediate tensor {name!r} is UINT8 (TensorRT accepts UINT8 "
                            "only as a network input or output)")
    return problems
