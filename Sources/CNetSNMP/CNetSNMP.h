#ifndef EQUICAST_CNETSNMP_H
#define EQUICAST_CNETSNMP_H
/* net-snmp defines _GNU_SOURCE, which changes fd_set; the POSIX view must come first so that every module
   that includes <sys/select.h> agrees on it (CROSS-NOTES.md). */
#include <sys/types.h>
#include <sys/select.h>
#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <net-snmp/agent/net-snmp-agent-includes.h>

/* Macros and variadic functions of net-snmp that Swift cannot call, as small inline functions. */

static inline void equicast_fd_zero(fd_set *set) { FD_ZERO(set); }
static inline void equicast_fd_set(int fd, fd_set *set) { FD_SET(fd, set); }
static inline int equicast_fd_isset(int fd, const fd_set *set) { return FD_ISSET(fd, set) ? 1 : 0; }
static inline int equicast_fd_setsize(void) { return FD_SETSIZE; }

/* A table registration with no indexes yet; NULL when out of memory. */
static inline netsnmp_table_registration_info *equicast_table_info_new(unsigned int min_column,
                                                                       unsigned int max_column) {
    netsnmp_table_registration_info *info = SNMP_MALLOC_TYPEDEF(netsnmp_table_registration_info);
    if (info) {
        info->min_column = min_column;
        info->max_column = max_column;
    }
    return info;
}

static inline void equicast_table_add_index(netsnmp_table_registration_info *info, u_char type) {
    netsnmp_table_helper_add_index(info, type);
}

static inline netsnmp_variable_list *equicast_tdata_row_add_index(netsnmp_tdata_row *row, u_char type,
                                                                  const void *value, size_t length) {
    return netsnmp_tdata_row_add_index(row, type, value, length);
}

/* init_snmp() would parse the system's default MIB modules, which a subagent never uses (and which are often
   missing on a device, filling the log). MIBS="" around the call loads none; the caller's value comes back. */
static inline void equicast_init_snmp_without_mibs(const char *type) {
    const char *saved = getenv("MIBS");
    char *copy = saved ? strdup(saved) : NULL;
    setenv("MIBS", "", 1);
    init_snmp(type);
    if (copy) {
        setenv("MIBS", copy, 1);
        free(copy);
    } else {
        unsetenv("MIBS");
    }
}

#endif
