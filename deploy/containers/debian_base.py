"""A Debian base image made from Debian's own packages, for machines where no container registry answers.

``debootstrap --variant=minbase`` installs a minimal bookworm (essential packages and apt) from the same
Debian mirror this machine's apt uses, the host's CA bundle goes in (builds that call pip must trust what
the host trusts), caches and documentation come out, and ``<cli> import`` turns the tree into an image
(≈ 40 s to 2 min). Standard library only; deploy/containers/images.py calls it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SUITE = "bookworm"  # Debian 12: its python3 is the 3.11 the project runs on
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
CA_ENV = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE")
# A path no Debian package owns: installing ca-certificates later regenerates /etc/ssl/certs, not this.
CA_IN_IMAGE = Path("/usr/local/share/agentwire/host-ca-bundle.crt")


class BaseImageError(RuntimeError):
    """The Debian base cannot be made here; the message says why."""


def debian_mirror() -> str:
    """The Debian archive URL this machine's apt uses (deb822 ``.sources`` or one-line ``.list`` files)."""
    texts = []
    for source in APT_SOURCES:
        files = sorted(source.glob("*.sources")) + sorted(source.glob("*.list")) if source.is_dir() else [source]
        texts += [f.read_text() for f in files if f.is_file()]
    for text in texts:
        for stanza in text.split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and not uris.group(1).rstrip("/").endswith("-security"):
                return uris.group(1)
        for line in text.splitlines():
            match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line.strip())
            if match and "security" not in match.group(2):
                return match.group(1)
    raise BaseImageError("no Debian mirror found in /etc/apt/sources.list(.d): cannot run debootstrap")


def inputs_digest(mirror: str) -> str:
    """What the base depends on: this recipe, suite, mirror and the CA bundle it carries."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(f"{SUITE}\n{mirror}\n".encode())
    digest.update(CA_BUNDLE.read_bytes() if CA_BUNDLE.exists() else b"")
    return digest.hexdigest()[:16]


def build(cli: str, name: str, label: str) -> None:
    """Make ``name`` with debootstrap and ``<cli> import``; it carries ``label=<inputs digest>``."""
    if shutil.which("debootstrap") is None:
        raise BaseImageError("debootstrap is not installed: run `make system-deps`")
    mirror = debian_mirror()
    with tempfile.TemporaryDirectory(prefix="agentwire-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        command = ["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror]
        if KEYRING.exists():
            command.insert(1, f"--keyring={KEYRING}")
        print(f"images: {' '.join(command)}", flush=True)
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise BaseImageError(f"debootstrap failed:\n{(result.stdout + result.stderr)[-3000:]}")
        if CA_BUNDLE.exists():
            target = rootfs / CA_IN_IMAGE.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(CA_BUNDLE, target)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                     "usr/share/locale", "usr/share/info"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                elif entry.name != "lock":
                    entry.unlink()
        for cache in (rootfs / "var/cache/apt").glob("*.bin"):
            cache.unlink()
        changes = [f"ENV {var}={CA_IN_IMAGE}" for var in CA_ENV] + ["CMD [\"/bin/bash\"]",
                                                                   f"LABEL {label}={inputs_digest(mirror)}"]
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run([cli, "import", *(f"--change={c}" for c in changes), "-", name],
                                  stdin=tar.stdout, capture_output=True, text=True)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise BaseImageError(f"{cli} import failed: {imported.stderr[-2000:]}")
    print(f"images: built {name} from Debian {SUITE} packages ({mirror})", flush=True)
