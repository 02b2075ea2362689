"""Sandbox migration runs: loaders, mapping, three-level validation, replay, reports.

The migration toolkit is built on top of the gateway's sandbox mode (``gateway.sandbox``);
this package holds no code yet.
"""
