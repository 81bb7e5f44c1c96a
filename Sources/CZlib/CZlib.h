#ifndef EQUICAST_CZLIB_H
#define EQUICAST_CZLIB_H
#include <zlib.h>
#endif
