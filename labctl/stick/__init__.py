"""USB stick imaging: discovery and the safety verdict (:mod:`.blockdev`), device I/O and the image
format (:mod:`.imaging`), and the backup / restore / wipe / verify operations (:mod:`.ops`).

The command line for them is :mod:`labctl.commands.stick`; nothing here prints.
"""
