"""Postfix, a real MTA, as the relay Nurture sends through in the tests (issue 16).

Installed from Debian's `postfix` package when missing (root; the package is left
unconfigured, "No configuration"), then run as a private instance: its own config,
queue and log under one directory, listening on a loopback port, never touching the
machine's own mail system. Mail for the instance's `local_domain` is delivered locally,
so a recipient that isn't a user there bounces with Postfix's own RFC 3464 report;
`routes` send other domains (the bounce domain, a customer's) to SMTP servers by a
transport map.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from starter.dev.provisioning.debian_packages import apt_install, can_install

log = logging.getLogger(__name__)

PACKAGE_MASTER_CF = Path("/etc/postfix/master.cf")
# Debian's postinst asks what kind of mail system this is; we configure each instance.
PRESEED = "postfix postfix/main_mailer_type select No configuration\n"


class PostfixProvisioningError(RuntimeError):
    """Postfix could not be provided or started; the message says what to do."""


def find_postfix() -> Path | None:
    """The `postfix` command, if installed."""
    found = shutil.which("postfix") or shutil.which("postfix", path="/usr/sbin:/sbin")
    return Path(found) if found else None


def ensure_postfix() -> Path:
    """The `postfix` command, installing Debian's package when missing and possible."""
    found = find_postfix()
    if found is not None:
        return found
    if not can_install():
        raise PostfixProvisioningError(
            "Postfix is not installed and can't be installed here (needs root and apt-get): "
            "install the `postfix` package"
        )
    apt_install(["postfix"], preseed=PRESEED)
    found = find_postfix()
    if found is None:
        raise PostfixProvisioningError("apt-get installed postfix but no `postfix` command")
    return found


@dataclass
class PostfixRelay:
    """One private Postfix instance: SMTP on `127.0.0.1:port`, relaying for loopback."""

    port: int
    local_domain: str = "mailbox.example.net"
    routes: dict[str, tuple[str, int]] = field(default_factory=dict)
    hostname: str = "relay.nurture.test"
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="nurture-mta-")))

    @property
    def config_dir(self) -> Path:
        return self.directory / "etc"

    @property
    def log_file(self) -> Path:
        return self.directory / "postfix.log"

    def start(self, timeout: float = 30.0) -> None:
        """Write the configuration and start the instance; returns once it accepts SMTP."""
        postfix = ensure_postfix()
        self._write_config()
        result = subprocess.run(
            [str(postfix), "-c", str(self.config_dir), "start"], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise PostfixProvisioningError(f"postfix did not start: {self.log_tail()}")
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if time.monotonic() > deadline:
                raise PostfixProvisioningError(f"postfix is not listening: {self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the instance and remove its directory (queue and log included)."""
        postfix = find_postfix()
        if postfix is not None and (self.directory / "queue" / "pid" / "master.pid").exists():
            subprocess.run(
                [str(postfix), "-c", str(self.config_dir), "stop"], capture_output=True, check=False
            )
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        """The end of the instance's log (Postfix writes there, not to syslog)."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log written)"

    def _write_config(self) -> None:
        # Postfix's daemons run as the `postfix` user: every directory on the way must be
        # searchable by it (mkdtemp makes 0700), and `data` is its own.
        self.directory.chmod(0o755)
        for name in ("etc", "queue", "data"):
            (self.directory / name).mkdir(exist_ok=True)
        shutil.chown(self.directory / "data", user="postfix", group="postfix")
        transport = "".join(
            f"{domain} smtp:[{host}]:{port}\n" for domain, (host, port) in self.routes.items()
        )
        (self.config_dir / "transport").write_text(transport)
        (self.config_dir / "main.cf").write_text(self._main_cf())
        (self.config_dir / "master.cf").write_text(_master_cf(self.port))

    def _main_cf(self) -> str:
        return "\n".join(
            [
                "compatibility_level = 3.6",
                f"queue_directory = {self.directory / 'queue'}",
                f"data_directory = {self.directory / 'data'}",
                f"maillog_file = {self.log_file}",
                f"maillog_file_prefixes = {self.directory}",
                "inet_interfaces = 127.0.0.1",
                "inet_protocols = ipv4",
                f"myhostname = {self.hostname}",
                "myorigin = $myhostname",
                # Local delivery for one domain only: an unknown user there is a bounce.
                f"mydestination = {self.local_domain}",
                "local_recipient_maps =",  # accept at RCPT, bounce at delivery (a real DSN)
                "alias_maps =",
                "alias_database =",
                "mynetworks = 127.0.0.0/8",
                "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
                f"transport_maps = texthash:{self.config_dir / 'transport'}",
                "smtp_dns_support_level = disabled",  # no DNS here: routes are by transport map
                "default_transport = error:no route in this test relay",
                # Retry quickly: the tests wait for what Postfix does.
                "queue_run_delay = 1s",
                "minimal_backoff_time = 1s",
                "maximal_backoff_time = 2s",
                "notify_classes =",
                "biff = no",
                "",
            ]
        )


def _master_cf(port: int) -> str:
    """The package's master.cf with SMTP on our port and nothing chrooted (a chroot needs
    copies of system files in the queue directory)."""
    lines = []
    for line in PACKAGE_MASTER_CF.read_text().splitlines():
        fields = line.split()
        if line[:1] not in ("", "#", " ", "\t") and len(fields) >= 8:
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{port}"
            if fields[4] == "y":
                fields[4] = "n"
            line = "  ".join(fields)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
