"""Load tests of an orch node against a same-run hello-world baseline. Run `python -m bench --help`."""
