/*
 * errors.h -- error codes of the engine.
 *
 * Functions that can fail return 0 or a negative code: either a negative
 * errno value (-ENOMEM, -EINVAL, ...) or one of the SAGA_E* codes below,
 * which live far below the errno range. saga_strerror() names either.
 */
#ifndef SAGA_ERRORS_H
#define SAGA_ERRORS_H

enum {
    SAGA_EFENCED = -10001,    /* the store refused: another owner holds it */
    SAGA_ECONFLICT = -10002,  /* the record changed under us (sequence) */
    SAGA_ENOTFOUND = -10003,  /* no such saga / definition */
    SAGA_EEXIST = -10004,     /* a saga with that id exists already */
    SAGA_ESTORE = -10005,     /* the store answered something unexpected */
    SAGA_ECLOSING = -10006,   /* the object is shutting down */
    SAGA_ECORRUPT = -10007,   /* a stored record cannot be decoded */
    SAGA_ESTATE = -10008,     /* not allowed in the saga's current state */
    SAGA_EUNAVAILABLE = -10009, /* the store is unreachable right now */
    SAGA_EMANAGED = -10010     /* the saga is run by workers, not by us */
};

/* A static description of `code` (never NULL). */
const char *saga_strerror(int code);

#endif
