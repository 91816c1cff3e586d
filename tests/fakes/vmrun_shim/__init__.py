"""A vmrun-compatible shim: runs a .vmx on QEMU by the documented meaning of its keys.

VMware Workstation cannot run on CI machines, so the VMware backend is proven against this program. It
holds labctl's rendering to the meaning of the keys: a .vmx without ``firmware = "efi"`` boots SeaBIOS
(the EFI-only simulator ISO does not start), a stick that no ``usb.autoConnect.deviceN`` rule matches is
not attached, a CD whose ``startConnected`` is not TRUE is empty.

Keys it honours: ``firmware`` (efi: OVMF; ``uefi.secureBoot.enabled``), ``nvram`` (the UEFI variables),
``numvcpus``, ``memsize``, ``usb.present`` / ``ehci.present`` / ``usb_xhci.present``,
``usb.autoConnect.deviceN`` (``vid:0x0781 pid:0x5567``, ``vid:0781 pid:5567``, ``path:1/3/2``, ``0x781:0x5567``),
``sataX:Y.present/deviceType/fileName/startConnected`` (cdrom-image), ``ethernet0.*``,
``RemoteDisplay.vnc.enabled/port/ip/password``, ``serial0.present/fileType/fileName`` (a pipe is a unix
socket server at fileName; a file is a file).

It talks like vmrun: errors on stdout as ``Error: ...`` with exit 255, the formats of ``list``
(``Total running VMs: N``), ``listSnapshots`` (``Total snapshots: N``) and bare ``vmrun`` (usage, line 3
``vmrun version 1.17.0 build-24995812``). Each powered-on VM has a supervisor process (the shim's
``vmware-vmx``) that owns QEMU, writes ``vmware.log`` beside the .vmx (the old one becomes vmware-0.log),
holds ``*.lck`` folders while the VM runs, relays the serial port, and at power-off writes back the
devices disconnected while running (``startConnected = "FALSE"``), as VMware rewrites a .vmx at power-off.

Environment:
  VMRUN_SHIM_STATE   folder for the shim's state (running VMs, call log); default /tmp/vmrun-shim-UID
  VMRUN_SHIM_USB     JSON file: the host's USB devices, a list of {"vid": "0x0781", "pid": "0x5567",
                     "path": "1/3/2", "name": "SanDisk Cruzer Blade", "image": "/abs/stick.img",
                     "connect_error": "4" | "driver" (optional: the connect fails)}
  VMRUN_SHIM_FAULTS  JSON object of fault modes: {"player_only": true} (a Player-only host), and per
                     command {"start": {"error": "Error: ...", "exit": 0, "noise": "a line before it",
                     "hang": true, "cancel": true}}
  VMRUN_SHIM_QEMU    QEMU binary (default qemu-system-x86_64); VMRUN_SHIM_ACCEL (default tcg)
Every call is appended to STATE/calls.jsonl (for the benchmark's count of vmrun calls).
"""
