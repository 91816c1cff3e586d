/* esxcli.c - the esxcli namespaces and commands of the lab (reference §4) with esxcli's output formats
 * and errors: usage of a namespace, "Error: Unknown command or namespace ...", "Error: Invalid option ...",
 * "Error: Missing required parameter ...". Settings live in the state (state.c); "Runtime" values are
 * what this boot started with (boot.c). The set commands print nothing on success. */
#include "esxi.h"
#include "table.h"

typedef struct {
    CHAR16 s;               /* short letter or 0 */
    const CHAR16 *l;        /* long name */
    const CHAR16 *type;     /* str, bool, long */
    BOOLEAN required;
    const CHAR16 *help;
} opt_t;

#define MAX_OPTS 12
typedef void (*cmd_fn)(const CHAR16 *const *v);

typedef struct {
    const CHAR16 *path;     /* "system settings kernel set" */
    const CHAR16 *help;
    const opt_t *opts;
    cmd_fn fn;
    UINTN since;            /* profile id it appeared in (0: every profile) */
} cmd_t;

typedef struct {
    const CHAR16 *path;
    const CHAR16 *help;
    UINTN since;
} ns_t;

static void out_error_usage(const cmd_t *c, const CHAR16 *fmt, const CHAR16 *arg);

/* ------------------------------------------------------------------------------------- kernel settings */

typedef struct {
    const CHAR16 *name, *type, *dflt, *desc;
    BOOLEAN vmklinux;       /* exists only while vmklinux does (6.7) */
} ksetting_t;

static const ksetting_t ksettings[] = {
    {L"iovDisableIR", L"Bool", L"FALSE", L"Disable Interrupt Routing in the IOMMU.", 0},
    {L"noIOMMU", L"Bool", L"FALSE", L"Disable IOMMU.", 0},
    {L"preferVmklinux", L"Bool", L"FALSE", L"Boost priority of vmklinux drivers to trump native drivers.", TRUE},
    {L"vga", L"Bool", L"TRUE", L"Use VGA text console.", 0},
};
static CHAR16 kruntime[ARRAY_LEN(ksettings)][16];

static BOOLEAN kvisible(UINTN i) {
    return !ksettings[i].vmklinux || PROFILE->has_vmklinux;
}

static const CHAR16 *kconfigured(UINTN i) {
    CHAR16 key[64];
    SPrint(key, sizeof key, L"kernel.%s", ksettings[i].name);
    const CHAR16 *v = st_get(key);
    return v && v[0] ? v : ksettings[i].dflt;
}

void esxcli_boot_snapshot(void) {
    for (UINTN i = 0; i < ARRAY_LEN(ksettings); i++) wcopy(kruntime[i], 16, kconfigured(i));
    for (UINTN i = 0; i < ARRAY_LEN(ksettings); i++)
        if (StrCmp((CHAR16 *)ksettings[i].name, L"preferVmklinux") == 0)
            wcopy(kruntime[i], 16, G->rt.prefer_vmklinux ? L"TRUE" : L"FALSE");
}

/* "TRUE"/"FALSE" for a boolean word, NULL when it is not one */
static const CHAR16 *parse_bool(const CHAR16 *v) {
    static const CHAR16 *yes[] = {L"true", L"1", L"yes", L"on"}, *no[] = {L"false", L"0", L"no", L"off"};
    for (UINTN i = 0; i < ARRAY_LEN(yes); i++) {
        if (wcmp_ci(v, yes[i]) == 0) return L"TRUE";
        if (wcmp_ci(v, no[i]) == 0) return L"FALSE";
    }
    return NULL;
}

static void kernel_list(const CHAR16 *const *v) {
    static const CHAR16 *hdr[] = {L"Name", L"Type", L"Configured", L"Runtime", L"Default", L"Description"};
    const CHAR16 *cells[ARRAY_LEN(ksettings) * 6];
    UINTN n = 0;
    for (UINTN i = 0; i < ARRAY_LEN(ksettings); i++) {
        if (!kvisible(i) || (v[0] && StrCmp((CHAR16 *)v[0], (CHAR16 *)ksettings[i].name) != 0)) continue;
        const CHAR16 *row[6] = {ksettings[i].name, ksettings[i].type, kconfigured(i), kruntime[i], ksettings[i].dflt,
                                ksettings[i].desc};
        CopyMem(&cells[n * 6], row, sizeof row);
        n++;
    }
    table_print(hdr, NULL, 6, cells, n);
}

static void kernel_set(const CHAR16 *const *v) {
    for (UINTN i = 0; i < ARRAY_LEN(ksettings); i++) {
        if (!kvisible(i) || StrCmp((CHAR16 *)v[0], (CHAR16 *)ksettings[i].name) != 0) continue;
        CHAR16 key[64];
        const CHAR16 *val = v[1];
        if (StrCmp((CHAR16 *)ksettings[i].type, L"Bool") == 0) {
            val = parse_bool(v[1]);
            if (!val) {
                shell_out(L"Unable to set setting %s: Invalid value %s for a Bool setting\r\n", v[0], v[1]);
                return;
            }
        }
        SPrint(key, sizeof key, L"kernel.%s", ksettings[i].name);
        st_set(key, val);
        return;
    }
    shell_out(L"Unable to find setting %s\r\n", v[0]);
}

/* ------------------------------------------------------------------------------------------- modules */

typedef struct {
    const CHAR16 *name;
    UINTN kind; /* 0 always loaded, 1 vmkusb, 2 a vmklinux USB driver (loaded when vmkusb is not in charge),
                 * 3 vmklinux itself; 2 and 3 exist only while vmklinux does (6.7) */
} module_t;

static const module_t modules[] = {
    {L"vmkernel", 0}, {L"chardevs", 0}, {L"user", 0}, {L"procfs", 0}, {L"vmkplexer", 0}, {L"vmklinux_9", 3},
    {L"vmklinux_9_2_0_0", 3}, {L"vmklinux_9_2_1_0", 3}, {L"vmklinux_9_2_2_0", 3}, {L"vmklinux_9_2_3_0", 3},
    {L"random", 0}, {L"usb", 2}, {L"ehci-ehci-hcd", 2}, {L"xhci-xhci", 2}, {L"usb-storage", 2}, {L"hid", 0},
    {L"dm", 0}, {L"nmp", 0}, {L"vmw_satp_local", 0}, {L"vmw_satp_default_aa", 0}, {L"vmw_psp_lib", 0},
    {L"vmw_psp_fixed", 0}, {L"vmw_psp_rr", 0}, {L"vmw_psp_mru", 0}, {L"vmw_satp_alua", 0}, {L"vmkusb", 1},
    {L"vmw_ahci", 0}, {L"vmkata", 0}, {L"nvme", 0}, {L"vmw_pvscsi", 0}, {L"ne1000", 0}, {L"vmxnet3", 0},
    {L"iscsi_trans", 0}, {L"lvmdriver", 0}, {L"vmfs3", 0}, {L"nfsclient", 0}, {L"nfs41client", 0},
    {L"etherswitch", 0}, {L"netsched", 0}, {L"cbt", 0}, {L"vsan", 0}, {L"vsanutil", 0},
};

static BOOLEAN mod_visible(UINTN i) {
    return PROFILE->has_vmklinux || modules[i].kind < 2;
}

static BOOLEAN mod_enabled(UINTN i) {
    CHAR16 key[64];
    SPrint(key, sizeof key, L"module.%s.enabled", modules[i].name);
    return st_bool(key, TRUE);
}

static BOOLEAN mod_loaded(UINTN i) {
    switch (modules[i].kind) {
    case 1: return G->rt.vmkusb_loaded;
    case 2: return !G->rt.vmkusb_loaded || G->rt.prefer_vmklinux;
    case 3: return TRUE;
    default: return TRUE;
    }
}

static INTN find_module(const CHAR16 *name) {
    for (UINTN i = 0; i < ARRAY_LEN(modules); i++)
        if (mod_visible(i) && StrCmp((CHAR16 *)name, (CHAR16 *)modules[i].name) == 0) return (INTN)i;
    return -1;
}

static void module_list(const CHAR16 *const *v) {
    static const CHAR16 *hdr[] = {L"Name", L"Is Loaded", L"Is Enabled"};
    static const BOOLEAN right[] = {FALSE, TRUE, TRUE};
    const CHAR16 *cells[ARRAY_LEN(modules) * 3];
    UINTN n = 0;
    const CHAR16 *want_en = v[0] ? parse_bool(v[0]) : NULL, *want_ld = v[1] ? parse_bool(v[1]) : NULL;
    if ((v[0] && !want_en) || (v[1] && !want_ld)) {
        shell_out(L"Error: Invalid data constraint for parameter '%s'. Expected one of: true, false\r\n",
                  v[0] && !want_en ? L"enabled" : L"loaded");
        return;
    }
    for (UINTN i = 0; i < ARRAY_LEN(modules); i++) {
        if (!mod_visible(i)) continue;
        BOOLEAN en = mod_enabled(i), ld = mod_loaded(i);
        if (want_en && (StrCmp((CHAR16 *)want_en, L"TRUE") == 0) != en) continue;
        if (want_ld && (StrCmp((CHAR16 *)want_ld, L"TRUE") == 0) != ld) continue;
        cells[n * 3] = modules[i].name;
        cells[n * 3 + 1] = ld ? L"true" : L"false";
        cells[n * 3 + 2] = en ? L"true" : L"false";
        n++;
    }
    table_print(hdr, right, 3, cells, n);
}

static void module_get(const CHAR16 *const *v) {
    INTN i = find_module(v[0]);
    if (i < 0) {
        shell_out(L"Unable to find module %s\r\n", v[0]);
        return;
    }
    CHAR16 file[96];
    SPrint(file, sizeof file, L"/usr/lib/vmware/vmkmod/%s", modules[i].name);
    kv_print(L"Module", modules[i].name);
    kv_print(L"Module File", file);
    kv_print(L"License", StrCmp((CHAR16 *)modules[i].name, L"vmkusb") == 0 ? L"BSD" : L"VMware");
    kv_print(L"Version", PROFILE->module_version);
    kv_print(L"Build Type", L"release");
    kv_print(L"Provided Namespaces", L"");
    kv_print(L"Required Namespaces", L"com.vmware.driverAPI@9.2.3.0, com.vmware.vmkapi@v2_5_0_0");
    kv_print(L"Containing VIB", modules[i].name);
    kv_print(L"VIB Acceptance Level", L"certified");
}

static void module_set(const CHAR16 *const *v) {
    const CHAR16 *en = parse_bool(v[0]);
    if (!en) {
        shell_out(L"Error: Invalid data constraint for parameter 'enabled'. Expected one of: true, false\r\n");
        return;
    }
    INTN i = find_module(v[2]);
    if (i < 0) {
        shell_out(L"Unable to find module %s\r\n", v[2]);
        return;
    }
    CHAR16 key[64];
    SPrint(key, sizeof key, L"module.%s.enabled", modules[i].name);
    st_set(key, en);
}

/* ---------------------------------------------------------------------------------- advanced settings */

typedef struct {
    const CHAR16 *path, *type, *state_key, *dflt, *desc;
    UINTN max;
    UINTN since;            /* profile id it appeared in (0: every profile) */
} adv_t;

static const adv_t advs[] = {
    {L"/ScratchConfig/ConfiguredScratchLocation", L"string", L"scratch.configured", L"",
     L"The directory configured to be used for scratch space. Changes will take effect on next reboot.", 0, 0},
    {L"/ScratchConfig/CurrentScratchLocation", L"string", NULL, L"",
     L"The directory currently being used for scratch space.", 0, 0},
    {L"/Syslog/global/logHost", L"string", L"syslog.loghost", L"",
     L"The remote host to output logs to. Reset to default is null. Multiple hosts are supported and must be "
     L"separated with comma (,). Example: udp://hostName1:514, hostName2, ssl://hostName3:1514", 0, 0},
    {L"/Syslog/global/logDir", L"string", L"syslog.logdir", L"[] /scratch/log",
     L"Datastore path of directory to output logs to. Reset to default on null. Example: [datastoreName] "
     L"/logdir", 0, 0},
    {L"/UserVars/SuppressShellWarning", L"integer", L"adv.UserVars.SuppressShellWarning", L"0",
     L"Don't show warning for enabled local and remote shell access", 1, 0},
    {L"/UserVars/ToolsRamdisk", L"integer", L"adv.UserVars.ToolsRamdisk", L"0",
     L"Use VMware Tools repository from /tools ramdisk. Changes will take effect on next reboot.", 1, 80},
};

static BOOLEAN adv_visible(UINTN i) {
    return advs[i].since == 0 || PROFILE->id >= advs[i].since;
}

static const CHAR16 *adv_value(UINTN i) {
    if (!advs[i].state_key) return G->rt.scratch;
    const CHAR16 *v = st_get(advs[i].state_key);
    return v && v[0] ? v : advs[i].dflt;
}

static void adv_list(const CHAR16 *const *v) {
    /* v: delta, option, tree */
    const CHAR16 *opt = v[1];
    BOOLEAN any = FALSE;
    for (UINTN i = 0; i < ARRAY_LEN(advs); i++) {
        if (!adv_visible(i) || (opt && StrCmp((CHAR16 *)opt, (CHAR16 *)advs[i].path) != 0)) continue;
        BOOLEAN is_int = StrCmp((CHAR16 *)advs[i].type, L"integer") == 0;
        CHAR16 num[16];
        if (any) shell_out(L"\r\n");
        any = TRUE;
        kv_print(L"Path", advs[i].path);
        kv_print(L"Type", advs[i].type);
        kv_print(L"Int Value", is_int ? adv_value(i) : L"0");
        kv_print(L"Default Int Value", is_int ? advs[i].dflt : L"0");
        kv_print(L"Min Value", L"0");
        SPrint(num, sizeof num, L"%d", advs[i].max);
        kv_print(L"Max Value", num);
        kv_print(L"String Value", is_int ? L"" : adv_value(i));
        kv_print(L"Default String Value", is_int ? L"" : advs[i].dflt);
        kv_print(L"Valid Characters", is_int ? L"" : L"*");
        kv_print(L"Description", advs[i].desc);
    }
    if (!any && opt) shell_out(L"Error: Unable to find option %s\r\n", opt + (opt[0] == '/'));
}

static void adv_set(const CHAR16 *const *v) {
    /* v: default, int-value, option, string-value */
    for (UINTN i = 0; i < ARRAY_LEN(advs); i++) {
        if (!adv_visible(i) || StrCmp((CHAR16 *)v[2], (CHAR16 *)advs[i].path) != 0) continue;
        BOOLEAN is_int = StrCmp((CHAR16 *)advs[i].type, L"integer") == 0;
        if (!advs[i].state_key) {
            shell_out(L"Error: Unable to set option %s: it is read-only\r\n", v[2]);
            return;
        }
        if (v[0]) {
            st_set(advs[i].state_key, advs[i].dflt);
            return;
        }
        if (is_int) {
            if (!v[1]) {
                shell_out(L"Error: Integer value required for option %s\r\n", v[2]);
                return;
            }
            UINTN n = 0;
            for (const CHAR16 *p = v[1]; *p; p++) {
                if (*p < '0' || *p > '9') {
                    shell_out(L"Error: Invalid value %s for option %s\r\n", v[1], v[2]);
                    return;
                }
                n = n * 10 + (*p - '0');
            }
            if (n > advs[i].max) {
                shell_out(L"Error: Invalid value %s for option %s (maximum %d)\r\n", v[1], v[2], advs[i].max);
                return;
            }
            st_set(advs[i].state_key, v[1]);
            return;
        }
        if (!v[3]) {
            shell_out(L"Error: String value required for option %s\r\n", v[2]);
            return;
        }
        st_set(advs[i].state_key, v[3]);
        return;
    }
    shell_out(L"Error: Unable to find option %s\r\n", v[2] + (v[2][0] == '/'));
}

/* ------------------------------------------------------------------------------------ syslog, coredump */

static void syslog_get(const CHAR16 *const *v) {
    const CHAR16 *lh = st_get(L"syslog.loghost"), *ld = st_get(L"syslog.logdir");
    BOOLEAN persistent = StrnCmp(G->rt.scratch, L"/tmp/", 5) != 0;
    CHAR16 out[200];
    SPrint(out, sizeof out, L"%s", ld && ld[0] ? ld : L"/scratch/log");
    kv_print(L"Default Network Retry Timeout", L"180");
    kv_print(L"Dropped Log File Rotation Size", L"100");
    kv_print(L"Dropped Log File Rotations", L"10");
    kv_print(L"Enforce SSLCertificates", L"true");
    kv_print(L"Local Log Output", out);
    kv_print(L"Local Log Output Is Configured", ld && ld[0] ? L"true" : L"false");
    kv_print(L"Local Log Output Is Persistent", persistent || (ld && ld[0]) ? L"true" : L"false");
    kv_print(L"Local Logging Default Rotation Size", L"1024");
    kv_print(L"Local Logging Default Rotations", L"8");
    kv_print(L"Log To Unique Subdirectory", L"false");
    kv_print(L"Message Queue Drop Mark", L"90");
    kv_print(L"Remote Host", lh && lh[0] ? lh : L"<none>");
    kv_print(L"Strict X509Compliance", L"false");
}

static void syslog_set(const CHAR16 *const *v) {
    /* v: loghost, logdir, reset */
    if (v[2]) {
        if (StrCmp((CHAR16 *)v[2], L"loghost") == 0) st_set(L"syslog.loghost", L"");
        else if (StrCmp((CHAR16 *)v[2], L"logdir") == 0) st_set(L"syslog.logdir", L"");
        else shell_out(L"Error: Invalid value for --reset: %s\r\n", v[2]);
    }
    if (v[0]) st_set(L"syslog.loghost", v[0]);
    if (v[1]) st_set(L"syslog.logdir", v[1]);
}

static void syslog_reload(const CHAR16 *const *v) {
}

static BOOLEAN valid_ipv4(const CHAR16 *s) {
    UINTN parts = 0, digits = 0, val = 0;
    for (;; s++) {
        if (*s >= '0' && *s <= '9') {
            val = val * 10 + (*s - '0');
            if (++digits > 3 || val > 255) return FALSE;
        } else if (*s == '.' || *s == 0) {
            if (!digits) return FALSE;
            parts++;
            digits = val = 0;
            if (*s == 0) break;
        } else {
            return FALSE;
        }
    }
    return parts == 4;
}

static void coredump_get(const CHAR16 *const *v) {
    const CHAR16 *nic = st_get(L"coredump.network.vnic"), *ip = st_get(L"coredump.network.ip"),
                 *port = st_get(L"coredump.network.port");
    kv_print(L"Enabled", st_bool(L"coredump.network.enabled", FALSE) ? L"true" : L"false");
    kv_print(L"Host VNic", nic ? nic : L"");
    kv_print(L"Network Server IP", ip ? ip : L"");
    kv_print(L"Network Server Port", port && port[0] ? port : L"0");
}

static void coredump_set(const CHAR16 *const *v) {
    /* v: enable, interface-name, server-ipv4, server-ip, server-port */
    const CHAR16 *ip = v[2] ? v[2] : v[3];
    if (!v[0] && !v[1] && !ip && !v[4]) {
        shell_out(L"Error: At least one option is required.\r\n");
        return;
    }
    if (ip && !valid_ipv4(ip)) {
        shell_out(L"Error: Invalid IPv4 address %s\r\n", ip);
        return;
    }
    if (v[4]) {
        UINTN port = 0;
        for (const CHAR16 *p = v[4]; *p; p++) {
            if (*p < '0' || *p > '9' || port > 65535) {
                shell_out(L"Error: Invalid data constraint for parameter 'server-port'. Expected a number\r\n");
                return;
            }
            port = port * 10 + (*p - '0');
        }
        if (port == 0 || port > 65535) {
            shell_out(L"Error: Invalid port %s\r\n", v[4]);
            return;
        }
    }
    if (v[1]) st_set(L"coredump.network.vnic", v[1]);
    if (ip) st_set(L"coredump.network.ip", ip);
    if (v[4]) st_set(L"coredump.network.port", v[4]);
    if (v[0]) {
        const CHAR16 *b = parse_bool(v[0]);
        if (!b) {
            shell_out(L"Error: Invalid data constraint for parameter 'enable'. Expected one of: true, false\r\n");
            return;
        }
        const CHAR16 *nic = st_get(L"coredump.network.vnic"), *sip = st_get(L"coredump.network.ip");
        if (StrCmp((CHAR16 *)b, L"TRUE") == 0 && (!nic || !nic[0] || !sip || !sip[0])) {
            shell_out(L"Unable to enable network dump: the network dump is not configured.\r\n");
            return;
        }
        st_set(L"coredump.network.enabled", b);
    }
}

/* ---------------------------------------------------------------- core dump file (7.0 and later) */

/* The volume a dump file goes to: -d as given (the datastore's name or UUID, or the OSData volume),
 * else the datastore, else OSData. FALSE when there is no such volume. */
static BOOLEAN dump_volume(const CHAR16 *want, CHAR16 *uuid_out, UINTN cap) {
    CHAR16 label[64], uuid[40];
    BOOLEAN osdata = esxi_osdata_volume(label, ARRAY_LEN(label), uuid, ARRAY_LEN(uuid));
    if (want) {
        if (G->have_vmfs && (StrCmp((CHAR16 *)want, G->vmfs_name) == 0 || StrCmp((CHAR16 *)want, G->vmfs_uuid) == 0)) {
            wcopy(uuid_out, cap, G->vmfs_uuid);
            return TRUE;
        }
        if (osdata && (StrCmp((CHAR16 *)want, label) == 0 || StrCmp((CHAR16 *)want, uuid) == 0)) {
            wcopy(uuid_out, cap, uuid);
            return TRUE;
        }
        return FALSE;
    }
    if (G->have_vmfs) {
        wcopy(uuid_out, cap, G->vmfs_uuid);
        return TRUE;
    }
    if (osdata) wcopy(uuid_out, cap, uuid);
    return osdata;
}

static void coredump_file_add(const CHAR16 *const *v) {
    /* v: auto, datastore, enable, file, size */
    CHAR16 uuid[40], path[200];
    const CHAR16 *have = st_get(L"coredump.file.path");
    if (!dump_volume(v[1], uuid, ARRAY_LEN(uuid))) {
        shell_out(L"Unable to create a dump file: Unable to find datastore %s\r\n", v[1] ? v[1] : L"(none)");
        return;
    }
    SPrint(path, sizeof path, L"/vmfs/volumes/%s/vmkdump/%s.dumpfile", uuid, v[3] ? v[3] : L"localhost");
    if (have && have[0]) {
        shell_out(StrCmp((CHAR16 *)have, path) == 0 ? L"Unable to create a dump file: File already exists\r\n"
                                                    : L"Unable to create a dump file: a dump file is already configured\r\n");
        return;
    }
    if (v[4]) {
        for (const CHAR16 *q = v[4]; *q; q++)
            if (*q < '0' || *q > '9') {
                shell_out(L"Error: Invalid data constraint for parameter 'size'. Expected a number\r\n");
                return;
            }
    }
    const CHAR16 *en = v[2] ? parse_bool(v[2]) : L"FALSE";
    if (!en) {
        shell_out(L"Error: Invalid data constraint for parameter 'enable'. Expected one of: true, false\r\n");
        return;
    }
    st_set(L"coredump.file.path", path);
    st_set(L"coredump.file.size", v[4] ? v[4] : L"2560");
    st_set(L"coredump.file.enabled", en);
}

static void coredump_file_list(const CHAR16 *const *v) {
    static const CHAR16 *hdr[] = {L"Path", L"Active", L"Configured", L"Size"};
    const CHAR16 *path = st_get(L"coredump.file.path"), *mb = st_get(L"coredump.file.size");
    CHAR16 size[24];
    const CHAR16 *cells[4];
    if (!path || !path[0]) {
        table_print(hdr, NULL, 4, cells, 0);
        return;
    }
    UINT64 bytes = 0;
    for (const CHAR16 *q = mb ? mb : L"0"; *q >= '0' && *q <= '9'; q++) bytes = bytes * 10 + (*q - '0');
    SPrint(size, sizeof size, L"%ld", bytes << 20);
    BOOLEAN on = st_bool(L"coredump.file.enabled", FALSE);
    cells[0] = path;
    cells[1] = on ? L"true" : L"false";
    cells[2] = on ? L"true" : L"false";
    cells[3] = size;
    table_print(hdr, NULL, 4, cells, 1);
}

static void coredump_file_set(const CHAR16 *const *v) {
    /* v: enable, path, smart, unconfigure */
    const CHAR16 *path = st_get(L"coredump.file.path");
    if (v[3] && parse_bool(v[3]) && StrCmp((CHAR16 *)parse_bool(v[3]), L"TRUE") == 0) {
        st_set(L"coredump.file.enabled", L"FALSE");
        return;
    }
    if (!v[0]) {
        shell_out(L"Error: At least one option is required.\r\n");
        return;
    }
    const CHAR16 *en = parse_bool(v[0]);
    if (!en) {
        shell_out(L"Error: Invalid data constraint for parameter 'enable'. Expected one of: true, false\r\n");
        return;
    }
    if (StrCmp((CHAR16 *)en, L"TRUE") == 0 && (!path || !path[0] || (v[1] && StrCmp((CHAR16 *)v[1], (CHAR16 *)path) != 0))) {
        shell_out(L"Unable to configure a dump file: No suitable dump file was found.\r\n");
        return;
    }
    st_set(L"coredump.file.enabled", en);
}

static void vsan_trace_get(const CHAR16 *const *v) {
    CHAR16 dir[200];
    if (StrnCmp(G->rt.scratch, L"/tmp/", 5) == 0)
        wcopy(dir, ARRAY_LEN(dir), L"/vsantraces");
    else
        SPrint(dir, sizeof dir, L"%s/vsantraces", G->rt.scratch);
    kv_print(L"VSAN Traces Directory", dir);
    kv_print(L"Number Of Files To Rotate", L"8");
    kv_print(L"Maximum Trace File Size", L"45 MB");
    kv_print(L"Log Urgent Traces To Syslog", L"true");
}

static void version_get(const CHAR16 *const *v) {
    kv_print(L"Product", L"VMware ESXi");
    kv_print(L"Version", ESXI_VERSION);
    CHAR16 build[32];
    SPrint(build, sizeof build, L"Releasebuild-%s", ESXI_BUILD);
    kv_print(L"Build", build);
    kv_print(L"Update", PROFILE->id == 80 ? L"3" : L"0");
    kv_print(L"Patch", L"0");
}

/* ------------------------------------------------------------------------------------------ the tree */

static const opt_t o_kernel_list[] = {
    {'o', L"option", L"str", FALSE, L"Only list the named setting."}, {0}};
static const opt_t o_kernel_set[] = {
    {'s', L"setting", L"str", TRUE, L"The name of the VMKernel setting to set."},
    {'v', L"value", L"str", TRUE, L"The value to set the setting to."}, {0}};
static const opt_t o_module_list[] = {
    {'e', L"enabled", L"bool", FALSE, L"List the enabled / disabled modules."},
    {'l', L"loaded", L"bool", FALSE, L"List the loaded / not loaded modules."}, {0}};
static const opt_t o_module_get[] = {
    {'m', L"module", L"str", TRUE, L"The name of the VMkernel module."}, {0}};
static const opt_t o_module_set[] = {
    {'e', L"enabled", L"bool", TRUE, L"Set to true to enable the module, false to disable."},
    {'f', L"force", L"bool", FALSE, L"Skip the VMkernel module validity checks."},
    {'m', L"module", L"str", TRUE, L"The name of the VMkernel module to set options for."}, {0}};
static const opt_t o_adv_list[] = {
    {'d', L"delta", L"bool", FALSE, L"Only display options whose values differ from their default."},
    {'o', L"option", L"str", FALSE, L"Only get the information for a single VMkernel advanced option."},
    {'t', L"tree", L"str", FALSE, L"Limit the list of advanced option to a specific sub tree."}, {0}};
static const opt_t o_adv_set[] = {
    {'d', L"default", L"bool", FALSE, L"Reset the option to its default value."},
    {'i', L"int-value", L"long", FALSE, L"If the option is an integer value use this option."},
    {'o', L"option", L"str", TRUE, L"The name of the option to set the value of."},
    {'s', L"string-value", L"str", FALSE, L"If the option is a string use this option."}, {0}};
static const opt_t o_syslog_set[] = {
    {0, L"loghost", L"str", FALSE, L"The remote host(s) to send logs to."},
    {0, L"logdir", L"str", FALSE, L"The directory to output local logs to."},
    {0, L"reset", L"str", FALSE, L"Reset values to default."}, {0}};
static const opt_t o_coredump_set[] = {
    {'e', L"enable", L"bool", FALSE, L"Enable network dump."},
    {'v', L"interface-name", L"str", FALSE, L"An active interface to be used for the network core dump."},
    {'i', L"server-ipv4", L"str", FALSE, L"IPv4 address of the remote dump server (deprecated: use --server-ip)."},
    {'j', L"server-ip", L"str", FALSE, L"IP address of the remote dump server (IPv4 or IPv6)."},
    {'o', L"server-port", L"long", FALSE, L"Port on which the network dump server is listening."}, {0}};
static const opt_t o_dumpfile_add[] = {
    {'a', L"auto", L"bool", FALSE, L"Automatically create a file if none found."},
    {'d', L"datastore", L"str", FALSE, L"Manually specify the datastore the dump file is created in."},
    {'e', L"enable", L"bool", FALSE, L"Enable diagnostic file after creation."},
    {'f', L"file", L"str", FALSE, L"Manually specify the file name of the created dump file."},
    {'s', L"size", L"long", FALSE, L"Manually set the size in MB of the created dump file."}, {0}};
static const opt_t o_dumpfile_set[] = {
    {'e', L"enable", L"bool", FALSE, L"Enable or disable the VMkernel dump file."},
    {'p', L"path", L"str", FALSE, L"The path of the VMkernel dump file to use."},
    {'s', L"smart", L"bool", FALSE, L"Select the best available file using the smart selection algorithm."},
    {'u', L"unconfigure", L"bool", FALSE, L"Unconfigure the current VMkernel dump file."}, {0}};
static const opt_t o_none[] = {{0}};

static const cmd_t cmds[] = {
    {L"system settings kernel list", L"List VMkernel kernel settings.", o_kernel_list, kernel_list, 0},
    {L"system settings kernel set", L"Set a VMKernel setting.", o_kernel_set, kernel_set, 0},
    {L"system settings advanced list", L"List the advanced options available from the VMkernel.", o_adv_list,
     adv_list, 0},
    {L"system settings advanced set", L"Set the value of an advanced option.", o_adv_set, adv_set, 0},
    {L"system module list", L"List the VMkernel modules that the system knows about.", o_module_list, module_list, 0},
    {L"system module get", L"Show information for a VMkernel module.", o_module_get, module_get, 0},
    {L"system module set", L"Allow enabling and disabling of a VMkernel module.", o_module_set, module_set, 0},
    {L"system syslog config get", L"Show the current global configuration values.", o_none, syslog_get, 0},
    {L"system syslog config set", L"Set global log configuration options.", o_syslog_set, syslog_set, 0},
    {L"system syslog reload", L"Reload the log daemon to apply any new configuration options.", o_none,
     syslog_reload, 0},
    {L"system coredump network get", L"Get the currently configured parameters for network coredump, if enabled.",
     o_none, coredump_get, 0},
    {L"system coredump network set", L"Set the parameters used for network core dump.", o_coredump_set,
     coredump_set, 0},
    {L"system coredump file add", L"Create a VMkernel dump file.", o_dumpfile_add, coredump_file_add, 80},
    {L"system coredump file list", L"List the active and configured VMkernel dump files.", o_none, coredump_file_list,
     80},
    {L"system coredump file set", L"Set the active and configured VMkernel dump file.", o_dumpfile_set,
     coredump_file_set, 80},
    {L"system version get", L"Display the product name, version and build information.", o_none, version_get, 0},
    {L"vsan trace get", L"Get the vSAN tracing configuration.", o_none, vsan_trace_get, 0},
};

static const ns_t namespaces[] = {
    {L"", L"", 0},
    {L"system", L"VMKernel system properties and commands for configuring properties of the kernel core system "
                L"and related system services.", 0},
    {L"system settings", L"Operations to manage system settings.", 0},
    {L"system settings kernel", L"VMKernel kernel settings.", 0},
    {L"system settings advanced", L"The advanced settings are a set of VMkernel options that can be configured "
                                  L"by the user.", 0},
    {L"system module", L"VMKernel system properties and commands for configuring properties of the kernel core "
                       L"system.", 0},
    {L"system syslog", L"System log management operations.", 0},
    {L"system syslog config", L"Log configuration operations.", 0},
    {L"system coredump", L"Operations to manage the system's coredump partition and network dump.", 0},
    {L"system coredump file", L"Operations to manage the VMkernel dump files.", 80},
    {L"system coredump network", L"Operations to manage network coredump.", 0},
    {L"system version", L"Commands to get version information.", 0},
    {L"vsan", L"VMware vSAN commands.", 0},
    {L"vsan trace", L"Commands for vSAN trace configuration.", 0},
};

static const CHAR16 *last_word(const CHAR16 *p) {
    const CHAR16 *w = p;
    for (const CHAR16 *q = p; *q; q++)
        if (*q == ' ') w = q + 1;
    return w;
}

static BOOLEAN ns_visible(UINTN i) {
    return namespaces[i].since == 0 || PROFILE->id >= namespaces[i].since;
}

static BOOLEAN cmd_visible(UINTN i) {
    return cmds[i].since == 0 || PROFILE->id >= cmds[i].since;
}

static INTN find_ns(const CHAR16 *path) {
    for (UINTN i = 0; i < ARRAY_LEN(namespaces); i++)
        if (ns_visible(i) && StrCmp((CHAR16 *)path, (CHAR16 *)namespaces[i].path) == 0) return (INTN)i;
    return -1;
}

static INTN find_cmd(const CHAR16 *path) {
    for (UINTN i = 0; i < ARRAY_LEN(cmds); i++)
        if (cmd_visible(i) && StrCmp((CHAR16 *)path, (CHAR16 *)cmds[i].path) == 0) return (INTN)i;
    return -1;
}

/* children of a namespace: direct sub-namespaces and commands */
static BOOLEAN is_child(const CHAR16 *parent, const CHAR16 *child) {
    UINTN pl = wlen(parent);
    if (pl == 0) {
        for (const CHAR16 *q = child; *q; q++)
            if (*q == ' ') return FALSE;
        return child[0] != 0;
    }
    if (StrnCmp((CHAR16 *)child, (CHAR16 *)parent, pl) != 0 || child[pl] != ' ') return FALSE;
    for (const CHAR16 *q = child + pl + 1; *q; q++)
        if (*q == ' ') return FALSE;
    return TRUE;
}

static void col_line(const CHAR16 *name, const CHAR16 *help) {
    CHAR16 pad[32];
    UINTN n = wlen(name), i = 0;
    for (; n + i < 22 && i < ARRAY_LEN(pad) - 1; i++) pad[i] = ' ';
    pad[i] = 0;
    shell_out(L"  %s%s%s\r\n", name, n >= 22 ? L" " : pad, help);
}

static void ns_usage(INTN ns) {
    const CHAR16 *path = namespaces[ns].path;
    if (!path[0]) {
        shell_out(L"Usage: esxcli [options] {namespace}+ {cmd} [cmd options]\r\n\r\n");
        shell_out(L"Options:\r\n");
        shell_out(L"  --formatter=FORMATTER\r\n");
        shell_out(L"                        Override the formatter to use for a given command. Available formatter: "
                  L"xml, csv, keyvalue\r\n");
        shell_out(L"  --debug               Enable debug or internal use options\r\n");
        shell_out(L"  --version             Display version information for the script\r\n");
        shell_out(L"  -?, --help            Display usage information for the script\r\n\r\n");
        shell_out(L"Available Namespaces:\r\n");
    } else {
        shell_out(L"Usage: esxcli %s {cmd} [cmd options]\r\n\r\n", path);
    }
    BOOLEAN header = FALSE;
    if (path[0]) {
        for (UINTN i = 0; i < ARRAY_LEN(namespaces); i++)
            if (ns_visible(i) && is_child(path, namespaces[i].path)) {
                if (!header) shell_out(L"Available Namespaces:\r\n");
                header = TRUE;
                col_line(last_word(namespaces[i].path), namespaces[i].help);
            }
    } else {
        for (UINTN i = 0; i < ARRAY_LEN(namespaces); i++)
            if (ns_visible(i) && is_child(path, namespaces[i].path)) col_line(namespaces[i].path, namespaces[i].help);
    }
    header = FALSE;
    for (UINTN i = 0; i < ARRAY_LEN(cmds); i++)
        if (cmd_visible(i) && is_child(path, cmds[i].path)) {
            if (!header) shell_out(L"%sAvailable Commands:\r\n", path[0] ? L"\r\n" : L"");
            header = TRUE;
            col_line(last_word(cmds[i].path), cmds[i].help);
        }
}

static void cmd_usage(const cmd_t *c) {
    shell_out(L"Usage: esxcli %s [cmd options]\r\n\r\n", c->path);
    shell_out(L"Description: \r\n");
    col_line(last_word(c->path), c->help);
    if (!c->opts[0].l) return;
    shell_out(L"\r\nCmd options:\r\n");
    for (const opt_t *o = c->opts; o->l; o++) {
        CHAR16 spec[64], help[200];
        if (o->s)
            SPrint(spec, sizeof spec, L"-%c|--%s=<%s>", o->s, o->l, o->type);
        else
            SPrint(spec, sizeof spec, L"--%s=<%s>", o->l, o->type);
        SPrint(help, sizeof help, L"%s%s", o->help, o->required ? L" (required)" : L"");
        col_line(spec, help);
    }
}

static void out_error_usage(const cmd_t *c, const CHAR16 *fmt, const CHAR16 *arg) {
    shell_out(fmt, arg);
    shell_out(L"\r\n\r\n");
    cmd_usage(c);
}

static void opt_name(const opt_t *o, CHAR16 *out, UINTN cap) {
    if (o->s)
        SPrint(out, cap * sizeof(CHAR16), L"-%c|--%s", o->s, o->l);
    else
        SPrint(out, cap * sizeof(CHAR16), L"--%s", o->l);
}

static void run_cmd(const cmd_t *c, UINTN argc, CHAR16 **argv) {
    const CHAR16 *vals[MAX_OPTS];
    UINTN nopts = 0;
    while (c->opts[nopts].l) nopts++;
    ZeroMem(vals, sizeof vals);
    for (UINTN i = 0; i < argc; i++) {
        CHAR16 *a = argv[i];
        const opt_t *o = NULL;
        CHAR16 *val = NULL;
        if (StrCmp(a, L"--help") == 0 || StrCmp(a, L"-?") == 0) {
            cmd_usage(c);
            return;
        }
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            CHAR16 *eq = a + 2;
            while (*eq && *eq != '=') eq++;
            UINTN nl = eq - (a + 2);
            for (UINTN k = 0; k < nopts; k++)
                if (wlen(c->opts[k].l) == nl && StrnCmp(a + 2, (CHAR16 *)c->opts[k].l, nl) == 0) o = &c->opts[k];
            if (o && *eq == '=') val = eq + 1;
        } else if (a[0] == '-' && a[1] && a[2] == 0) {
            for (UINTN k = 0; k < nopts; k++)
                if (c->opts[k].s == a[1]) o = &c->opts[k];
        }
        if (!o) {
            out_error_usage(c, a[0] == '-' ? L"Error: Invalid option %s" : L"Error: Unknown command or namespace %s",
                            a);
            return;
        }
        if (!val) {
            if (i + 1 >= argc) {
                CHAR16 n[64];
                opt_name(o, n, ARRAY_LEN(n));
                out_error_usage(c, L"Error: Missing argument for option %s", n);
                return;
            }
            val = argv[++i];
        }
        vals[o - c->opts] = val;
    }
    for (UINTN k = 0; k < nopts; k++)
        if (c->opts[k].required && !vals[k]) {
            CHAR16 n[64];
            opt_name(&c->opts[k], n, ARRAY_LEN(n));
            out_error_usage(c, L"Error: Missing required parameter %s", n);
            return;
        }
    c->fn(vals);
}

void esxcli_main(UINTN argc, CHAR16 **argv) {
    CHAR16 path[128];
    UINTN i = 1;
    path[0] = 0;
    /* global options */
    while (i < argc && argv[i][0] == '-') {
        if (StrCmp(argv[i], L"--version") == 0) {
            shell_out(L"Script 'esxcli' version: 1.0\r\n");
            return;
        }
        if (StrCmp(argv[i], L"--help") == 0 || StrCmp(argv[i], L"-?") == 0) {
            ns_usage(0);
            return;
        }
        if (!wstarts_ci(argv[i], L"--formatter") && StrCmp(argv[i], L"--debug") != 0) {
            shell_out(L"Error: Invalid option %s\r\n\r\n", argv[i]);
            ns_usage(0);
            return;
        }
        if (StrCmp(argv[i], L"--formatter") == 0) i++;
        i++;
    }
    for (; i < argc && argv[i][0] != '-'; i++) {
        CHAR16 next[128];
        SPrint(next, sizeof next, path[0] ? L"%s %s" : L"%s%s", path, argv[i]);
        if (find_ns(next) < 0 && find_cmd(next) < 0) {
            shell_out(L"Error: Unknown command or namespace %s\r\n", next);
            return;
        }
        wcopy(path, ARRAY_LEN(path), next);
        if (find_cmd(path) >= 0) {
            i++;
            break;
        }
    }
    INTN c = find_cmd(path);
    if (c >= 0) {
        run_cmd(&cmds[c], argc - i, argv + i);
        return;
    }
    INTN ns = find_ns(path);
    if (i < argc && StrCmp(argv[i], L"--help") != 0 && StrCmp(argv[i], L"-?") != 0) {
        shell_out(L"Error: Invalid option %s\r\n\r\n", argv[i]);
    }
    ns_usage(ns < 0 ? 0 : ns);
}
