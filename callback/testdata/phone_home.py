#!/usr/bin/python3
"""Run the installed cloud-init's own cc_phone_home.handle() against URL.

Usage: /usr/bin/python3 phone_home.py URL INSTANCE_ID HOSTNAME KEYDIR
           [--post all|none|k1,k2,...] [--tries N] [--watchdog SECONDS]

Real: cc_phone_home.handle(), cloudinit.cloud.Cloud, the DataSource base
class (get_hostname, get_instance_id), templater ($INSTANCE_ID), url_helper
and python-requests: nothing on the HTTP path is replaced.

Stand-in: a DataSource subclass whose metadata is {"instance-id",
"local-hostname"} (what DataSourceHetzner sets), Paths in a temp dir, and
the module's `util` name proxied so that load_file() reads the hard-coded
/etc/ssh/ssh_host_*_key.pub paths from KEYDIR instead (a missing file is
posted as N/A, as on a real server).

Exit status: 0 cloud-init logged a successful request; 1 it gave up
("Failed to post phone home data"); 2 handle() raised; 3 no request was
made; 4 cloud-init cannot be imported; 124 the watchdog fired.
"""
import argparse
import inspect
import logging
import os
import shutil
import signal
import sys
import tempfile
import types

try:
    from cloudinit import cloud as ci_cloud
    from cloudinit import helpers as ci_helpers
    from cloudinit import sources as ci_sources
    from cloudinit import util as ci_util
    from cloudinit import version as ci_version
    from cloudinit.config import cc_phone_home
except ImportError as e:
    sys.stderr.write("cannot import cloud-init: %s\n" % e)
    sys.exit(4)


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append((record.levelname, record.getMessage()))


class StandInDataSource(ci_sources.DataSource):
    dsname = "HatcheryTest"

    def __init__(self, sys_cfg, distro, paths, instance_id, hostname):
        super().__init__(sys_cfg, distro, paths)
        self.metadata = {"instance-id": instance_id, "local-hostname": hostname}

    def _get_data(self):
        return True


def util_proxy(keydir):
    proxy = types.ModuleType("cloudinit.util")
    proxy.__dict__.update(ci_util.__dict__)
    real = ci_util.load_file

    def load_file(fname, *a, **kw):
        if fname.startswith("/etc/ssh/ssh_host_") and fname.endswith(".pub"):
            fname = os.path.join(keydir, os.path.basename(fname))
        return real(fname, *a, **kw)

    proxy.load_file = load_file
    return proxy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("instance_id")
    ap.add_argument("hostname")
    ap.add_argument("keydir")
    ap.add_argument("--post", default="all")
    ap.add_argument("--tries", type=int, default=1)
    ap.add_argument("--watchdog", type=int, default=60)
    o = ap.parse_args()

    ph = {"url": o.url, "tries": o.tries}
    if o.post == "none":
        ph["post"] = []
    elif o.post == "all":
        ph["post"] = "all"
    else:
        ph["post"] = o.post.split(",")

    tmp = tempfile.mkdtemp(prefix="hatchery-phone-home-")
    try:
        paths = ci_helpers.Paths({"cloud_dir": os.path.join(tmp, "cloud"),
                                  "run_dir": os.path.join(tmp, "run")})
        ds = StandInDataSource({}, None, paths, o.instance_id, o.hostname)
        cloud = ci_cloud.Cloud(ds, paths, {}, None, None)
        cap = Capture()
        root = logging.getLogger("cloudinit")
        root.setLevel(logging.DEBUG)
        root.addHandler(cap)
        log = logging.getLogger("cloudinit.config.cc_phone_home")
        cc_phone_home.util = util_proxy(o.keydir)

        def alarm(*_):
            sys.stderr.write("watchdog: no answer after %ds\n" % o.watchdog)
            os._exit(124)

        signal.signal(signal.SIGALRM, alarm)
        signal.alarm(o.watchdog)
        print("cloud-init %s" % ci_version.version_string())
        cfg = {"phone_home": ph}
        try:
            # The signature lost its log parameter in 23.2.
            if "log" in inspect.signature(cc_phone_home.handle).parameters:
                cc_phone_home.handle("phone_home", cfg, cloud, log, [])
            else:
                cc_phone_home.handle("phone_home", cfg, cloud, [])
        except Exception as e:  # handle() itself only logs
            print("handle() raised %s: %s" % (type(e).__name__, e))
            return 2
        finally:
            signal.alarm(0)
        for lvl, m in cap.messages:
            if lvl in ("WARNING", "ERROR") or m.startswith(("Read from", "[")):
                # cloud-init logs the URL, token included: fine in a test.
                print("[%s] %s" % (lvl, m))
        msgs = [m for _, m in cap.messages]
        if any(m.startswith("Failed to post phone home data") for m in msgs):
            return 1
        if any(m.startswith("Read from") for m in msgs):
            return 0
        return 3
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
