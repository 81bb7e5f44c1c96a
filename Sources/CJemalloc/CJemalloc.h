#ifndef EQUICAST_CJEMALLOC_H
#define EQUICAST_CJEMALLOC_H
// Linked into the operator CLI (and so `equicast sim`) only: jemalloc takes the place of the C library's malloc
// for the whole process. See Package.swift.
#include <jemalloc/jemalloc.h>
#endif
