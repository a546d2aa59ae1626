"""A private Docker engine and stand-in base images, for running the container tests on a
machine with no engine or registry.

- `engine`: the machine's engine when `docker info` answers, else a private dockerd of our own;
- `images`: the official base images when they can be pulled, else stand-ins (`standins/`);
- `rootfs`: the Debian root filesystems the stand-ins are made from, and the compose plugin;
- `settings`, `cache`, `process`, `host`: what they share.

It imports neither Django, the app nor the tests (an import-linter contract): the app runs in
containers only. The tests that use it are in tests/containers; see README.md beside this file.
"""
