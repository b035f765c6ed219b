"""The time-skipping Temporal test server (Java, from Maven Central), for simulations and tests.

`mvn dependency:copy-dependencies` fetches `io.temporal:temporal-test-server` and its
dependencies into `~/.cache/nurture/test-server/<version>/lib` once; a wrapper script that
`exec`s java is what `WorkflowEnvironment.start_time_skipping` runs. Without Java and Maven
the SDK downloads its own test server (machines with internet).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from starter.dev.provisioning.paths import cache_dir

log = logging.getLogger(__name__)

TEST_SERVER_VERSION = "1.31.0"
MAIN_CLASS = "io.temporal.testserver.TestServer"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.nurture</groupId>
  <artifactId>temporal-test-server-fetch</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


def test_server_dir() -> Path:
    return cache_dir() / "test-server" / TEST_SERVER_VERSION


def ensure_test_server() -> Path | None:
    """The wrapper script that runs the Java test server, fetching it once; None when Java
    or Maven is missing (the SDK then downloads its own)."""
    home = test_server_dir()
    wrapper = home / "temporal-test-server"
    if wrapper.exists() and any((home / "lib").glob("temporal-test-server-*.jar")):
        return wrapper
    java, mvn = shutil.which("java"), shutil.which("mvn")
    if java is None or mvn is None:
        return None
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_POM.format(version=TEST_SERVER_VERSION))
    log.warning(
        "fetching the Temporal test server %s with Maven (first run only)…", TEST_SERVER_VERSION
    )
    # Maven's output goes to stderr: stdout of `nurture provision` is read by scripts/test.
    subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={home / 'lib'}",
        ],
        cwd=home,
        check=True,
        stdout=sys.stderr,
    )
    wrapper.write_text(f'#!/bin/sh\nexec "{java}" -cp "{home / "lib"}/*" {MAIN_CLASS} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


async def start_time_skipping() -> WorkflowEnvironment:
    """A time-skipping environment: timers fire as soon as nothing else is running."""
    wrapper = ensure_test_server()
    return await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(wrapper) if wrapper else None,
    )
