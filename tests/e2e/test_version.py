# SPDX-License-Identifier: BSD-3-Clause
"""The version a build reports: one release number (project(VERSION) in the
top CMakeLists.txt) and the git revision the build came from, the same in
`tallyd --version`, `tally --version`, INFO server and /metrics."""

import re
import subprocess

import pytest
import requests

from conftest import REPO, TALLY_CLI, TALLYD


def project_version():
    text = (REPO / "CMakeLists.txt").read_text()
    return re.search(r"project\(tally VERSION (\d+\.\d+\.\d+)", text).group(1)


def parse_version_line(line, program):
    m = re.fullmatch(program + r" (\S+) \(git (\S+)\)", line.strip())
    assert m, f"unexpected --version output {line!r}"
    return m.group(1), m.group(2)


def check_revision(rev):
    """A revision is "unknown" outside git, else a commit of this repository
    (maybe an older one than HEAD, if the build is stale), maybe -dirty."""
    if rev == "unknown":
        inside = subprocess.run(["git", "-C", str(REPO), "rev-parse"],
                                capture_output=True).returncode == 0
        assert not inside, "built inside a git checkout but reports unknown"
        return
    sha = rev.removesuffix("-dirty")
    assert re.fullmatch(r"[0-9a-f]{12}", sha), rev
    r = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e",
                        sha + "^{commit}"], capture_output=True)
    assert r.returncode == 0, f"{sha} is not a commit of {REPO}"


def test_tallyd_and_tally_print_the_project_version_and_a_real_revision():
    out = subprocess.run([TALLYD, "--version"], capture_output=True,
                         text=True, check=True).stdout
    version, rev = parse_version_line(out, "tallyd")
    assert version == project_version()
    check_revision(rev)
    out = subprocess.run([TALLY_CLI, "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert parse_version_line(out, "tally") == (version, rev)


@pytest.mark.own_server
def test_info_server_and_metrics_carry_the_same_version_and_revision(tallyd):
    out = subprocess.run([TALLYD, "--version"], capture_output=True,
                         text=True, check=True).stdout
    version, rev = parse_version_line(out, "tallyd")

    info = tallyd.raw().cmd("INFO", "server").decode()
    fields = dict(line.split(":", 1) for line in info.split("\r\n")
                  if ":" in line)
    assert fields["tally_version"] == version
    assert fields["tally_git_revision"] == rev
    assert fields["redis_git_sha1"] == rev

    metrics = requests.get(tallyd.url + "/metrics", timeout=10).text
    m = re.search(r'^tally_build_info\{version="([^"]*)",revision="([^"]*)",'
                  r'sync="always"\} 1$', metrics, re.M)
    assert m, metrics[:400]
    assert m.groups() == (version, rev)
