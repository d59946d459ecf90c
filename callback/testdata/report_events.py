#!/usr/bin/python3
"""Post boot events to URL through the installed cloud-init's own reporting.

Usage: /usr/bin/python3 report_events.py URL [--fail MODULE] [--timeout S]
           [--retries N] [--watchdog SECONDS]

Real: reporting.update_configuration() with the reporting key a
cloud-config would carry ({NAME: {type: webhook, endpoint: URL, timeout,
retries}}, as cmd/main.py's apply_reporting_cfg passes it), the
WebHookHandler it instantiates (its queue and worker thread, json.dumps of
ReportingEvent.as_dict()), events.ReportEventStack (the stage/step names,
SUCCESS or FAIL on exit, a parent's result from its children),
url_helper.readurl and python-requests, and reporting.flush_events(), which
cloud-init calls at the end of every stage: nothing on the HTTP path is
replaced.

Stand-in: no module runs. The script opens the stacks as cmd/main.py does
for a stage ("modules-config", "running modules for config", reporting on)
and config/modules.py for each module ("config-<name>", "running
config-<name> with frequency once-per-instance", then "config-<name> ran
successfully", or an exception for --fail MODULE), for two stages:
modules-config (runcmd) and modules-final (scripts-user, phone-home).

It prints cloud-init's version and every WARNING cloud-init logged (e.g.
"Failed posting event"). Exit status: 0 done; 4 cloud-init cannot be
imported; 124 the watchdog fired.
"""
import argparse
import logging
import os
import signal
import sys

try:
    from cloudinit import reporting
    from cloudinit import version as ci_version
    from cloudinit.reporting import events
except ImportError as e:
    sys.stderr.write("cannot import cloud-init: %s\n" % e)
    sys.exit(4)


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append((record.levelname, record.getMessage()))


STAGES = [
    ("modules-config", "running modules for config", ["runcmd"]),
    ("modules-final", "running modules for final", ["scripts-user", "phone-home"]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--fail", default="")
    ap.add_argument("--timeout", type=float, default=5)
    ap.add_argument("--retries", type=int, default=0)
    ap.add_argument("--watchdog", type=int, default=60)
    o = ap.parse_args()

    def alarm(*_):
        sys.stderr.write("watchdog: no answer after %ds\n" % o.watchdog)
        os._exit(124)

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(o.watchdog)

    cap = Capture()
    root = logging.getLogger("cloudinit")
    root.setLevel(logging.DEBUG)
    root.addHandler(cap)
    print("cloud-init %s" % ci_version.version_string())

    reporting.update_configuration({
        "hatchery": {"type": "webhook", "endpoint": o.url,
                     "timeout": o.timeout, "retries": o.retries},
    })
    for stage, desc, modules in STAGES:
        with events.ReportEventStack(stage, desc, reporting_enabled=True) as parent:
            for name in modules:
                run_name = "config-%s" % name
                rep = events.ReportEventStack(
                    name=run_name,
                    description="running %s with frequency %s" % (run_name, "once-per-instance"),
                    parent=parent,
                )
                try:
                    with rep:
                        if name == o.fail:
                            raise RuntimeError("module %s failed" % name)
                        rep.message = "%s ran successfully" % run_name
                except RuntimeError:
                    pass
        reporting.flush_events()
    signal.alarm(0)
    for lvl, m in cap.messages:
        if lvl in ("WARNING", "ERROR"):
            print("[%s] %s" % (lvl, m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
