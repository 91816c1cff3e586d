/* profile.c - the two profiles (reference facts of ESXi 6.7.0 GA and 8.0 U3e). */
#include "profile.h"

static const sim_profile profiles[] = {{
    .id = 67,
    .version = L"6.7.0",
    .build = L"8169922",
    .title = L"VMware ESXi 6.7.0 (VMKernel Release Build 8169922)",
    .module_version = L"0.1-1vmw.670.0.0.8169922",
    .layout = LAYOUT_ESXI6,
    .usb_needs_vmklinux = TRUE,
    .osdata_screen = FALSE,
    .min_bytes = (1843200ULL + 20480ULL) * 512ULL, /* the 5 USB partitions + 10 MiB */
    .too_small_title = L"Error",
    .too_small = L"The selected disk does not meet the minimum space requirements for ESXi 6.7.0.",
    .warn_below_bytes = 0,
    .small_warning = NULL,
    .has_vmklinux = TRUE,
    .degraded_alert = FALSE,
    .tools_ramdisk = FALSE,
}, {
    .id = 80,
    .version = L"8.0.3",
    .build = L"24677879",
    .title = L"VMware ESXi 8.0.3 (VMKernel Release Build 24677879)",
    .module_version = L"0.1-1vmw.803.0.35.24677879",
    .layout = LAYOUT_ESXI8,
    .usb_needs_vmklinux = FALSE,
    .osdata_screen = TRUE,
    /* 8-10 GB media fail with "disk device does not support OSDATA", 16 GB works; a stick sold as 16 GB
     * holds 14.9-16.0 GB, so the line is drawn at 14 GB (decimal) */
    .min_bytes = 14000000000ULL,
    .too_small_title = L"Error",
    .too_small = L"disk device does not support OSDATA",
    .warn_below_bytes = 32000000000ULL,
    .small_warning = L"<SYSTEM_STORAGE_SIZE WARNING: The boot disk is smaller than the recommended 32 GB. "
                     L"ESXi installs, but OSData is small and the system may run out of space.>",
    .has_vmklinux = FALSE,
    .degraded_alert = TRUE,
    .tools_ramdisk = TRUE,
}};

const sim_profile *const PROFILE = &profiles[SIM_ESXI == 80 ? 1 : 0];
