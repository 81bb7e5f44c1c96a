#ifndef EQUICAST_CSODIUM_H
#define EQUICAST_CSODIUM_H
#include <sodium.h>
#endif
