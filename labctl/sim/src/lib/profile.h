/* profile.h - the ESXi release the simulator imitates, as data: one table per profile (texts, builds,
 * the rules that differ between releases). The build selects one with -DSIM_ESXI=67 (default) or 80;
 * every screen reads PROFILE instead of spelling a release itself. */
#ifndef SIM_PROFILE_H
#define SIM_PROFILE_H

#include "util.h"

#ifndef SIM_ESXI
#define SIM_ESXI 67
#endif

typedef enum { LAYOUT_ESXI6, LAYOUT_ESXI8 } layout_kind;

typedef struct {
    UINTN id;                       /* 67, 80 */
    const CHAR16 *version;          /* "6.7.0", "8.0.3" (screens: "ESXi 6.7.0") */
    const CHAR16 *build;            /* "8169922", "24677879" */
    const CHAR16 *title;            /* "VMware ESXi 6.7.0 (VMKernel Release Build 8169922)" */
    const CHAR16 *module_version;   /* esxcli system module get: Version */
    layout_kind layout;
    /* installer */
    BOOLEAN usb_needs_vmklinux;     /* 6.7: the stick is listed only when booted with preferVMklinux=TRUE */
    BOOLEAN osdata_screen;          /* 8.0: "Select a Disk to store ESX OSData" after a USB target */
    UINT64 min_bytes;               /* smaller targets are refused with too_small */
    const CHAR16 *too_small_title;
    const CHAR16 *too_small;        /* the installer's own message */
    UINT64 warn_below_bytes;        /* a system scan warning for smaller targets (0: none) */
    const CHAR16 *small_warning;
    /* installed system */
    BOOLEAN has_vmklinux;           /* kernel setting preferVmklinux and the vmklinux USB drivers exist */
    BOOLEAN degraded_alert;         /* a host without persistent storage says so on the DCUI */
    BOOLEAN tools_ramdisk;          /* /UserVars/ToolsRamdisk and esxcli system coredump file exist */
} sim_profile;

extern const sim_profile *const PROFILE;

#endif
