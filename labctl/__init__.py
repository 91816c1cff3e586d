"""labctl: automate the 'install ESXi onto a USB stick inside a VM' lab, for one seat or a classroom."""

__version__ = "0.1.0"
