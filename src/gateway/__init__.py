"""gateway: a SIP robocall gateway that calls only where the law allows it, and proves it."""

__version__ = "0.1.0"
