/*
 * redis_uv.c -- hiredis 0.14 async adapter for libuv (see redis_uv.h).
 */
#include "redis/redis_uv.h"

#include <stdlib.h>

typedef struct redis_uv_s {
    redisAsyncContext *ac;  /* NULL once hiredis called cleanup */
    uv_poll_t poll;
    uv_prepare_t prepare;   /* applies `events` once per loop turn */
    int events;             /* UV_READABLE | UV_WRITABLE wanted by hiredis */
    int applied;            /* what the poll handle watches */
    int open_handles;
    void (*on_closed)(void *arg);
    void *arg;
} redis_uv_t;

static void on_poll(uv_poll_t *handle, int status, int events)
{
    redis_uv_t *p = handle->data;

    /* On an error libuv reports no events and has stopped the handle. Hand
     * hiredis the events it was waiting for: its read or write path then
     * meets the socket error (SO_ERROR while connecting, a failing read or
     * write afterwards) and reports it through the connect or disconnect
     * callback. */
    if (status < 0) {
        events = p->events;
        p->applied = 0; /* libuv stopped the handle */
    }
    if (p->ac != NULL && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    /* The read may have freed the context (cleanup sets p->ac to NULL). */
    if (p->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

/* Right before the loop polls: the events hiredis wants by then. */
static void on_prepare(uv_prepare_t *handle)
{
    redis_uv_t *p = handle->data;

    uv_prepare_stop(handle);
    if (p->ac == NULL || p->events == p->applied)
        return;
    /* uv_poll_start() only fails for an invalid handle or event mask; the
     * handle is valid for as long as hiredis calls these hooks. */
    if (p->events != 0)
        (void)uv_poll_start(&p->poll, p->events, on_poll);
    else
        (void)uv_poll_stop(&p->poll);
    p->applied = p->events;
}

/* hiredis asks for reads again after every read and for writes around
 * every command it queues, and each uv_poll_start() costs two epoll_ctl(2)
 * calls (libuv removes the fd, then adds it back), even for the same
 * events. So a change is applied once per loop turn, before the poll, and
 * only if the events still differ then: a command written at once (the
 * early flush in redis_conn.c) never touches epoll. */
static void update(redis_uv_t *p)
{
    if (p->events != p->applied)
        (void)uv_prepare_start(&p->prepare, on_prepare); /* cannot fail */
}

static void add_read(void *privdata)
{
    redis_uv_t *p = privdata;
    p->events |= UV_READABLE;
    update(p);
}

static void del_read(void *privdata)
{
    redis_uv_t *p = privdata;
    p->events &= ~UV_READABLE;
    update(p);
}

static void add_write(void *privdata)
{
    redis_uv_t *p = privdata;
    p->events |= UV_WRITABLE;
    update(p);
}

static void del_write(void *privdata)
{
    redis_uv_t *p = privdata;
    p->events &= ~UV_WRITABLE;
    update(p);
}

static void on_close(uv_handle_t *handle)
{
    redis_uv_t *p = handle->data;
    void (*cb)(void *) = p->on_closed;
    void *arg = p->arg;

    if (--p->open_handles > 0)
        return;
    free(p);
    if (cb != NULL)
        cb(arg);
}

static void cleanup(void *privdata)
{
    redis_uv_t *p = privdata;

    /* hiredis closes the fd right after this hook returns; uv_close() stops
     * watching it synchronously, the memory goes in on_close(). */
    p->ac = NULL;
    p->events = 0;
    uv_close((uv_handle_t *)&p->poll, on_close);
    uv_close((uv_handle_t *)&p->prepare, on_close);
}

/* Installs the five hooks on `ac`. Returns 0, or UV_EEXIST (already
 * attached), UV_ENOMEM, or uv_poll_init()'s error; on error nothing was
 * allocated or registered and `ac` is unchanged. */
int saga_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop,
                         void (*on_closed)(void *arg), void *arg)
{
    redis_uv_t *p;
    int rc;

    if (ac->ev.data != NULL)
        return UV_EEXIST;
    p = calloc(1, sizeof *p);
    if (p == NULL)
        return UV_ENOMEM;
    rc = uv_poll_init(loop, &p->poll, ac->c.fd);
    if (rc < 0) {
        /* A failed uv_poll_init() registers nothing with the loop. */
        free(p);
        return rc;
    }
    uv_prepare_init(loop, &p->prepare); /* cannot fail */
    p->open_handles = 2;
    p->ac = ac;
    p->poll.data = p;
    p->prepare.data = p;
    p->on_closed = on_closed;
    p->arg = arg;

    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}
