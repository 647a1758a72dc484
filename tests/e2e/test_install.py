# SPDX-License-Identifier: BSD-3-Clause
"""`cmake --install` into a temporary prefix, and what an operator or a
program embedding libtally gets from it: tallyd and tally that run, a shared
libtally exporting only the tally_* functions of tally.h, a static one,
tally.pc and a CMake package that programs build against.

The build directory is the one $TALLYD lives in (CMAKE_RUNTIME_OUTPUT_DIRECTORY
is the build's top).  A test that needs a tool this machine lacks (cc, cmake,
pkg-config, nm) fails under CI=true (scripts/deps.sh installs them) and is
skipped elsewhere."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import conftest
from conftest import REPO, TALLYD

BUILD = Path(TALLYD).resolve().parent


def need(*tools):
    for tool in tools:
        if shutil.which(tool) is None:
            msg = f"{tool} is not installed (scripts/deps.sh test installs it)"
            if os.environ.get("CI"):
                pytest.fail(msg)
            pytest.skip(msg)


def project_version():
    text = (REPO / "CMakeLists.txt").read_text()
    return re.search(r"project\(tally VERSION (\d+)\.(\d+)\.(\d+)", text).groups()


def run(*argv, env=None, cwd=None, timeout=300):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                       env=env, cwd=cwd, timeout=timeout)
    assert r.returncode == 0, (f"{' '.join(map(str, argv))} exited "
                               f"{r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """The build installed with `cmake --install BUILD --prefix P`."""
    if not (BUILD / "CMakeCache.txt").exists():
        pytest.skip(f"{BUILD} is not a CMake build directory")
    need("cmake")
    p = tmp_path_factory.mktemp("prefix")
    run("cmake", "--install", BUILD, "--prefix", p)
    return p


def libdir(prefix):
    """GNUInstallDirs' LIBDIR under prefix (lib, or lib/<multiarch>)."""
    found = sorted(prefix.glob("lib*/**/libtally.so")) + \
        sorted(prefix.glob("lib*/libtally.so"))
    assert found, f"no libtally.so under {prefix}"
    return found[0].parent


def pc_env(prefix):
    env = dict(os.environ)
    env["PKG_CONFIG_PATH"] = str(libdir(prefix) / "pkgconfig")
    return env


def test_install_puts_each_file_in_its_gnu_place(prefix):
    lib = libdir(prefix)
    major, minor, patch = project_version()
    expect = [
        "sbin/tallyd", "bin/tally", "include/tally.h", "include/tally_version.h",
        "share/doc/tally/LICENSE", "share/doc/tally/CHANGELOG.md",
        "share/doc/tally/tallyd.conf.example", "lib/systemd/system/tallyd.service",
    ]
    for rel in expect:
        assert (prefix / rel).is_file(), f"{rel} not installed"
    assert os.access(prefix / "sbin/tallyd", os.X_OK)
    assert (lib / "libtally.a").is_file()
    real = lib / f"libtally.so.{major}.{minor}.{patch}"
    assert real.is_file() and not real.is_symlink()
    assert (lib / "libtally.so").resolve() == real.resolve()
    assert (lib / "pkgconfig/tally.pc").is_file()
    assert (lib / "cmake/tally/tallyConfig.cmake").is_file()
    assert (lib / "cmake/tally/tallyConfigVersion.cmake").is_file()


def test_install_honours_destdir(tmp_path):
    if not (BUILD / "CMakeCache.txt").exists():
        pytest.skip(f"{BUILD} is not a CMake build directory")
    need("cmake")
    env = dict(os.environ, DESTDIR=str(tmp_path / "stage"))
    run("cmake", "--install", BUILD, "--prefix", "/opt/tally", env=env)
    assert (tmp_path / "stage/opt/tally/sbin/tallyd").is_file()
    assert (tmp_path / "stage/opt/tally/include/tally.h").is_file()


def test_shared_library_has_a_soname_and_exports_only_tally_h(prefix):
    need("nm", "readelf")
    major, minor, _ = project_version()
    so = libdir(prefix) / "libtally.so"
    dyn = run("readelf", "-d", so)
    soname = re.search(r"Library soname: \[(.*?)\]", dyn).group(1)
    # Before 1.0.0 a minor release may break the ABI (CHANGELOG.md).
    assert soname == (f"libtally.so.0.{minor}" if major == "0"
                      else f"libtally.so.{major}")
    assert (libdir(prefix) / soname).exists()

    exported = set()
    for line in run("nm", "-D", "--defined-only", so).splitlines():
        kind, name = line.split()[-2:]
        if kind in "TDBRVWi" and name not in ("_init", "_fini"):
            exported.add(name.split("@")[0])
    strays = sorted(n for n in exported if not n.startswith("tally_"))
    assert not strays, f"libtally.so exports internal symbols: {strays}"

    header = (prefix / "include/tally.h").read_text()
    declared = set(re.findall(r"^(?!static)[a-z][^;{]*?\b(tally_\w+)\(",
                              header, re.M))
    assert len(declared) > 20, declared
    assert exported == declared, (
        f"exported but not in tally.h: {sorted(exported - declared)}; "
        f"in tally.h but not exported: {sorted(declared - exported)}")


def test_counter_example_builds_against_the_installed_tally_pc(prefix, tmp_path):
    need("cc", "pkg-config")
    env = pc_env(prefix)
    flags = run("pkg-config", "--cflags", "--libs", "tally", env=env).split()
    major, minor, patch = project_version()
    assert run("pkg-config", "--modversion", "tally",
               env=env).strip() == f"{major}.{minor}.{patch}"
    exe = tmp_path / "counter"
    run("cc", "-Wall", "-Werror", "-o", exe, REPO / "examples/counter.c",
        *flags, env=env)

    env["LD_LIBRARY_PATH"] = str(libdir(prefix))
    # It runs against the installed shared library, not a copy in the build.
    ldd = run("ldd", exe, env=env)
    assert str(libdir(prefix) / "libtally.so") in ldd, ldd
    data = tmp_path / "data"
    assert run(exe, data, "visits", "5", env=env).strip() == "5"
    assert run(exe, data, "visits", "-2", env=env).strip() == "3"


CMAKE_PROJECT = """\
cmake_minimum_required(VERSION 3.18)
project(uses_tally LANGUAGES C)
find_package(tally {version} REQUIRED)
add_executable(counter_shared {counter})
target_link_libraries(counter_shared PRIVATE tally::tally)
add_executable(counter_static {counter})
target_link_libraries(counter_static PRIVATE tally::tally_static)
"""


def test_a_cmake_project_finds_the_package_and_links(prefix, tmp_path):
    need("cmake", "cc")
    major, minor, patch = project_version()
    src = tmp_path / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(CMAKE_PROJECT.format(
        version=f"{major}.{minor}", counter=REPO / "examples/counter.c"))
    build = tmp_path / "build"
    run("cmake", "-S", src, "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}")
    run("cmake", "--build", build)
    env = dict(os.environ, LD_LIBRARY_PATH=str(libdir(prefix)))
    assert run(build / "counter_shared", tmp_path / "d1", "k", "7",
               env=env).strip() == "7"
    # The static one needs no library path at all.
    assert run(build / "counter_static", tmp_path / "d2", "k", "8").strip() == "8"
    assert "libtally" not in run("ldd", build / "counter_static")


def test_a_cmake_project_asking_for_another_minor_version_is_refused(prefix, tmp_path):
    need("cmake")
    major, minor, _ = project_version()
    src = tmp_path / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(p LANGUAGES C)\n"
        f"find_package(tally {major}.{int(minor) + 1} REQUIRED)\n")
    r = subprocess.run(["cmake", "-S", str(src), "-B", str(tmp_path / "b"),
                        f"-DCMAKE_PREFIX_PATH={prefix}"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "tallyConfigVersion.cmake" in r.stderr or "version" in r.stderr


@pytest.mark.own_server
def test_the_installed_tallyd_starts_and_serves(prefix, tmp_path, monkeypatch):
    monkeypatch.setattr(conftest, "TALLYD", str(prefix / "sbin/tallyd"))
    d = conftest.Tallyd(tmp_path / "installed")
    try:
        d.start()
        assert d.redis().ping() is True
        assert d.redis().incrby("installed", 3) == 3
        out = subprocess.run([str(prefix / "bin/tally"), "-p", str(d.port),
                              "ping"], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, out.stderr
        assert "PONG" in out.stdout
        d.stop()
    finally:
        d.cleanup()


def test_in_tree_tallyd_and_tally_link_the_engine_statically():
    """The shared library is for other programs: tallyd and tally keep the
    engine inside the binary (direct calls on the hot path, no PLT)."""
    need("nm")
    for exe in (BUILD / "tallyd", BUILD / "tally"):
        assert "libtally" not in run("ldd", exe), exe
        defined = run("nm", "--defined-only", exe)
        assert re.search(r" T tally_incr$", defined, re.M), exe


def help_flags(exe):
    out = run(exe, "--help")
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out))


@pytest.mark.parametrize("page, exe", [("man8/tallyd.8", "tallyd"),
                                       ("man1/tally.1", "tally")])
def test_man_pages_are_installed_as_roff_and_name_every_flag(prefix, page, exe):
    roff = prefix / "share/man" / page
    if not roff.exists() and not os.environ.get("CI") and \
            shutil.which("scdoc") is None:
        pytest.skip("scdoc is not installed (scripts/deps.sh build installs it)")
    assert roff.is_file(), f"{page} not installed"
    text = roff.read_text()
    assert text.startswith(".\\\"") or text.startswith(".TH") or ".TH" in text[:400]
    # scdoc writes "\-" for a dash in roff; compare in plain text.
    plain = text.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "")
    missing = sorted(f for f in help_flags(BUILD / exe) if f not in plain)
    assert not missing, f"{page} does not document {missing} (man/{Path(page).name}.scd)"
