/*
 * engine.c -- the engine object: definitions and their handlers, the sagas
 * running here, starting and resuming them, and an orderly shutdown.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/engine_internal.h"
#include "core/stored_def.h"
#include "saga/errors.h"
#include "util/log.h"

#define DEFAULT_MAX_OUTPUT (1024u * 1024u)

int64_t saga__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void new_id(saga_engine_t *e, char out[27]) {
    uint64_t r1 = saga_rng_next(&e->rng);
    saga_id_make(saga__now_ms(), r1, saga_rng_next(&e->rng), out);
}

/* ---------------------------------------------------------------------- */
/* Engine                                                                  */
/* ---------------------------------------------------------------------- */

saga_engine_t *saga_engine_new(uv_loop_t *loop, const saga_engine_options_t *opt,
                               char *err, size_t errlen) {
    if (opt == NULL || opt->store == NULL) {
        snprintf(err, errlen, "engine needs a store");
        return NULL;
    }
    saga_engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        goto oom;
    e->loop = loop;
    e->opt = *opt;
    e->store = opt->store;
    e->max_output = opt->max_output_bytes ? opt->max_output_bytes : DEFAULT_MAX_OUTPUT;
    saga_rng_seed(&e->rng, opt->seed);
    saga_strmap_init(&e->sagas);
    saga_strmap_init(&e->defs);
    if (opt->worker != NULL) {
        e->worker = strdup(opt->worker);
    } else {
        char host[256] = "localhost", buf[300];
        gethostname(host, sizeof(host) - 1);
        snprintf(buf, sizeof(buf), "%s:%d", host, (int)getpid());
        e->worker = strdup(buf);
    }
    if (e->worker == NULL)
        goto oom;
    if ((e->plugins = saga_plugins_new(&saga__host, loop)) == NULL)
        goto oom;
    for (const char *const *d = opt->plugin_dirs; d != NULL && *d != NULL; d++)
        if (saga_plugins_add_dir(e->plugins, *d) != 0)
            goto oom;
    if (!opt->no_default_plugin_dirs && saga_plugins_add_default_dirs(e->plugins) != 0)
        goto oom;
    int rc = saga_timers_init(loop, &e->timers);
    if (rc == 0)
        rc = uv_timer_init(loop, &e->grace_timer);
    if (rc != 0) {
        snprintf(err, errlen, "cannot create timers: %s", uv_strerror(rc));
        saga_plugins_free(e->plugins);
        free(e->worker);
        free(e);
        return NULL;
    }
    e->grace_timer.data = e;
    return e;
oom:
    snprintf(err, errlen, "out of memory");
    if (e != NULL) {
        saga_plugins_free(e->plugins);
        free(e->worker);
        free(e);
    }
    return NULL;
}

uv_loop_t *saga_engine_loop(const saga_engine_t *e) { return e->loop; }

size_t saga_engine_active(const saga_engine_t *e) { return e->sagas.count; }

void saga__engine_progress(saga_engine_t *e, const saga_progress_t *p) {
    if (e->opt.on_progress != NULL)
        e->opt.on_progress(p, e->opt.data);
}

void saga__engine_forget(saga_engine_t *e, saga_inst_t *inst, bool report,
                         int status) {
    if (saga_strmap_get(&e->sagas, inst->id) == inst)
        saga_strmap_del(&e->sagas, inst->id);
    if (report && e->opt.on_finished != NULL)
        e->opt.on_finished(e, inst->id, inst->state, status, e->opt.data);
}

/* ---------------------------------------------------------------------- */
/* Definitions                                                             */
/* ---------------------------------------------------------------------- */

static void engine_def_free(saga_engine_def_t *d) {
    saga_def_free(d->def);
    free(d->action);
    free(d->comp);
    free(d->conf);
    free(d->keys);
    free(d);
}

void saga__engine_def_release(saga_engine_def_t *d) {
    if (d != NULL && --d->refs == 0)
        engine_def_free(d);
}

const saga_def_t *saga_engine_def(const saga_engine_def_t *d) { return d->def; }

saga_engine_def_t *saga_engine_find(saga_engine_t *e, const char *hash) {
    return saga_strmap_get(&e->defs, hash);
}

const saga_def_t *saga_engine_lookup(const saga_engine_t *e, const char *hash) {
    saga_engine_def_t *d = saga_strmap_get(&e->defs, hash);
    return d ? d->def : NULL;
}

/* The store answered the write of a definition's text: the sagas waiting
 * for it are created now, or fail with the store's code. */
static void on_def_stored(int status, void *data) {
    saga_engine_def_t *d = data;
    int text = status == 0 ? SAGA__TEXT_STORED : status;
    d->text = text;
    /* Dropped by a shutdown: so is every saga that waited for it. */
    if (status != 0 && status != SAGA_ECLOSING)
        saga_error("definition %s: cannot store its text: %s; sagas started under it "
                   "fail", d->def->hash, saga_strerror(status));
    /* A waiter's failure may start a saga that stores the text again
     * (saga_engine_start): it and the sagas not reached yet then wait for
     * that write instead. */
    saga_inst_t *inst;
    while (d->text == text && (inst = d->text_waiters) != NULL) {
        saga__engine_def_unwait(inst);
        saga__inst_hold(inst);
        saga__inst_text_stored(inst, status);
        saga__inst_unhold(inst);
    }
    saga__engine_def_release(d); /* the write's reference */
}

/* Writes a definition's text to the store (again, after a failure).
 * Returns 0 (on_def_stored runs later) or the store's code. */
static int def_store(saga_engine_t *e, saga_engine_def_t *d) {
    d->text = SAGA__TEXT_STORING;
    d->refs++;
    int rc = e->store->ops->put_definition(e->store, d->def->hash, d->def->text,
                                           d->def->text_len, on_def_stored, d);
    if (rc != 0) {
        d->refs--;
        d->text = rc;
    }
    return rc;
}

int saga__engine_def_ready(saga_inst_t *inst) {
    saga_engine_def_t *d = inst->edef;
    if (d->text != SAGA__TEXT_STORING)
        return d->text; /* stored (0), or failed */
    if (!inst->text_waiting) {
        inst->text_waiting = true;
        inst->wait_prev = NULL;
        inst->wait_next = d->text_waiters;
        if (d->text_waiters != NULL)
            d->text_waiters->wait_prev = inst;
        d->text_waiters = inst;
    }
    return 1;
}

void saga__engine_def_unwait(saga_inst_t *inst) {
    if (!inst->text_waiting)
        return;
    saga_engine_def_t *d = inst->edef;
    if (inst->wait_prev != NULL)
        inst->wait_prev->wait_next = inst->wait_next;
    else
        d->text_waiters = inst->wait_next;
    if (inst->wait_next != NULL)
        inst->wait_next->wait_prev = inst->wait_prev;
    inst->wait_prev = inst->wait_next = NULL;
    inst->text_waiting = false;
}

/* Resolves one call's handler; on failure adds a positioned diagnostic. */
static bool resolve(saga_engine_t *e, const saga_def_t *def,
                    const saga_call_def_t *cd, saga__handler_ref_t *out,
                    saga_diags_t *diags) {
    char err[1024];
    saga_loaded_plugin_t *owner = NULL;
    const saga_handler_t *h = saga_plugins_resolve(e->plugins, cd->plugin,
                                                   cd->function, &owner, err,
                                                   sizeof(err));
    if (h == NULL) {
        saga_diags_add(diags, def->source, cd->pos.line, cd->pos.column,
                       "handler '%s': %s", cd->handler, err);
        return false;
    }
    out->h = h;
    out->state = owner->state;
    out->plugin = owner->name;
    return true;
}

saga_engine_def_t *saga_engine_register(saga_engine_t *e, saga_def_t *def,
                                        saga_diags_t *diags) {
    saga_engine_def_t *d = saga_strmap_get(&e->defs, def->hash);
    if (d != NULL) {
        saga_def_free(def);
        return d;
    }
    if ((d = calloc(1, sizeof(*d))) == NULL ||
        (d->action = calloc(def->n_steps + 1, sizeof(*d->action))) == NULL ||
        (d->comp = calloc(def->n_steps + 1, sizeof(*d->comp))) == NULL ||
        (d->conf = calloc(def->n_steps + 1, sizeof(*d->conf))) == NULL) {
        if (d != NULL) {
            free(d->action);
            free(d->comp);
        }
        free(d);
        saga_diags_add(diags, def->source, 0, 0, "out of memory");
        saga_def_free(def);
        return NULL;
    }
    d->def = def;
    if ((d->keys = calloc(def->n_steps + 1, sizeof(*d->keys))) == NULL) {
        saga_diags_add(diags, def->source, 0, 0, "out of memory");
        engine_def_free(d);
        return NULL;
    }
    for (size_t i = 0; i < def->n_steps; i++) {
        saga__step_keys_t *k = &d->keys[i];
        const char *n = def->steps[i].name;
        snprintf(k->act, sizeof(k->act), "act:%s", n);
        snprintf(k->comp, sizeof(k->comp), "comp:%s", n);
        snprintf(k->out, sizeof(k->out), "out:%s", n);
        snprintf(k->err, sizeof(k->err), "err:%s", n);
        snprintf(k->cerr, sizeof(k->cerr), "cerr:%s", n);
        snprintf(k->conf, sizeof(k->conf), "conf:%s", n);
        snprintf(k->ferr, sizeof(k->ferr), "ferr:%s", n);
    }
    bool ok = true;
    for (size_t i = 0; i < def->n_steps; i++) {
        const saga_step_def_t *sd = &def->steps[i];
        ok &= resolve(e, def, &sd->action, &d->action[i], diags);
        if (sd->has_compensation)
            ok &= resolve(e, def, &sd->compensation, &d->comp[i], diags);
        if (def->mode == SAGA_MODE_TCC)
            ok &= resolve(e, def, &sd->confirm, &d->conf[i], diags);
    }
    if (!ok || saga_strmap_put(&e->defs, def->hash, d, NULL) != 0) {
        if (ok)
            saga_diags_add(diags, def->source, 0, 0, "out of memory");
        engine_def_free(d);
        return NULL;
    }
    d->refs = 1; /* the engine's map */
    int rc = def_store(e, d);
    if (rc != 0) {
        saga_diags_add(diags, def->source, 0, 0, "cannot store the definition's text: %s",
                       saga_strerror(rc));
        saga_strmap_del(&e->defs, def->hash);
        engine_def_free(d);
        return NULL;
    }
    return d;
}

/* ---------------------------------------------------------------------- */
/* Starting and resuming                                                   */
/* ---------------------------------------------------------------------- */

int saga_engine_start(saga_engine_t *e, saga_engine_def_t *d, const char *id,
                      json_t *input, char *id_out, char *err, size_t errlen) {
    char gen[27];
    if (e->closing) {
        snprintf(err, errlen, "engine is shutting down");
        return SAGA_ECLOSING;
    }
    if (id == NULL) {
        new_id(e, gen);
        id = gen;
    } else if (!saga_id_valid(id)) {
        snprintf(err, errlen, "invalid saga id '%.*s': use 1 to %d letters, "
                 "digits, '.', '_', ':' or '-'", 64, id, SAGA_ID_MAX);
        return -EINVAL;
    }
    if (d->text < 0) {
        /* Its text could not be stored before: try again (the sagas of
         * this one wait for the write). */
        int rc = def_store(e, d);
        if (rc != 0) {
            snprintf(err, errlen, "cannot store the text of definition %.12s: %s",
                     d->def->hash, saga_strerror(rc));
            return rc;
        }
    }
    json_t *empty = NULL;
    if (input == NULL)
        input = empty = json_object();
    int rc = saga_def_check_input(d->def, input, err, errlen);
    if (rc != 0) {
        json_decref(empty);
        return -EINVAL;
    }
    if (saga_strmap_get(&e->sagas, id) != NULL) {
        json_decref(empty);
        snprintf(err, errlen, "saga %s is already running here", id);
        return SAGA_EEXIST;
    }
    saga_inst_t *inst = saga__inst_new(e, d, id);
    if (inst == NULL || saga_strmap_put(&e->sagas, inst->id, inst, NULL) != 0) {
        saga__inst_free(inst);
        json_decref(empty);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (id_out != NULL)
        snprintf(id_out, SAGA_ID_MAX + 1, "%s", inst->id);
    if (e->opt.owned)
        inst->fence = 1; /* the first owner's token; every claim bumps it */
    rc = saga__inst_begin(inst, input);
    json_decref(empty);
    if (rc != 0)
        snprintf(err, errlen, "cannot checkpoint the new saga: %s", saga_strerror(rc));
    /* -EINVAL is the caller's bad id or input; a store that refuses a write
     * the engine built (a worker name too long for it) is the store's. */
    return rc == -EINVAL ? SAGA_ESTORE : rc;
}

/* A resume in progress: record copied, definition being fetched. */
typedef struct resume_req_s {
    saga_engine_t *e;
    uint64_t fence;      /* 0: take the record's */
    saga_engine_resume_cb done;
    void *data;
    saga_record_t rec;   /* owned copy */
    char hash[65];
    char id[SAGA_ID_MAX + 1];
} resume_req_t;

static void resume_req_free(resume_req_t *r) {
    saga_record_free(&r->rec);
    free(r);
}

static void resume_fail(resume_req_t *r, int status, const char *msg) {
    r->done(status, msg, r->data);
    resume_req_free(r);
}

static void resume_build(resume_req_t *r, saga_engine_def_t *d) {
    saga_engine_t *e = r->e;
    char err[512];
    if (e->closing) {
        resume_fail(r, SAGA_ECLOSING, "engine is shutting down");
        return;
    }
    if (saga_strmap_get(&e->sagas, r->id) != NULL) {
        snprintf(err, sizeof(err), "saga %s is already running here", r->id);
        resume_fail(r, SAGA_EEXIST, err);
        return;
    }
    saga_inst_t *inst = saga__inst_new(e, d, r->id);
    if (inst == NULL) {
        resume_fail(r, -ENOMEM, "out of memory");
        return;
    }
    inst->resumed = true;
    int rc = saga__ckpt_decode(inst, &r->rec, err, sizeof(err));
    if (r->fence != 0)
        inst->fence = r->fence;
    if (rc == 0 && saga_strmap_put(&e->sagas, inst->id, inst, NULL) != 0) {
        rc = -ENOMEM;
        snprintf(err, sizeof(err), "out of memory");
    }
    if (rc != 0) {
        saga__inst_free(inst);
        resume_fail(r, rc, err);
        return;
    }
    saga_info("saga %s: resuming (%s, %s)", inst->id, d->def->name,
              saga_state_name(inst->state));
    saga__inst_continue(inst);
    resume_fail(r, 0, NULL); /* reports success and frees the request */
}

static void on_stored_def(int status, const char *why, saga_def_t *def,
                          saga_diags_t *diags, void *data) {
    resume_req_t *r = data;
    char msg[1024];
    if (status != 0 && (status != SAGA_ECORRUPT || diags->count == 0)) {
        /* Not readable, or not the text it is stored as. */
        snprintf(msg, sizeof(msg), "saga %s: %s", r->id, why);
        resume_fail(r, status == SAGA_ENOTFOUND ? SAGA_ECORRUPT : status, msg);
        return;
    }
    saga_engine_def_t *d = def ? saga_engine_register(r->e, def, diags) : NULL;
    if (d == NULL) {
        const saga_diag_t *first = diags->count ? &diags->items[0] : NULL;
        snprintf(msg, sizeof(msg), "saga %s: definition %s cannot run here: %s%s",
                 r->id, r->hash, first ? first->message : "unknown error",
                 diags->count > 1 ? " (and more)" : "");
        resume_fail(r, def ? -ENOENT : SAGA_ECORRUPT, msg);
        return;
    }
    resume_build(r, d);
}

/* A record that workers run carries a fence (a worker's start writes the
 * first, every claim bumps it). Resuming it outside the worker protocol
 * (saga resume, an embedding program) would run it beside its owner under
 * the owner's own fence: both would call its handlers, and the slower one's
 * writes would be refused. So only a claim (saga_engine_resume_fenced) may
 * resume such a saga while it is unfinished. True, with the reason in
 * `msg`, when `rec` is one. */
static bool run_by_workers(const saga_record_t *rec, const char *id, char *msg,
                           size_t msglen) {
    size_t fl, sl = 0, ol = 0;
    const char *fence = saga_record_get(rec, "fence", &fl);
    if (fence == NULL || fl == 0)
        return false;
    const char *state = saga_record_get(rec, "state", &sl);
    char st[32];
    snprintf(st, sizeof(st), "%.*s", state ? (int)(sl < 31 ? sl : 31) : 1, state ? state : "?");
    saga_state_t s;
    if (saga_state_parse(st, &s) == 0 && saga_state_terminal(s))
        return false; /* nothing left to run: reported as it is */
    const char *owner = saga_record_get(rec, "owner", &ol);
    char who[160];
    if (owner != NULL && ol > 0)
        snprintf(who, sizeof(who), "owner %.*s", (int)ol, owner);
    else
        snprintf(who, sizeof(who), "released by its last owner");
    snprintf(msg, msglen, "saga %s is run by workers (%s, state %s); "
             "they resume it, not this process", id, who, st);
    return true;
}

static void on_record(int status, const saga_record_t *rec, void *data) {
    resume_req_t *r = data;
    char msg[512];
    if (status != 0) {
        snprintf(msg, sizeof(msg), "saga %s: %s", r->id, saga_strerror(status));
        resume_fail(r, status, msg);
        return;
    }
    size_t hl;
    const char *hash = saga_record_get(rec, "def", &hl);
    if (hash == NULL || hl != 64) {
        snprintf(msg, sizeof(msg), "saga %s: record has no valid 'def' hash", r->id);
        resume_fail(r, SAGA_ECORRUPT, msg);
        return;
    }
    memcpy(r->hash, hash, 64);
    r->hash[64] = '\0';
    if (r->fence == 0 && run_by_workers(rec, r->id, msg, sizeof(msg))) {
        resume_fail(r, SAGA_EMANAGED, msg);
        return;
    }
    if (saga_record_copy(&r->rec, rec) != 0) {
        resume_fail(r, -ENOMEM, "out of memory");
        return;
    }
    saga_engine_def_t *d = saga_strmap_get(&r->e->defs, r->hash);
    if (d != NULL) {
        resume_build(r, d);
        return;
    }
    int rc = saga_stored_def_load(r->e->store, r->hash, on_stored_def, r);
    if (rc != 0) {
        snprintf(msg, sizeof(msg), "saga %s: cannot read its definition: %s",
                 r->id, saga_strerror(rc));
        resume_fail(r, rc, msg);
    }
}

int saga_engine_resume(saga_engine_t *e, const char *id,
                       saga_engine_resume_cb done, void *data) {
    return saga_engine_resume_fenced(e, id, 0, done, data);
}

int saga_engine_resume_fenced(saga_engine_t *e, const char *id, uint64_t fence,
                              saga_engine_resume_cb done, void *data) {
    if (e->closing)
        return SAGA_ECLOSING;
    if (!saga_id_valid(id))
        return -EINVAL;
    if (saga_strmap_get(&e->sagas, id) != NULL)
        return SAGA_EEXIST;
    resume_req_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->e = e;
    r->fence = fence;
    r->done = done;
    r->data = data;
    snprintf(r->id, sizeof(r->id), "%s", id);
    int rc = e->store->ops->load(e->store, id, on_record, r);
    if (rc != 0)
        free(r);
    return rc;
}

typedef struct resume_all_s {
    saga_engine_t *e;
    saga_engine_resume_all_cb done;
    void *data;
    size_t waiting;
    size_t resumed;
    size_t failed;
    size_t managed;
} resume_all_t;

static void resume_all_release(resume_all_t *ra) {
    if (--ra->waiting == 0) {
        ra->done(0, ra->resumed, ra->failed, ra->managed, ra->data);
        free(ra);
    }
}

static void resume_all_one(int status, const char *msg, void *data) {
    resume_all_t *ra = data;
    if (status == 0) {
        ra->resumed++;
    } else if (status == SAGA_EMANAGED) {
        ra->managed++; /* left to the workers */
    } else if (status != SAGA_EEXIST) {
        ra->failed++;
        saga_error("resume: %s", msg ? msg : saga_strerror(status));
    }
    resume_all_release(ra);
}

static void on_unfinished(int status, const char *const *ids, size_t n, void *data) {
    resume_all_t *ra = data;
    if (status != 0) {
        ra->done(status, 0, 0, 0, ra->data);
        free(ra);
        return;
    }
    ra->waiting = 1; /* held until every resume was issued */
    for (size_t i = 0; i < n; i++) {
        ra->waiting++;
        int rc = saga_engine_resume(ra->e, ids[i], resume_all_one, ra);
        if (rc != 0) {
            ra->waiting--;
            if (rc != SAGA_EEXIST) {
                ra->failed++;
                saga_error("resume: saga %s: %s", ids[i], saga_strerror(rc));
            }
        }
    }
    resume_all_release(ra); /* drop the hold */
}

int saga_engine_resume_all(saga_engine_t *e, saga_engine_resume_all_cb done,
                           void *data) {
    if (e->closing)
        return SAGA_ECLOSING;
    resume_all_t *ra = calloc(1, sizeof(*ra));
    if (ra == NULL)
        return -ENOMEM;
    ra->e = e;
    ra->done = done;
    ra->data = data;
    int rc = e->store->ops->list_unfinished(e->store, on_unfinished, ra);
    if (rc != 0)
        free(ra);
    return rc;
}

int saga_engine_cancel(saga_engine_t *e, const char *id) {
    saga_inst_t *inst = saga_strmap_get(&e->sagas, id);
    if (inst == NULL)
        return SAGA_ENOTFOUND;
    /* One loop: checked and requested with nothing in between, as the
     * store's saga_cancel does for sagas of other processes. */
    if (saga_state_terminal(inst->state) || inst->state == SAGA_STATE_COMPENSATING ||
        inst->state == SAGA_STATE_CONFIRMING || inst->pivoted ||
        (inst->state == SAGA_STATE_STUCK && inst->stuck_in != SAGA_STATE_RUNNING))
        return SAGA_ESTATE;
    saga__inst_request_cancel(inst);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Shutdown                                                                */
/* ---------------------------------------------------------------------- */

/* Runs `fn` on every saga of the engine that is not finished. `fn` may
 * finish and free the saga it is given, and other sagas may finish
 * meanwhile: each saga is held while it is visited, and the next one is
 * held before the current one is let go, so the walk never touches freed
 * memory and needs no copy (shutdown must not depend on an allocation).
 * A saga that was finished already when the walk reached it is being
 * finished up the stack (shutdown may be called from on_finished) or
 * waits for its last write: letting go of it must not free it. */
static void walk_release(saga_inst_t *inst, bool was_finished) {
    if (was_finished)
        inst->holds--; /* its own finish or write frees it */
    else
        saga__inst_unhold(inst); /* frees it when fn() finished it */
}

static void for_each_saga(saga_engine_t *e, void (*fn)(saga_inst_t *)) {
    saga_inst_t *inst = e->all;
    bool was_finished = inst != NULL && inst->finished;
    if (inst != NULL)
        saga__inst_hold(inst);
    while (inst != NULL) {
        if (!inst->finished)
            fn(inst);
        saga_inst_t *next = inst->all_next;
        bool next_finished = next != NULL && next->finished;
        if (next != NULL)
            saga__inst_hold(next);
        walk_release(inst, was_finished);
        inst = next;
        was_finished = next_finished;
    }
}

static void on_handle_closed(uv_handle_t *h) {
    saga_engine_t *e = h->data;
    if (--e->closed_timers != 0)
        return;
    if (e->shutdown_done != NULL)
        e->shutdown_done(e->shutdown_data);
}

/* Nothing of ours runs any more: plugins close their handles, then the
 * engine's own handles close. Runs from its own timer callback, never from
 * inside a plugin's complete() (which is where the last call ends). */
static void release(uv_timer_t *t) {
    saga_engine_t *e = t->data;
    if (e->released)
        return;
    /* A plugin's close() runs only after every call completed (plugin.h):
     * its calls use its state, and a call completed after close() would
     * reach freed memory. */
    if (e->sagas.count > 0 || e->live_calls > 0)
        return;
    e->released = true;
    saga_plugins_close_all(e->plugins);
    e->closed_timers = 2;
    e->timers.timer.data = e;
    uv_timer_stop(&e->grace_timer);
    saga_timers_close(&e->timers, on_handle_closed);
    uv_close((uv_handle_t *)&e->grace_timer, on_handle_closed);
}

void saga__engine_check_drained(saga_engine_t *e) {
    if (e == NULL || !e->closing || e->released || e->release_armed)
        return;
    if (e->sagas.count > 0 || e->live_calls > 0)
        return;
    e->release_armed = true;
    uv_timer_start(&e->grace_timer, release, 0, 0);
}

/* A second grace period for plugins to complete the calls they were asked
 * to cancel. The engine never gives up on them: a plugin is closed only
 * once every call completed (release()), so a plugin that never completes
 * one holds the shutdown, and that is said loudly. (An operator may then
 * stop the process: the sagas are in the store for a resume.) */
static void on_calls_grace(uv_timer_t *t) {
    saga_engine_t *e = t->data;
    if (e->live_calls == 0)
        return;
    saga_error("shutdown: %u abandoned handler call(s) not completed by their "
               "plugin after %llu ms (%u on the thread pool); waiting for "
               "them before the plugins are closed", e->live_calls,
               (unsigned long long)(e->grace_ms + 1000), e->pool_calls);
    saga__call_log_outstanding(e, 10);
}

static void on_grace(uv_timer_t *t) {
    saga_engine_t *e = t->data;
    if (e->sagas.count > 0)
        saga_warn("shutdown: grace period over, %zu saga(s) left to a resume",
                  e->sagas.count);
    for_each_saga(e, saga__inst_abandon);
    if (e->live_calls > 0 && !e->release_armed)
        uv_timer_start(&e->grace_timer, on_calls_grace, e->grace_ms + 1000, 0);
    saga__engine_check_drained(e);
}

void saga_engine_shutdown(saga_engine_t *e, uint64_t grace_ms,
                          void (*done)(void *data), void *data) {
    if (e->closing)
        return;
    e->closing = true;
    e->shutdown_done = done;
    e->shutdown_data = data;
    e->grace_ms = grace_ms;
    for_each_saga(e, saga__inst_drain); /* may finish and free them */
    if (e->sagas.count > 0)
        uv_timer_start(&e->grace_timer, on_grace, grace_ms, 0);
    saga__engine_check_drained(e);
}

void saga_engine_free(saga_engine_t *e) {
    if (e == NULL)
        return;
    const char *k;
    void *v;
    for (size_t pos = 0; saga_strmap_next(&e->defs, &pos, &k, &v);)
        saga__engine_def_release(v);
    saga_strmap_close(&e->defs);
    saga_strmap_close(&e->sagas);
    saga__wbuf_pool_free(e);
    saga_plugins_free(e->plugins);
    free(e->worker);
    free(e);
}
