/* CEquicastShims: the only door from Equicast's device code to POSIX.
 *
 * Device code compiles both as ordinary Swift and as Embedded Swift, where there is no Glibc overlay: errno,
 * variadic calls (open, fcntl) and macros that are not plain integer constants cannot be reached from Swift.
 * Each of them gets a small static inline function here, prefixed equicast_, so one source works in both modes.
 */
#ifndef EQUICAST_SHIMS_H
#define EQUICAST_SHIMS_H

#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- errno ---------------------------------------------------------------------------------------------- */
static inline int equicast_errno(void) { return errno; }
static inline void equicast_set_errno(int value) { errno = value; }
static inline int equicast_errno_is_would_block(int value) { return value == EAGAIN || value == EWOULDBLOCK; }

/* ---- process arguments (CommandLine does not exist in Embedded Swift) ------------------------------------ */
int equicast_argc(void);
const char *equicast_argv(int index);

/* ---- constants that are enums or expressions in glibc's headers ------------------------------------------ */
static inline int equicast_sock_dgram(void) { return SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC; }
static inline int equicast_sock_stream(void) { return SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC; }
static inline int equicast_af_inet(void) { return AF_INET; }
static inline int equicast_af_inet6(void) { return AF_INET6; }

/* ---- variadic calls --------------------------------------------------------------------------------------- */
static inline int equicast_open(const char *path, int flags, unsigned int mode) {
    return open(path, flags | O_CLOEXEC, (mode_t)mode);
}
static inline int equicast_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* ---- files ------------------------------------------------------------------------------------------------ */
/* Permission bits (the low 12 bits of st_mode) and size of an open file; -1 with errno on failure. */
static inline int equicast_fstat_mode_size(int fd, uint32_t *mode, uint64_t *size) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    *mode = (uint32_t)(st.st_mode & 07777);
    *size = (uint64_t)st.st_size;
    return S_ISREG(st.st_mode) ? 0 : 1;
}
/* Positioned reads and writes (off_t is 32 bits on armv7 without large-file flags: images stay under 2 GiB). */
static inline long equicast_pwrite(int fd, const void *bytes, unsigned long count, uint64_t offset) {
    return (long)pwrite(fd, bytes, (size_t)count, (off_t)offset);
}
static inline long equicast_pread(int fd, void *bytes, unsigned long count, uint64_t offset) {
    return (long)pread(fd, bytes, (size_t)count, (off_t)offset);
}
/* Bytes available to an unprivileged writer on the file system holding path; -1 with errno on failure. */
static inline int equicast_free_bytes(const char *path, uint64_t *bytes) {
    struct statvfs vfs;
    if (statvfs(path, &vfs) != 0) return -1;
    *bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    return 0;
}

/* ---- clocks ----------------------------------------------------------------------------------------------- */
static inline uint64_t equicast_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static inline uint64_t equicast_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- socket addresses ------------------------------------------------------------------------------------ */
/* An IPv4 or IPv6 address in a fixed form Swift can hold by value: IPv4 uses the first four bytes. */
typedef struct {
    uint8_t is_v6;
    uint8_t bytes[16];
    uint16_t port;
} equicast_endpoint;

_Static_assert(sizeof(struct sockaddr_storage) >= sizeof(struct sockaddr_in6), "sockaddr_storage too small");

/* Text to address; returns 1 on success, 0 when the text is neither an IPv4 nor an IPv6 literal. */
static inline int equicast_parse_address(const char *text, uint16_t port, equicast_endpoint *out) {
    memset(out, 0, sizeof(*out));
    out->port = port;
    if (inet_pton(AF_INET, text, out->bytes) == 1) { out->is_v6 = 0; return 1; }
    if (inet_pton(AF_INET6, text, out->bytes) == 1) { out->is_v6 = 1; return 1; }
    return 0;
}
/* Address to text (no port); buffer must hold INET6_ADDRSTRLEN (46) bytes. */
static inline int equicast_format_address(const equicast_endpoint *ep, char *buffer, size_t size) {
    const char *r = inet_ntop(ep->is_v6 ? AF_INET6 : AF_INET, ep->bytes, buffer, (socklen_t)size);
    return r ? 0 : -1;
}
static inline socklen_t equicast_endpoint_to_sockaddr(const equicast_endpoint *ep, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof(*ss));
    if (ep->is_v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(ep->port);
        memcpy(&s6->sin6_addr, ep->bytes, 16);
        return (socklen_t)sizeof(*s6);
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(ep->port);
    memcpy(&s4->sin_addr, ep->bytes, 4);
    return (socklen_t)sizeof(*s4);
}
static inline int equicast_endpoint_from_sockaddr(const struct sockaddr_storage *ss, equicast_endpoint *ep) {
    memset(ep, 0, sizeof(*ep));
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        ep->is_v6 = 1;
        ep->port = ntohs(s6->sin6_port);
        memcpy(ep->bytes, &s6->sin6_addr, 16);
        return 0;
    }
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        ep->port = ntohs(s4->sin_port);
        memcpy(ep->bytes, &s4->sin_addr, 4);
        return 0;
    }
    return -1;
}

/* ---- socket calls that take a sockaddr (Swift cannot cast sockaddr_storage* to sockaddr* in both modes) -- */
static inline int equicast_bind(int fd, const equicast_endpoint *ep) {
    struct sockaddr_storage ss;
    socklen_t len = equicast_endpoint_to_sockaddr(ep, &ss);
    return bind(fd, (struct sockaddr *)&ss, len);
}
static inline int equicast_connect(int fd, const equicast_endpoint *ep) {
    struct sockaddr_storage ss;
    socklen_t len = equicast_endpoint_to_sockaddr(ep, &ss);
    return connect(fd, (struct sockaddr *)&ss, len);
}
static inline int equicast_local_endpoint(int fd, equicast_endpoint *ep) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
    return equicast_endpoint_from_sockaddr(&ss, ep);
}
static inline ssize_t equicast_sendto(int fd, const void *buf, size_t len, const equicast_endpoint *ep) {
    struct sockaddr_storage ss;
    socklen_t sl = equicast_endpoint_to_sockaddr(ep, &ss);
    return sendto(fd, buf, len, MSG_NOSIGNAL, (struct sockaddr *)&ss, sl);
}
/* Receives one datagram; a datagram longer than len is reported through *truncated (MSG_TRUNC). */
static inline ssize_t equicast_recvfrom(int fd, void *buf, size_t len, equicast_endpoint *from, int *truncated) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    ssize_t n = recvfrom(fd, buf, len, MSG_TRUNC, (struct sockaddr *)&ss, &sl);
    if (n < 0) return n;
    *truncated = (size_t)n > len;
    if (equicast_endpoint_from_sockaddr(&ss, from) != 0) memset(from, 0, sizeof(*from));
    return *truncated ? (ssize_t)len : n;
}
static inline int equicast_set_reuseaddr(int fd) {
    int one = 1;
    return setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
}

/* ---- TCP and Unix stream sockets --------------------------------------------------------------------------- */
/* The receive buffer, which bounds the window the peer may fill; set before connect (Linux doubles the value). */
static inline int equicast_set_rcvbuf(int fd, int bytes) {
    return setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}
/* Readable (for poll) only once `bytes` are waiting, or at end of stream or error. */
static inline int equicast_set_rcvlowat(int fd, int bytes) {
    return setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes));
}
static inline int equicast_accept(int fd, equicast_endpoint *from) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    /* accept() and fcntl rather than accept4, which needs _GNU_SOURCE (see CNetSNMP.h on why we avoid it). */
    int c = accept(fd, (struct sockaddr *)&ss, &sl);
    if (c >= 0) {
        fcntl(c, F_SETFD, FD_CLOEXEC);
        if (equicast_set_nonblocking(c) != 0) { int e = errno; close(c); errno = e; return -1; }
    }
    if (c >= 0 && from) {
        if (ss.ss_family == AF_UNIX || equicast_endpoint_from_sockaddr(&ss, from) != 0) memset(from, 0, sizeof(*from));
    }
    return c;
}
/* Pending error of a non-blocking connect (0 = connected). */
static inline int equicast_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}
static inline int equicast_unix_socket_address(const char *path, struct sockaddr_un *sun) {
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) { errno = ENAMETOOLONG; return -1; }
    strcpy(sun->sun_path, path);
    return 0;
}
/* A listening Unix socket at path, mode 0600; its inode in *inode (for equicast_unix_unlink). A file already at
   path is replaced only when it is a socket nobody listens on: anything else fails with errno ENOTSOCK (not a
   socket: never deleted) or EADDRINUSE (a process answers on it). */
static inline int equicast_unix_listen(const char *path, unsigned long long *inode) {
    struct sockaddr_un sun;
    if (equicast_unix_socket_address(path, &sun) != 0) return -1;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) { errno = ENOTSOCK; return -1; }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0) return -1;
        int live = connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0;
        close(probe);
        if (live) { errno = EADDRINUSE; return -1; }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (r != 0 || chmod(path, 0600) != 0 || listen(fd, 16) != 0 || lstat(path, &st) != 0) {
        int e = errno; close(fd); errno = e; return -1;
    }
    *inode = (unsigned long long)st.st_ino;
    return fd;
}
/* Removes the socket at path if it is still the one equicast_unix_listen made (same inode). */
static inline void equicast_unix_unlink(const char *path, unsigned long long inode) {
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (unsigned long long)st.st_ino == inode) unlink(path);
}
/* Takes an exclusive lock on the file at path (created 0600), held until the process exits, and writes the
   process id into it. Returns the descriptor; -1 with errno EWOULDBLOCK when another process holds the lock
   (its pid, as the file says, in *holder, 0 if unreadable), or -1 with errno for other failures. */
int equicast_lock_file(const char *path, long *holder);
/* A blocking connection to a Unix socket (for the operator tool). */
static inline int equicast_unix_connect(const char *path) {
    struct sockaddr_un sun;
    if (equicast_unix_socket_address(path, &sun) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) { int e = errno; close(fd); errno = e; return -1; }
    return fd;
}
static inline ssize_t equicast_send(int fd, const void *buf, size_t len) { return send(fd, buf, len, MSG_NOSIGNAL); }

/* ---- address discovery ---------------------------------------------------------------------------------- */
/* The first usable address of an interface that is up, not loopback and not link-local, of the given family
   (AF_INET or AF_INET6), with its interface name in `name` (IFNAMSIZ bytes). Returns 0, or -1 when there is none
   (errno set when getifaddrs failed). */
int equicast_interface_address(int family, equicast_endpoint *out, char *name, size_t name_size);

/* ---- crash reports (operator tools) ------------------------------------------------------------------------ */
/* On a trap or fatal signal (SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGABRT) write `text` to stderr and exit
   with `exit_code`. The text is copied (at most 4095 bytes). */
void equicast_install_crash_report(const char *text, int exit_code);

/* ---- signals: handlers only set bits; the poll loop reads and clears them ---------------------------------- */
enum { EQUICAST_SIGNAL_TERMINATE = 1, EQUICAST_SIGNAL_RELOAD = 2 };
void equicast_install_signal_handlers(void);
/* Bits of the signals received since the last call. */
int equicast_take_signals(void);

/* ---- hooks (install, health, rollback commands) ------------------------------------------------------------ */
/* Starts `/bin/sh -c command` with the daemon's environment plus `extra` (`count` strings "NAME=value"), stdin
   from /dev/null, in its own process group. Returns the pid, or -1 with errno set. */
int equicast_spawn_shell(const char *command, const char *const *extra, int count);
/* Has the child exited? 0: still running; 1: exited, `*code` is its exit status (128 + signal number when a
   signal ended it); -1: error (errno set). Never blocks. */
int equicast_child_exited(int pid, int *code);
/* Kills the child's process group (the shell and whatever it started). */
static inline void equicast_kill_group(int pid) { kill(-pid, SIGKILL); kill(pid, SIGKILL); }

#endif
