"""Generate Python code and a buf image from proto/ without the Buf Schema Registry.

protovalidate's wheel embeds the serialized descriptor of buf/validate/validate.proto; we lift those
bytes out of its generated module, add the well-known types it imports, and hand the set to protoc
(grpc_tools) as --descriptor_set_in. The same run writes the image that `buf lint` and `buf breaking` read.

Usage: python tools/protogen.py --proto-dir proto --out gen/python --image build/image.binpb
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
from pathlib import Path

from google.protobuf import (
    descriptor_pb2,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from grpc_tools import protoc

WELL_KNOWN = (descriptor_pb2, duration_pb2, empty_pb2, field_mask_pb2, struct_pb2, timestamp_pb2, wrappers_pb2)


def validate_proto_bytes() -> bytes:
    """Return the serialized FileDescriptorProto of buf/validate/validate.proto shipped by protovalidate."""
    spec = importlib.util.find_spec("protovalidate")
    if spec is None or spec.origin is None:
        raise SystemExit("protovalidate is not installed in this environment")
    source = Path(spec.origin).parent / "_gen" / "buf" / "validate" / "validate_pb.py"
    tree = ast.parse(source.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "file_desc":
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, bytes):
                return first.value
    raise SystemExit(f"no file_desc(...) bytes found in {source}")


def dependency_set() -> descriptor_pb2.FileDescriptorSet:
    """Well-known types plus buf/validate/validate.proto, in dependency order."""
    fds = descriptor_pb2.FileDescriptorSet()
    for module in WELL_KNOWN:
        fds.file.add().ParseFromString(module.DESCRIPTOR.serialized_pb)
    fds.file.add().ParseFromString(validate_proto_bytes())
    return fds


def run_protoc(args: list[str]) -> None:
    code = protoc.main(["grpc_tools.protoc", *args])
    if code != 0:
        raise SystemExit(f"protoc failed ({code}): {' '.join(args)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proto-dir", type=Path, default=Path("proto"))
    parser.add_argument("--out", type=Path, help="directory for generated Python (omit to build only the image)")
    parser.add_argument("--image", type=Path, required=True, help="buf image to write (binpb)")
    opts = parser.parse_args()

    protos = sorted(str(p.relative_to(opts.proto_dir)) for p in opts.proto_dir.rglob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {opts.proto_dir}")
    opts.image.parent.mkdir(parents=True, exist_ok=True)
    deps = opts.image.parent / "deps.binpb"
    deps.write_bytes(dependency_set().SerializeToString())

    common = [f"--descriptor_set_in={deps}", f"-I{opts.proto_dir}"]
    run_protoc([*common, "--include_imports", "--include_source_info", f"--descriptor_set_out={opts.image}", *protos])
    if opts.out is not None:
        opts.out.mkdir(parents=True, exist_ok=True)
        outs = [f"--python_out={opts.out}", f"--pyi_out={opts.out}"]
        run_protoc([f"--descriptor_set_in={deps}", *outs, "buf/validate/validate.proto"])
        run_protoc([*common, *outs, f"--grpc_python_out={opts.out}", *protos])
        for module in opts.out.rglob("*_pb2.py"):
            for package in module.relative_to(opts.out).parents[:-1]:
                (opts.out / package / "__init__.py").touch()
    print(f"generated {len(protos)} proto files -> {opts.image}", file=sys.stderr)


if __name__ == "__main__":
    main()
