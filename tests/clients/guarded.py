"""Run a client script with the loopback guard installed first.

    python guarded.py SCRIPT [ARGS...]

The guard goes in before the script imports anything, so no client module can have
captured the unpatched socket functions.
"""

from __future__ import annotations

import runpy
import sys

import guard  # this script's directory is sys.path[0]

guard.install_from_environment()
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
