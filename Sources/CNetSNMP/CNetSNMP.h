#ifndef EQUICAST_CNETSNMP_H
#define EQUICAST_CNETSNMP_H
/* net-snmp defines _GNU_SOURCE, which changes fd_set; the POSIX view must come first so that every module
   that includes <sys/select.h> agrees on it (CROSS-NOTES.md). */
#include <sys/types.h>
#include <sys/select.h>
#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <net-snmp/agent/net-snmp-agent-includes.h>
#endif
