#include "saga/errors.h"

#include <string.h>

const char *saga_strerror(int code) {
    switch (code) {
    case 0: return "success";
    case SAGA_EFENCED: return "fenced: the saga is owned by another worker";
    case SAGA_ECONFLICT: return "conflict: the saga record changed concurrently";
    case SAGA_ENOTFOUND: return "not found";
    case SAGA_EEXIST: return "already exists";
    case SAGA_ESTORE: return "unexpected answer from the store";
    case SAGA_ECLOSING: return "shutting down";
    case SAGA_ECORRUPT: return "stored record is corrupt";
    case SAGA_ESTATE: return "not allowed in the saga's current state";
    case SAGA_EUNAVAILABLE: return "store unavailable";
    case SAGA_EMANAGED: return "the saga is run by workers";
    default: break;
    }
    if (code < 0 && code > -4096)
        return strerror(-code);
    return "unknown error";
}
