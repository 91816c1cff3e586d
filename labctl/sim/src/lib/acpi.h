/* acpi.h - the ACPI power button: `labctl down` (QEMU system_powerdown) and VMware's "Shut Down Guest"
 * press it, and an installed ESXi shuts down cleanly on it. */
#ifndef SIM_ACPI_H
#define SIM_ACPI_H

#include "util.h"

/* From now on a press of the power button calls fn (which normally does not return). Finds the PM1 event
 * registers through the FADT; returns FALSE (and watches nothing) when the firmware has no ACPI tables. */
BOOLEAN acpi_on_power_button(void (*fn)(void));
/* TRUE while a handler is set: tui_read_key then polls acpi_poll() every 100 ms. */
BOOLEAN acpi_watching(void);
/* Check the button once; on a press clear it and call the handler. */
void acpi_poll(void);

#endif
