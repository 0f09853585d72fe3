"""onnxruntime provider choice: CPU when asked or when CUDA is absent, and a loud error for a missing CUDA."""
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from models.runtime import check_providers, create_session, select_providers

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture(scope="module")
def identity_model(tmp_path_factory):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    path = tmp_path_factory.mktemp("onnx") / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_cpu_is_always_cpu_and_unknown_devices_are_refused():
    assert select_providers("cpu") == ["CPUExecutionProvider"]
    assert select_providers("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(ValueError, match="device must be auto, cpu or cuda"):
        select_providers("tpu")


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime offers CUDA")
def test_cuda_without_the_cuda_provider_fails_loudly(identity_model):
    assert select_providers("auto") == ["CPUExecutionProvider"]
    with pytest.raises(RuntimeError, match="device=cuda asked for"):
        create_session(identity_model, device="cuda")


def test_a_session_that_fell_back_to_the_cpu_is_refused_for_cuda(identity_model):
    session = create_session(identity_model, device="cpu")
    check_providers(session, "cpu")
    check_providers(session, "auto")
    with pytest.raises(RuntimeError, match="runs identity.onnx with \\['CPUExecutionProvider'\\]"):
        check_providers(session, "cuda", "identity.onnx")
