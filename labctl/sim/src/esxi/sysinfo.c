/* sysinfo.c - what the DCUI shows about the machine: SMBIOS manufacturer/product, CPU brand, memory. */
#include "esxi.h"
#include "sysinfo.h"

static EFI_GUID smbios3_guid = {0xf2fd1544, 0x9794, 0x4a2c, {0x99, 0x2e, 0xe5, 0xbb, 0xcf, 0x20, 0xe3, 0x94}};
static EFI_GUID smbios_guid = {0xeb9d2d31, 0x2d88, 0x11d3, {0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d}};

static void *config_table(EFI_GUID *g) {
    for (UINTN i = 0; i < ST->NumberOfTableEntries; i++)
        if (CompareGuid(&ST->ConfigurationTable[i].VendorGuid, g) == 0) return ST->ConfigurationTable[i].VendorTable;
    return NULL;
}

static void smbios_string(const UINT8 *s, UINT8 idx, CHAR16 *out, UINTN cap) {
    const CHAR8 *p = (const CHAR8 *)(s + s[1]);
    out[0] = 0;
    if (idx == 0) return;
    for (UINT8 i = 1; i < idx && *p; i++) p += alen(p) + 1;
    a2w(out, cap, p, 64);
}

void sysinfo_platform(CHAR16 *out, UINTN cap) {
    const UINT8 *tbl = NULL;
    UINTN len = 0;
    const UINT8 *ep = config_table(&smbios3_guid);
    if (ep && CompareMem(ep, "_SM3_", 5) == 0) {
        tbl = (const UINT8 *)(UINTN)(*(const UINT64 *)(ep + 0x10));
        len = *(const UINT32 *)(ep + 0x0c);
    } else if ((ep = config_table(&smbios_guid)) != NULL && CompareMem(ep, "_SM_", 4) == 0) {
        tbl = (const UINT8 *)(UINTN)(*(const UINT32 *)(ep + 0x18));
        len = *(const UINT16 *)(ep + 0x16);
    }
    wcopy(out, cap, L"Generic PC");
    if (!tbl) return;
    const UINT8 *p = tbl, *end = tbl + len;
    while (p + 4 <= end && p[0] != 127) {
        if (p[0] == 1 && p[1] >= 8) {
            CHAR16 man[64], prod[64];
            smbios_string(p, p[4], man, ARRAY_LEN(man));
            smbios_string(p, p[5], prod, ARRAY_LEN(prod));
            SPrint(out, cap * sizeof(CHAR16), L"%s %s", man, prod);
            return;
        }
        const UINT8 *q = p + p[1];
        while (q + 1 < end && !(q[0] == 0 && q[1] == 0)) q++;
        p = q + 2;
    }
}

void sysinfo_cpu(CHAR16 *out, UINTN cap) {
    UINT32 r[12];
    UINT32 a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000u), "c"(0));
    if (a < 0x80000004u) {
        wcopy(out, cap, L"x86_64 CPU");
        return;
    }
    for (UINT32 i = 0; i < 3; i++)
        __asm__ volatile("cpuid" : "=a"(r[4 * i]), "=b"(r[4 * i + 1]), "=c"(r[4 * i + 2]), "=d"(r[4 * i + 3])
                         : "a"(0x80000002u + i), "c"(0));
    CHAR8 brand[49];
    CopyMem(brand, r, 48);
    brand[48] = 0;
    CHAR8 *s = brand;
    while (*s == ' ') s++;
    a2w(out, cap, s, 48);
}
