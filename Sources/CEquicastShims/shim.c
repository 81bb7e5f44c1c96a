#include "CEquicastShims.h"

#include <ifaddrs.h>
#include <spawn.h>
#include <sys/wait.h>
#include <net/if.h>
#include <sys/file.h>

/* glibc passes (argc, argv, envp) to functions in .init_array; capturing them here gives Embedded Swift,
   which has no CommandLine, the process arguments without a main() written in C. */
static int equicast_saved_argc = 0;
static char **equicast_saved_argv = NULL;

static void equicast_capture_arguments(int argc, char **argv, char **envp) {
    (void)envp;
    equicast_saved_argc = argc;
    equicast_saved_argv = argv;
}

__attribute__((section(".init_array"), used))
static void (*const equicast_capture_arguments_entry)(int, char **, char **) = equicast_capture_arguments;

int equicast_argc(void) { return equicast_saved_argc; }

const char *equicast_argv(int index) {
    if (index < 0 || index >= equicast_saved_argc || equicast_saved_argv == NULL) return NULL;
    return equicast_saved_argv[index];
}

/* SIGTERM/SIGINT ask for a graceful leave, SIGHUP for a reload. SIGCHLD (a hook command ended) only interrupts
   poll, so the loop reaps the child at once instead of at its next timeout. No SA_RESTART: poll() returns EINTR
   at once. SIGPIPE is ignored; writes to closed sockets return EPIPE instead. */
static volatile sig_atomic_t equicast_pending_signals = 0;

static void equicast_signal_handler(int signo) {
    if (signo == SIGCHLD) return;
    equicast_pending_signals |= (signo == SIGHUP) ? EQUICAST_SIGNAL_RELOAD : EQUICAST_SIGNAL_TERMINATE;
}

void equicast_install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = equicast_signal_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A parent may have started us with these blocked (the mask is inherited across fork and exec). */
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGHUP);
    sigaddset(&wanted, SIGCHLD);
    sigprocmask(SIG_UNBLOCK, &wanted, NULL);
}

int equicast_take_signals(void) {
    int bits = equicast_pending_signals;
    equicast_pending_signals = 0;
    return bits;
}

int equicast_interface_address(int family, equicast_endpoint *out, char *name, size_t name_size) {
    struct ifaddrs *list = NULL;
    if (getifaddrs(&list) != 0) return -1;
    int found = -1;
    for (struct ifaddrs *a = list; a != NULL && found != 0; a = a->ifa_next) {
        if (a->ifa_addr == NULL || a->ifa_addr->sa_family != family) continue;
        if (!(a->ifa_flags & IFF_UP) || (a->ifa_flags & IFF_LOOPBACK)) continue;
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        memcpy(&ss, a->ifa_addr, family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
        equicast_endpoint ep;
        if (equicast_endpoint_from_sockaddr(&ss, &ep) != 0) continue;
        if (!ep.is_v6 && ep.bytes[0] == 169 && ep.bytes[1] == 254) continue;    /* 169.254/16 */
        if (ep.is_v6 && ep.bytes[0] == 0xfe && (ep.bytes[1] & 0xc0) == 0x80) continue; /* fe80::/10 */
        ep.port = 0;
        *out = ep;
        if (name != NULL && name_size > 0) {
            strncpy(name, a->ifa_name, name_size - 1);
            name[name_size - 1] = 0;
        }
        found = 0;
    }
    freeifaddrs(list);
    if (found != 0) errno = 0;
    return found;
}

static char equicast_crash_text[4096];
static size_t equicast_crash_length = 0;
static int equicast_crash_code = 1;

static void equicast_crash_handler(int signo) {
    (void)signo;
    ssize_t ignored = write(2, equicast_crash_text, equicast_crash_length);
    (void)ignored;
    _exit(equicast_crash_code);
}

void equicast_install_crash_report(const char *text, int exit_code) {
    size_t n = strlen(text);
    if (n > sizeof(equicast_crash_text) - 1) n = sizeof(equicast_crash_text) - 1;
    memcpy(equicast_crash_text, text, n);
    equicast_crash_text[n] = 0;
    equicast_crash_length = n;
    equicast_crash_code = exit_code;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = equicast_crash_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = (int)SA_RESETHAND;
    const int signals[] = {SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) sigaction(signals[i], &sa, NULL);
}

/* ---- hooks ---------------------------------------------------------------------------------------------- */
extern char **environ;

int equicast_spawn_shell(const char *command, const char *const *extra, int count) {
    size_t inherited = 0;
    while (environ && environ[inherited]) inherited++;
    char **envp = calloc(inherited + (size_t)count + 1, sizeof(char *));
    if (!envp) return -1;
    size_t n = 0;
    for (int i = 0; i < count; i++) envp[n++] = (char *)extra[i];
    for (size_t i = 0; i < inherited; i++) {
        /* Our own variables win over inherited ones of the same name. */
        const char *eq = strchr(environ[i], '=');
        size_t len = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);
        int shadowed = 0;
        for (int k = 0; k < count; k++) if (strncmp(extra[k], environ[i], len) == 0) shadowed = 1;
        if (!shadowed) envp[n++] = environ[i];
    }
    envp[n] = NULL;
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setpgroup(&attributes, 0);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGHUP);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    char *argv[] = {"sh", "-c", (char *)command, NULL};
    pid_t pid = -1;
    int rc = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    free(envp);
    if (rc != 0) { errno = rc; return -1; }
    return (int)pid;
}

int equicast_child_exited(int pid, int *code) {
    int status = 0;
    pid_t r = waitpid((pid_t)pid, &status, WNOHANG);
    if (r == 0) return 0;
    if (r < 0) return -1;
    if (WIFEXITED(status)) *code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) *code = 128 + WTERMSIG(status);
    else *code = 255;
    return 1;
}

int equicast_lock_file(const char *path, long *holder) {
    *holder = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char text[32] = {0};
        ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
        if (n > 0) *holder = strtol(text, NULL, 10);
        close(fd);
        errno = e;
        return -1;
    }
    char text[32];
    int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) { int e = errno; close(fd); errno = e; return -1; }
    return fd;
}
