#include "CEquicastShims.h"

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
