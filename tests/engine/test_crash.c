/*
 * test_crash.c -- kill -9 of the engine process at random moments, then
 * resume; the durable history must show that nothing was lost, nothing
 * finished twice, and compensations ran exactly for what started, newest
 * first.
 *
 * Each iteration forks an engine process that runs 8 sagas (half complete,
 * half fail at their last step and compensate, every step and compensation
 * sleeping a few ms so that a kill lands mid-way), kills it after a seeded
 * random delay, resumes every unfinished saga in this process, and checks
 * every saga straight from Redis (not through the store's own reader).
 *
 * The second test does the same with TCC sagas, killed while they try,
 * confirm or cancel: a saga resumed after its decision to confirm only ever
 * confirms, one resumed while cancelling only cancels. The third with sagas
 * that have a pivot: one resumed after the pivot succeeded only goes
 * forward, one whose pivot failed compensates what came before it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "history_reader.h"
#include "redis_cmd.h"
#include "redis_server.h"
#include "store/store_redis.h"

#define ITERATIONS 50
#define SAGAS 8

static redis_server_t R;
static th_t T;

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    static const char *const args[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    cr_assert_eq(redis_server_start(&R, args), 0);
}

static void teardown(void) { redis_server_stop(&R); }

TestSuite(crash, .init = setup, .fini = teardown);

/* s5 fails in the second definition; every compensation sleeps. */
static const char *const DEF_FMT =
    "saga: %s\n"
    "steps:\n"
    "  - name: s1\n"
    "    action: {handler: demo.echo, with: {v: \"${saga.id}/s1\"}}\n"
    "    compensation: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "  - name: s2\n"
    "    action: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "    compensation: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "  - name: s3\n"
    "    action: {handler: demo.echo, with: {v: \"${saga.id}/s3\", prev: \"${steps.s1.output.v}\"}}\n"
    "    compensation: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "  - name: s4\n"
    "    action: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "    compensation: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "  - name: s5\n"
    "    action: {handler: %s, with: {v: \"${saga.id}/s5\", message: \"out of stock\"}}\n"
    "    compensation: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n";

/* ---------------------------------------------------------------------- */
/* The engine process (no Criterion calls in here: it is a forked child)   */
/* ---------------------------------------------------------------------- */

static int child_left;

static void child_finished(saga_engine_t *e, const char *id, saga_state_t st,
                           int status, void *data) {
    (void)e; (void)id; (void)st; (void)status; (void)data;
    if (--child_left == 0)
        _exit(0); /* everything finished before the kill: fine too */
}

static void child_ready(saga_store_t *s, int status, const char *msg, void *data) {
    (void)s;
    *(int *)data = status == 0 ? 1 : -1;
    if (status != 0)
        fprintf(stderr, "child: %s\n", msg);
}

/* A TCC saga of four steps in sequence; s4's Try fails in the second
 * definition. Trys, Confirms and Cancels all sleep. */
static const char *const TCC_FMT =
    "saga: %s\n"
    "mode: tcc\n"
    "defaults:\n"
    "  confirm_retry: {initial_delay: 1ms, max_delay: 5ms}\n"
    "steps:\n"
    "  - name: s1\n"
    "    try: {handler: demo.echo, with: {v: \"${saga.id}/s1\"}}\n"
    "    confirm: {handler: demo.sleep, with: {ms: \"${input.ms}\", v: \"${steps.s1.output.v}\"}}\n"
    "    cancel: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "  - name: s2\n"
    "    try: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "    confirm: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "    cancel: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "  - name: s3\n"
    "    try: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "    confirm: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "    cancel: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "  - name: s4\n"
    "    try: {handler: %s, with: {ms: \"${input.ms}\", message: \"out of stock\"}}\n"
    "    confirm: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "    cancel: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n";

/* A saga with a pivot (s3); the pivot itself fails in the second
 * definition. */
static const char *const PIVOT_FMT =
    "saga: %s\n"
    "steps:\n"
    "  - name: s1\n"
    "    action: {handler: demo.echo, with: {v: \"${saga.id}/s1\"}}\n"
    "    compensation: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "  - name: s2\n"
    "    action: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "    compensation: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "  - name: s3\n"
    "    pivot: true\n"
    "    action: {handler: %s, with: {ms: \"${input.ms}\", message: \"card declined\"}}\n"
    "    compensation: none\n"
    "  - name: s4\n"
    "    action: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n"
    "  - name: s5\n"
    "    action: {handler: demo.sleep, with: {ms: \"${input.ms}\"}}\n";

enum { KIND_SAGA, KIND_TCC, KIND_PIVOT };

static void child_main(int iter, unsigned seed, int kind) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    saga_redis_url_t u;
    char err[256];
    if (saga_redis_url_parse(R.url, &u, err, sizeof(err)) != 0)
        _exit(2);
    int ready = 0;
    saga_store_t *store = saga_store_redis_new(&loop, &u, NULL, child_ready, &ready);
    while (ready == 0)
        uv_run(&loop, UV_RUN_ONCE);
    if (ready < 0)
        _exit(2);
    static char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/plugins", getenv("SAGA_BUILD_DIR"));
    const char *dirs[] = {dir, NULL};
    saga_engine_options_t o = {.store = store, .plugin_dirs = dirs,
                               .worker = "doomed", .on_finished = child_finished,
                               .seed = seed};
    saga_engine_t *e = saga_engine_new(&loop, &o, err, sizeof(err));
    saga_engine_def_t *defs[2];
    for (int k = 0; k < 2; k++) {
        char yaml[4096];
        if (kind == KIND_TCC)
            snprintf(yaml, sizeof(yaml), TCC_FMT, k ? "tcc_fail" : "tcc_ok",
                     k ? "demo.fail" : "demo.sleep");
        else if (kind == KIND_PIVOT)
            snprintf(yaml, sizeof(yaml), PIVOT_FMT, k ? "pivot_fail" : "pivot_ok",
                     k ? "demo.fail" : "demo.sleep");
        else
            snprintf(yaml, sizeof(yaml), DEF_FMT, k ? "crash_fail" : "crash_ok",
                     k ? "demo.fail" : "demo.echo");
        saga_diags_t d;
        saga_diags_init(&d);
        defs[k] = saga_engine_register(e, saga_def_load_buffer("crash.yaml", yaml,
                                                               strlen(yaml), &d), &d);
        if (defs[k] == NULL)
            _exit(3);
    }
    srand(seed);
    child_left = SAGAS;
    for (int j = 0; j < SAGAS; j++) {
        char id[64];
        snprintf(id, sizeof(id), "it%d-%d", iter, j);
        json_t *in = json_pack("{s:i}", "ms", 3 + rand() % 12);
        if (saga_engine_start(e, defs[j % 2], id, in, NULL, err, sizeof(err)) != 0)
            _exit(4);
        json_decref(in);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
}

/* ---------------------------------------------------------------------- */
/* Checking one saga, from Redis                                           */
/* ---------------------------------------------------------------------- */

static redisContext *rc;

static redisReply *cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static redisReply *cmd(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vcmd(rc, fmt, ap);
    va_end(ap);
    return r;
}

static size_t interrupted_running, interrupted_compensating, checked;

/* Returns false when the saga was never created (killed before). */
static bool check_saga(const char *id, bool fails) {
    redisReply *st = cmd("HMGET saga:{%s} state out:s1 out:s3", id);
    if (st->element[0]->type == REDIS_REPLY_NIL) {
        freeReplyObject(st);
        return false;
    }
    checked++;
    const char *want = fails ? "compensated" : "completed";
    cr_assert_str_eq(st->element[0]->str, want, "saga %s", id);
    /* Outputs recorded before the crash are intact. */
    char expect[256];
    snprintf(expect, sizeof(expect), "{\"v\":\"%s/s1\"}", id);
    cr_assert_str_eq(st->element[1]->str, expect, "saga %s: out:s1", id);
    snprintf(expect, sizeof(expect), "{\"v\":\"%s/s3\",\"prev\":\"%s/s1\"}", id, id);
    cr_assert_str_eq(st->element[2]->str, expect, "saga %s: out:s3", id);
    freeReplyObject(st);

    hist_ev_t *ev;
    size_t nev = hist_read(rc, id, &ev);
    int succeeded[5][2] = {{0}};
    char comp_order[256] = "", act_started[256] = "";
    bool compensating = false;
    for (size_t i = 0; i < nev; i++) {
        const char *type = ev[i].type, *step = ev[i].step, *phase = ev[i].phase;
        int comp = strcmp(phase, "compensation") == 0;
        if (strcmp(type, "saga.resumed") == 0) {
            if (compensating)
                interrupted_compensating++;
            else
                interrupted_running++;
        }
        if (strcmp(type, "saga.compensating") == 0)
            compensating = true;
        if (step[0] != 's')
            continue;
        int k = step[1] - '1';
        cr_assert(k >= 0 && k < 5);
        if (strcmp(type, "step.succeeded") == 0) {
            succeeded[k][comp]++;
            if (comp)
                snprintf(comp_order + strlen(comp_order), sizeof(comp_order) - strlen(comp_order),
                         "%s%.8s", comp_order[0] ? "," : "", step);
        }
        if (strcmp(type, "step.started") == 0 && !comp)
            snprintf(act_started + strlen(act_started), sizeof(act_started) - strlen(act_started),
                     "%s%.8s", act_started[0] ? "," : "", step);
    }
    free(ev);
    for (int k = 0; k < 5; k++)
        for (int c = 0; c < 2; c++)
            cr_assert_leq(succeeded[k][c], 1, "saga %s: s%d %s finished twice", id,
                          k + 1, c ? "compensation" : "action");
    cr_assert_str_eq(act_started, "s1,s2,s3,s4,s5", "saga %s: each action started once", id);
    if (fails) {
        /* Every started action (s5's, which failed, included) undone, newest first. */
        cr_assert_str_eq(comp_order, "s5,s4,s3,s2,s1", "saga %s: compensations", id);
        cr_assert_eq(succeeded[4][0], 0);
    } else {
        cr_assert_str_eq(comp_order, "", "saga %s: nothing to compensate", id);
        for (int k = 0; k < 5; k++)
            cr_assert_eq(succeeded[k][0], 1);
    }
    return true;
}

static size_t resumed_n;
static bool resume_done;
static void on_resumed_all(int status, size_t n, size_t failed, size_t managed,
                           void *data) {
    (void)data;
    cr_assert_eq(status, 0);
    cr_assert_eq(managed, 0, "no saga here is run by workers");
    cr_assert_eq(failed, 0, "every unfinished saga can be resumed");
    resumed_n = n;
    resume_done = true;
}

/* The body of each crash test: ITERATIONS times, a child runs SAGAS sagas
 * of `kind` and is killed (-9) after a seeded delay; the sagas are resumed
 * here and each is checked by `check` (odd ones fail on purpose). Returns
 * how many sagas were resumed in all. */
static size_t kill_resume_check(unsigned seed_base, int kind,
                                bool (*check)(const char *id, bool fails)) {
    size_t total_resumed = 0;
    for (int iter = 0; iter < ITERATIONS; iter++) {
        unsigned seed = seed_base + (unsigned)iter;
        srand(seed);
        unsigned delay_ms = 5 + (unsigned)(rand() % 160);
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0)
            child_main(iter, seed, kind);
        usleep(delay_ms * 1000);
        kill(pid, SIGKILL);
        int wst;
        waitpid(pid, &wst, 0);

        th_init_redis(&T, R.url);
        T.keep_summaries = false;
        resume_done = false;
        cr_assert_eq(saga_engine_resume_all(T.engine, on_resumed_all, NULL), 0);
        while (!resume_done)
            uv_run(&T.loop, UV_RUN_ONCE);
        th_run_until(&T, resumed_n);
        cr_assert_eq(T.lost, 0);
        th_free(&T);
        total_resumed += resumed_n;

        for (int j = 0; j < SAGAS; j++) {
            char id[64];
            snprintf(id, sizeof(id), "it%d-%d", iter, j);
            check(id, j % 2 == 1);
        }
        redisReply *left = cmd("ZCOUNT saga:{idx}:sagas -inf (0");
        cr_assert_eq(left->integer, 0, "iteration %d: unfinished sagas left", iter);
        freeReplyObject(left);
    }
    return total_resumed;
}

Test(crash, kill_minus_nine_at_random_moments_then_resume) {
    rc = redis_server_connect(&R);
    cr_assert_not_null(rc);
    size_t total_resumed = kill_resume_check(4242u, KIND_SAGA, check_saga);
    cr_log_info("crash: %zu sagas checked, %zu resumed; interrupted while running: "
                "%zu, while compensating: %zu", checked, total_resumed,
                interrupted_running, interrupted_compensating);
    fprintf(stderr, "crash: %zu sagas checked, %zu resumed; interrupted while running: "
            "%zu, while compensating: %zu\n", checked, total_resumed,
            interrupted_running, interrupted_compensating);
    cr_assert_gt(interrupted_running, 0, "no kill landed during forward progress");
    cr_assert_gt(interrupted_compensating, 0, "no kill landed during compensation");
    redisFree(rc);
}

/* ---------------------------------------------------------------------- */
/* TCC: killed while trying, confirming or cancelling                      */
/* ---------------------------------------------------------------------- */

static size_t interrupted_trying, interrupted_confirming, interrupted_cancelling;

/* Checks one TCC saga from Redis; false when it was never created. */
static bool check_tcc(const char *id, bool fails) {
    redisReply *st = cmd("HMGET saga:{%s} state out:s1", id);
    if (st->element[0]->type == REDIS_REPLY_NIL) {
        freeReplyObject(st);
        return false;
    }
    checked++;
    cr_assert_str_eq(st->element[0]->str, fails ? "compensated" : "completed", "saga %s", id);
    char expect[256];
    snprintf(expect, sizeof(expect), "{\"v\":\"%s/s1\"}", id);
    cr_assert_str_eq(st->element[1]->str, expect, "saga %s: out:s1", id);
    freeReplyObject(st);

    hist_ev_t *ev;
    size_t nev = hist_read(rc, id, &ev);
    int done[4][3] = {{0}}; /* try, confirm, cancel */
    char tried[64] = "", cancelled[64] = "";
    bool confirming = false, cancelling = false;
    for (size_t i = 0; i < nev; i++) {
        const char *type = ev[i].type, *step = ev[i].step, *phase = ev[i].phase;
        if (strcmp(type, "saga.resumed") == 0)
            ++*(confirming   ? &interrupted_confirming
                : cancelling ? &interrupted_cancelling
                             : &interrupted_trying);
        if (strcmp(type, "saga.confirming") == 0) {
            cr_assert(!cancelling, "saga %s: confirming after cancelling", id);
            confirming = true;
        }
        if (strcmp(type, "saga.compensating") == 0) {
            cr_assert(!confirming, "saga %s: cancelling after the decision to confirm", id);
            cancelling = true;
        }
        if (step[0] != 's')
            continue;
        int k = step[1] - '1';
        cr_assert(k >= 0 && k < 4);
        int ph = strcmp(phase, "try") == 0 ? 0 : strcmp(phase, "confirm") == 0 ? 1 : 2;
        cr_assert(ph != 2 || strcmp(phase, "cancel") == 0, "saga %s: phase '%s'", id, phase);
        /* Each phase runs only in its own phase of the saga. */
        if (strcmp(type, "step.started") == 0) {
            cr_assert(ph != 0 || (!confirming && !cancelling), "saga %s: a Try after phase 1", id);
            cr_assert(ph != 1 || confirming, "saga %s: a Confirm before the decision", id);
            cr_assert(ph != 2 || cancelling, "saga %s: a Cancel while not cancelling", id);
            if (ph == 0)
                snprintf(tried + strlen(tried), sizeof(tried) - strlen(tried), "%s%.8s",
                         tried[0] ? "," : "", step);
        }
        if (strcmp(type, "step.succeeded") == 0) {
            done[k][ph]++;
            if (ph == 2)
                snprintf(cancelled + strlen(cancelled), sizeof(cancelled) - strlen(cancelled),
                         "%s%.8s", cancelled[0] ? "," : "", step);
        }
    }
    free(ev);
    for (int k = 0; k < 4; k++)
        for (int p = 0; p < 3; p++)
            cr_assert_leq(done[k][p], 1, "saga %s: s%d phase %d finished twice", id, k + 1, p);
    cr_assert_str_eq(tried, "s1,s2,s3,s4", "saga %s: each Try started once", id);
    if (fails) {
        cr_assert(!confirming, "saga %s: a failed Try never confirms", id);
        cr_assert_str_eq(cancelled, "s4,s3,s2,s1", "saga %s: Cancels", id);
    } else {
        cr_assert(!cancelling, "saga %s: never cancelled", id);
        cr_assert_str_eq(cancelled, "", "saga %s", id);
        for (int k = 0; k < 4; k++)
            cr_assert_eq(done[k][1], 1, "saga %s: s%d confirmed once", id, k + 1);
    }
    return true;
}

Test(crash, tcc_kill_minus_nine_while_confirming_and_cancelling) {
    rc = redis_server_connect(&R);
    cr_assert_not_null(rc);
    kill_resume_check(7070u, KIND_TCC, check_tcc);
    fprintf(stderr, "crash (tcc): %zu sagas checked; interrupted while trying: %zu, "
            "while confirming: %zu, while cancelling: %zu\n", checked, interrupted_trying,
            interrupted_confirming, interrupted_cancelling);
    cr_assert_gt(interrupted_confirming, 0, "no kill landed while confirming");
    cr_assert_gt(interrupted_cancelling, 0, "no kill landed while cancelling");
    redisFree(rc);
}

/* ---------------------------------------------------------------------- */
/* Pivot: killed before and after the pivot succeeded                      */
/* ---------------------------------------------------------------------- */

static size_t interrupted_before_pivot, interrupted_after_pivot;

/* Checks one pivot saga from Redis; false when it was never created. */
static bool check_pivot(const char *id, bool fails) {
    redisReply *st = cmd("HMGET saga:{%s} state pivoted", id);
    if (st->element[0]->type == REDIS_REPLY_NIL) {
        freeReplyObject(st);
        return false;
    }
    checked++;
    cr_assert_str_eq(st->element[0]->str, fails ? "compensated" : "completed", "saga %s", id);
    if (fails)
        cr_assert_eq(st->element[1]->type, REDIS_REPLY_NIL, "saga %s: not pivoted", id);
    else
        cr_assert_str_eq(st->element[1]->str, "1", "saga %s: pivoted", id);
    freeReplyObject(st);

    hist_ev_t *ev;
    size_t nev = hist_read(rc, id, &ev);
    int done[5][2] = {{0}};
    char undone[64] = "";
    bool pivoted = false, compensating = false;
    for (size_t i = 0; i < nev; i++) {
        const char *type = ev[i].type, *step = ev[i].step, *phase = ev[i].phase;
        if (strcmp(type, "saga.resumed") == 0)
            ++*(pivoted ? &interrupted_after_pivot : &interrupted_before_pivot);
        if (strcmp(type, "saga.pivoted") == 0) {
            cr_assert(!pivoted && !compensating, "saga %s: pivoted twice or late", id);
            pivoted = true;
        }
        if (strcmp(type, "saga.compensating") == 0) {
            cr_assert(!pivoted, "saga %s: compensating after the pivot", id);
            compensating = true;
        }
        if (step[0] != 's')
            continue;
        int k = step[1] - '1', c = strcmp(phase, "compensation") == 0;
        cr_assert(k >= 0 && k < 5);
        if (strcmp(type, "step.started") == 0)
            cr_assert(k < 3 || pivoted, "saga %s: s%d started before the pivot succeeded", id,
                      k + 1);
        if (strcmp(type, "step.succeeded") == 0) {
            done[k][c]++;
            if (c)
                snprintf(undone + strlen(undone), sizeof(undone) - strlen(undone), "%s%.8s",
                         undone[0] ? "," : "", step);
        }
    }
    free(ev);
    for (int k = 0; k < 5; k++)
        for (int c = 0; c < 2; c++)
            cr_assert_leq(done[k][c], 1, "saga %s: s%d finished twice", id, k + 1);
    if (fails) {
        cr_assert_str_eq(undone, "s2,s1", "saga %s: compensations", id);
    } else {
        cr_assert_str_eq(undone, "", "saga %s: nothing compensated", id);
        for (int k = 0; k < 5; k++)
            cr_assert_eq(done[k][0], 1, "saga %s: s%d done once", id, k + 1);
    }
    return true;
}

Test(crash, pivot_kill_minus_nine_before_and_after_the_pivot) {
    rc = redis_server_connect(&R);
    cr_assert_not_null(rc);
    kill_resume_check(9191u, KIND_PIVOT, check_pivot);
    fprintf(stderr, "crash (pivot): %zu sagas checked; interrupted before the pivot: %zu, "
            "after it: %zu\n", checked, interrupted_before_pivot, interrupted_after_pivot);
    cr_assert_gt(interrupted_before_pivot, 0, "no kill landed before the pivot");
    cr_assert_gt(interrupted_after_pivot, 0, "no kill landed after the pivot");
    redisFree(rc);
}
