"""vbench: validate virtualization hosts and benchmark guests across I/O virtualization modes."""

__version__ = "0.1.0"
