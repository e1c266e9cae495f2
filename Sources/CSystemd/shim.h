// libsystemd's daemon and journal interfaces: sd_notify, sd_watchdog_enabled, sd_listen_fds
// (sd-daemon.h) and sd_journal_sendv (sd-journal.h). Swift calls the non-variadic entry points
// directly, so no wrapper functions are needed. SD_JOURNAL_SUPPRESS_LOCATION keeps sd-journal.h
// from redefining sd_journal_send* as macros that add CODE_FILE/CODE_LINE (the log handler sends
// its own).
#pragma once
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
