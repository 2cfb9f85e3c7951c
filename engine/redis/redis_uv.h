/*
 * redis_uv.h -- hiredis 0.14 async adapter for libuv (a uv_poll_t per
 * context).
 *
 * Same five hooks as hiredis's adapters/libuv.h, with two differences:
 *  - a poll error status (e.g. a refused TCP connect, reported by libuv as
 *    UV_EBADF with no events) is passed on to hiredis as the events it was
 *    waiting for, so the connect callback sees the failure (Debian's 0.14.1
 *    adapter drops it and the connection hangs forever);
 *  - the owner learns when the poll handle is closed, so it can wait for
 *    that before freeing itself or letting the loop be closed.
 */
#ifndef SAGA_REDIS_UV_H
#define SAGA_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Attaches `ac` (not yet attached to any event library) to `loop`. The poll
 * handle is owned by the adapter: it is closed when hiredis calls the
 * cleanup hook (from redisAsyncFree() or a disconnect), and once it is
 * closed `on_closed(arg)` runs (if not NULL), exactly once, from the loop.
 * Returns 0, or a negative libuv error code (UV_ENOMEM, UV_EEXIST, ...);
 * then nothing was attached, `ac` is untouched and `on_closed` never runs;
 * the caller still owns and frees `ac`. */
int saga_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop,
                         void (*on_closed)(void *arg), void *arg);

#endif
