"""The kernel table against kernels/*.cu, and every .cu through nvcc (no GPU needed)."""
import re
import shutil
import subprocess

import pytest

from minicnn.backend.cuda_shared import (CTYPE, KERNELS, c_signature, kernel_dir, kernel_source,
                                         split_param)

# GPU architectures we support: Turing (sm_75, the oldest CUDA 13 builds for) to Blackwell.
ARCHS = ("75", "80", "86", "89", "90", "100", "120")
SOURCES = sorted({k.source for k in KERNELS.values()})


def declared_kernels(text):
    """{name: ("type name", ...)} of every `template <typename T> __global__ void name(...)`,
    written as the table writes parameters ('const T* x', without __restrict__)."""
    found = {}
    for name, params in re.findall(r"template\s*<\s*typename\s+T\s*>\s*__global__\s+void\s+"
                                   r"(\w+)\s*\(([^)]*)\)", text):
        found[name] = tuple(" ".join(p.replace("__restrict__", "").replace("*", "* ").split())
                            .replace(" *", "*") for p in params.split(","))
    return found


def test_declared_kernels_reads_names_and_types():
    text = "template <typename T>\n__global__ void k(const T *__restrict__ x,\n int* a, T lr) {}"
    assert declared_kernels(text) == {"k": ("const T* x", "int* a", "T lr")}


def test_every_table_entry_exists_in_its_source_with_the_same_parameters():
    for name, spec in KERNELS.items():
        declared = declared_kernels((kernel_dir() / spec.source).read_text())
        assert name in declared, f"{name} is not defined in kernels/{spec.source}"
        assert declared[name] == spec.params, f"{name}: table {spec.params} != source {declared[name]}"


def test_every_kernel_in_the_sources_is_in_the_table():
    for source in kernel_dir().glob("*.cu"):
        for name in declared_kernels(source.read_text()):
            assert name in KERNELS and KERNELS[name].source == source.name, \
                f"{source.name}: {name} is not in the table"


def test_every_grid_parameter_is_an_int_of_its_kernel():
    for name, spec in KERNELS.items():
        assert f"int {spec.grid}" in spec.params, name


def test_kernels_use_no_shared_memory_or_barriers():
    """The simulator runs a block's threads one after another; see kernels/host/cuda_host.h."""
    for path in kernel_dir().rglob("*.cu*"):
        text = re.sub(r"//.*", "", path.read_text())
        assert "__shared__" not in text and "__syncthreads" not in text, path.name


def test_sources_inline_their_includes_for_nvrtc():
    for source in SOURCES:
        text = kernel_source(source)
        assert "#include" not in text and "GRID_STRIDE_LOOP(i, n)" in text


def test_c_signature_substitutes_only_the_type_t():
    assert split_param("int PT") == ("int", "PT")
    assert c_signature("maxpool_fwd", "double").startswith("const double* x, double* y, int* argmax")
    assert c_signature("maxpool_fwd", "double").endswith("int PT, int PL, int OH, int OW")


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
