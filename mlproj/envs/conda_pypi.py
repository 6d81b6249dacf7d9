"""conda -> PyPI: how a conda.yaml's conda dependencies become PyPI requirements.

A conda package is installed from PyPI under its PyPI name (``CONDA_TO_PYPI`` where the names
differ) with its version constraint rewritten as a PEP 508 specifier (``conda_version``:
``numpy=1.26`` is conda's fuzzy ``==1.26.*``, ``numpy=1.26.4`` is ``==1.26.4``); ``python`` gives the
interpreter version.  Native libraries and tools with no PyPI distribution (``CONDA_ONLY``,
``lib*``, ``cuda-*`` ...) and constraints that cannot be expressed (``a|b``) are collected as
unmappable, so that ``envfiles.conda_to_python_env`` can refuse them all in one message.  Pure
string work, no I/O; ``mlproj.envs.envfiles`` is its only user.
"""
from __future__ import annotations

import re

BUILD_PACKAGES = ('pip', 'setuptools', 'wheel')  # python_env's build_dependencies, not dependencies

# conda package names whose PyPI distribution has another name
CONDA_TO_PYPI = {
    'pytorch': 'torch',
    'pytorch-cpu': 'torch',
    'py-xgboost': 'xgboost',
    'py-xgboost-cpu': 'xgboost',
    'py-lightgbm': 'lightgbm',
    'py-catboost': 'catboost',
    'py-opencv': 'opencv-python',
    'opencv': 'opencv-python',
    'msgpack-python': 'msgpack',
    'matplotlib-base': 'matplotlib',
    'numpy-base': 'numpy',
    'pytables': 'tables',
    'ruamel_yaml': 'ruamel.yaml',
    'python-graphviz': 'graphviz',
    'tensorflow-gpu': 'tensorflow',
    'tensorflow-base': 'tensorflow',
    'pyqt': 'PyQt5',
    'typing_extensions': 'typing-extensions',
    'importlib_metadata': 'importlib-metadata',
    'py-spy': 'py-spy',
    'pillow-simd': 'pillow',
    'scikit-learn-intelex': 'scikit-learn-intelex',
    'mlflow-skinny': 'mlflow-skinny',
}
# conda packages that are native libraries / tools with no PyPI equivalent
CONDA_ONLY = {
    'cudatoolkit', 'cudnn', 'cuda', 'cuda-toolkit', 'cuda-nvcc', 'cuda-version', 'pytorch-cuda', 'cpuonly',
    'mkl', 'mkl-include', 'nomkl', 'blas', 'openblas', 'openssl', 'ca-certificates', 'zlib', 'xz', 'bzip2',
    'sqlite', 'tk', 'readline', 'ncurses', 'git', 'make', 'gcc', 'gxx', 'gfortran', 'compilers', 'cxx-compiler',
    'c-compiler', 'fortran-compiler', 'nodejs', 'openjdk', 'ffmpeg', 'graphviz', 'jpeg', 'libpng', 'freetype',
    'hdf5', 'arrow-cpp', 'libarrow', 'libprotobuf', 'r', 'r-base', 'boost', 'boost-cpp', 'icu', 'openmpi',
    'mpich', 'nccl', 'tbb', 'intel-openmp', 'llvm-openmp', 'conda', 'conda-build', 'mamba', 'yaml', 'expat',
    'zstd', 'lz4-c', 'snappy', 'gdal', 'proj', 'geos', 'libgdal', 'poppler', 'cairo', 'pango', 'glib', 'dbus',
}
_CONDA_ONLY_RE = re.compile(r'^(_|r-|lib(gcc|stdcxx|gfortran|blas|cblas|lapack|ffi|uuid|zlib|xml2|curl|ssh2|iconv'
                            r'|sodium|edit|nsl|sqlite|openblas|cu|npp|nvjpeg|jpeg|png|tiff|gomp|std)|cuda-'
                            r'|ld_impl|sysroot_|kernel-headers)')
_CONDA_SPEC_RE = re.compile(r'^(?:(?P<channel>[^\s:]+)::)?(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(?P<rest>.*)$')
_PY_VERSION_RE = re.compile(r'^\d+(\.\d+){0,2}(\.\*)?$')


class Mapped:
    """What a conda.yaml's dependencies map to, accumulated one dependency at a time."""

    def __init__(self) -> None:
        self.python: str | None = None
        self.build: list[str] = []
        self.deps: list[str] = []
        self.unmappable: list[str] = []


def conda_version(rest: str) -> str | None:
    """A conda version constraint as a PEP 508 specifier ('' = any, None = cannot be mapped)."""
    rest = rest.strip()
    if not rest:
        return ''
    if '|' in rest:
        return None
    if rest.startswith('=') and not rest.startswith('=='):
        parts = rest[1:].split('=')          # name=1.2=build -> fuzzy 1.2, build dropped
        version = parts[0].strip()
        if not version:
            return None
        if version.endswith('*') or version.count('.') >= 2:
            return f'=={version}'
        return f'=={version}.*'
    if rest.startswith('=='):
        version = rest[2:].split('=')[0].strip()
        return f'=={version}' if version else None
    if rest[0] in '<>!~':
        return rest.replace(' ', '')
    words = rest.split()                     # conda's "name 1.2.*" / "name >=1.2 build" forms
    version = words[0]
    if version[0] in '<>=!~':
        return conda_version(version)
    return f'=={version}'


def map_conda_dep(spec: str, where: str, out: Mapped) -> None:
    """Add one conda dependency (``where``: its file:line:col) to ``out``."""
    m = _CONDA_SPEC_RE.match(spec)
    if not m:
        out.unmappable.append(f'{spec} ({where})')
        return
    name = m.group('name').lower()
    rest = m.group('rest')
    version = conda_version(rest)
    if name == 'python':
        if version is None:
            out.unmappable.append(f'{spec} ({where})')
            return
        text = version
        if text.startswith('=='):
            text = text[2:]
            text = text[:-2] if text.endswith('.*') else text
            if not _PY_VERSION_RE.match(text):
                out.unmappable.append(f'{spec} ({where})')
                return
        out.python = text or None
        return
    if name in CONDA_ONLY or _CONDA_ONLY_RE.match(name) or version is None:
        out.unmappable.append(f'{spec} ({where})')
        return
    pypi = CONDA_TO_PYPI.get(name, name)
    (out.build if pypi in BUILD_PACKAGES else out.deps).append(pypi + version)
