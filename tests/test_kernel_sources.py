"""The kernel table against kernels/*.cu, and every .cu through nvcc (no GPU needed)."""
import re
import shutil
import subprocess

import pytest

from minicnn.backend.kernels import CTYPE, KERNELS, c_signature, kernel_dir, kernel_source

# GPU architectures we support: Turing (sm_75, the oldest CUDA 13 builds for) to Blackwell.
ARCHS = ("75", "80", "86", "89", "90", "100", "120")
SOURCES = sorted({k.source for k in KERNELS.values()})


def declared_kernels(text):
    """{name: (arg types)} of every `template <typename T> __global__ void name(...)`."""
    found = {}
    for name, params in re.findall(r"template\s*<\s*typename\s+T\s*>\s*__global__\s+void\s+"
                                   r"(\w+)\s*\(([^)]*)\)", text):
        types = []
        for param in params.split(","):
            words = param.replace("__restrict__", "").replace("*", " * ").split()
            types.append(" ".join(words[:-1]).replace(" *", "*"))    # drop the parameter name
        found[name] = tuple(types)
    return found


def test_every_table_entry_exists_in_its_source_with_the_same_arguments():
    for name, spec in KERNELS.items():
        declared = declared_kernels((kernel_dir() / spec.source).read_text())
        assert name in declared, f"{name} is not defined in kernels/{spec.source}"
        assert declared[name] == spec.args, f"{name}: table {spec.args} != source {declared[name]}"


def test_every_kernel_in_the_sources_is_in_the_table():
    for source in kernel_dir().glob("*.cu"):
        for name in declared_kernels(source.read_text()):
            assert KERNELS.get(name, (None,))[0] == source.name, f"{source.name}: {name} not in table"


def test_kernels_use_no_shared_memory_or_barriers():
    """The simulator runs a block's threads one after another; see kernels/host/cuda_host.h."""
    for path in kernel_dir().glob("*.cu*"):
        text = re.sub(r"//.*", "", path.read_text())
        assert "__shared__" not in text and "__syncthreads" not in text, path.name


def test_sources_inline_their_includes_for_nvrtc():
    for source in SOURCES:
        text = kernel_source(source)
        assert "#include" not in text and "GRID_STRIDE_LOOP(i, n)" in text


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on the PATH")
@pytest.mark.parametrize("source", SOURCES)
def test_compiles_with_nvcc_warnings_as_errors(tmp_path, source):
    instances = [f"template __global__ void {name}<{ctype}>({c_signature(name, ctype)});"
                 for name, spec in KERNELS.items() if spec.source == source
                 for ctype in CTYPE.values()]
    unit = tmp_path / "unit.cu"
    unit.write_text(f'#include "{source}"\n' + "\n".join(instances) + "\n")
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]
    result = subprocess.run(["nvcc", "-std=c++17", "-c", "-Werror", "all-warnings",
                             f"-I{kernel_dir()}", *gencode, str(unit), "-o",
                             str(tmp_path / "unit.o")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
