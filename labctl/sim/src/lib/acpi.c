/* acpi.c - the ACPI power button, read from the fixed hardware registers.
 *
 * A real ESXi learns of the button through an SCI; firmware does not hand ACPI events to applications,
 * so the simulator does what an OS does before it has interrupts: find PM1a_EVT_BLK in the FADT, set
 * PWRBTN_EN in PM1_EN (QEMU latches PWRBTN_STS only while it is enabled) and poll PWRBTN_STS in PM1_STS
 * (write 1 to clear). The boot loader does not arm it, like esx-boot, so a press there goes unanswered. */
#include "acpi.h"

#define PWRBTN (1u << 8) /* PM1_STS.PWRBTN_STS and PM1_EN.PWRBTN_EN */

static UINT16 pm1_sts_port; /* 0 while nothing is watched */
static UINT16 pm1_en_port;
static void (*handler)(void);

static UINT16 port_in16(UINT16 port) {
    UINT16 v;
    __asm__ __volatile__("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static void port_out16(UINT16 port, UINT16 v) {
    __asm__ __volatile__("outw %0, %1" : : "a"(v), "Nd"(port));
}

static BOOLEAN sig4(const UINT8 *p, const char *s) {
    return p[0] == (UINT8)s[0] && p[1] == (UINT8)s[1] && p[2] == (UINT8)s[2] && p[3] == (UINT8)s[3];
}

/* The FADT ("FACP") through the XSDT (8-byte entries) or the RSDT (4-byte entries). */
static const UINT8 *find_fadt(void) {
    EFI_GUID acpi20 = ACPI_20_TABLE_GUID;
    const UINT8 *rsdp = NULL;
    for (UINTN i = 0; i < ST->NumberOfTableEntries; i++) {
        EFI_CONFIGURATION_TABLE *t = &ST->ConfigurationTable[i];
        if (CompareMem(&t->VendorGuid, &acpi20, sizeof acpi20) == 0) {
            rsdp = t->VendorTable;
            break;
        }
        if (CompareMem(&t->VendorGuid, &AcpiTableGuid, sizeof acpi20) == 0) rsdp = t->VendorTable;
    }
    if (!rsdp || CompareMem((VOID *)rsdp, "RSD PTR ", 8) != 0) return NULL;
    UINT64 xsdt = rsdp[15] >= 2 ? le64(rsdp + 24) : 0;
    const UINT8 *sdt = xsdt ? (const UINT8 *)(UINTN)xsdt : (const UINT8 *)(UINTN)le32(rsdp + 16);
    UINTN entry = xsdt ? 8 : 4;
    if (!sdt) return NULL;
    UINT32 len = le32(sdt + 4);
    for (UINT32 off = 36; off + entry <= len; off += entry) {
        const UINT8 *t = (const UINT8 *)(UINTN)(entry == 8 ? le64(sdt + off) : le32(sdt + off));
        if (t && sig4(t, "FACP")) return t;
    }
    return NULL;
}

BOOLEAN acpi_on_power_button(void (*fn)(void)) {
    const UINT8 *fadt = find_fadt();
    if (!fadt) return FALSE;
    UINT32 evt = le32(fadt + 56); /* PM1a_EVT_BLK (I/O port) */
    UINT8 evt_len = fadt[88];     /* PM1_EVT_LEN: PM1_STS then PM1_EN, half each */
    if (evt == 0 && le32(fadt + 4) >= 160 && fadt[148] == 1) evt = (UINT32)le64(fadt + 152); /* X_PM1a_EVT_BLK */
    if (evt == 0 || evt > 0xffff || evt_len < 4) return FALSE;
    pm1_sts_port = (UINT16)evt;
    pm1_en_port = (UINT16)(evt + evt_len / 2);
    port_out16(pm1_sts_port, PWRBTN); /* forget a press from before we listened */
    port_out16(pm1_en_port, (UINT16)(port_in16(pm1_en_port) | PWRBTN));
    handler = fn;
    return TRUE;
}

BOOLEAN acpi_watching(void) {
    return handler != NULL && pm1_sts_port != 0;
}

void acpi_poll(void) {
    if (!acpi_watching() || !(port_in16(pm1_sts_port) & PWRBTN)) return;
    port_out16(pm1_sts_port, PWRBTN);
    handler();
}
