"""The kubelet pod-resources v1 API: `api.proto` and the Python code generated from it.

`api_pb2.py`, `api_pb2.pyi` and `api_pb2_grpc.py` are generated; never edit them.
After changing `api.proto`, regenerate them from the repository root with:

    python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
        exporter/sources/podresources/api.proto

The output depends on the grpcio-tools version, which is why the dev extra pins it;
tests/test_kubelet.py fails when the committed files differ from a fresh generation.
"""
